// A fault soak of BotPool against the Bot API simulator: a steady stream of
// sends and edits over five tokens while faults are injected at random from a
// fixed seed (429 storms, waits of every size up to absurd, 401s, 5xx, dropped,
// cut-off, slow and invalid replies, a token dying for good).
//
//   bot_pool_soak [--seconds N] [--seed S]      (defaults: 120 s, seed 1)
//
// It fails (exit 1, with the reason) unless, at the end:
//   - every submitted call ended exactly once, and none is still pending;
//   - no message was sent twice: a success is in the chat once, a definite
//     failure not at all, an outcome_unknown at most once;
//   - no request went into a cooldown the pool had been told of
//     (the simulator's `sent_during_known_cooldown`, summed over tokens);
//   - outside the sanitizers (soak_common.hpp says why), resident memory grew
//     by at most 32 MiB from the end of the warm-up (a fifth of the run) to
//     the end. Leaks are LeakSanitizer's job in the ASan build.
// It prints one line of figures either way.
#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/telegram/bot_pool.hpp"

#include "soak_common.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using floodgate::Secret;
using floodgate::sim::BotApiServer;
using floodgate::sim::Fault;
using floodgate::telegram::BotPool;
using floodgate::telegram::BotPoolResult;
using floodgate::telegram::SentMessage;

namespace {

using floodgate::soak::kRssChecked;
using floodgate::soak::resident_bytes;

/// What the soak knows of one submitted sendMessage.
struct Submitted {
  std::int64_t chat_id = 0;
  int completions = 0;
  std::error_code error;
  std::optional<SentMessage> sent;
};

/// Counts by ending, for the figures line.
struct Endings {
  std::uint64_t ok = 0, unknown = 0, cooling = 0, other = 0;
};

std::string token_text(int index) { return fmt::format("1000{}:AAH-soak-secret-{}", index, index * 7919); }

/// Sends and edits as fast as the pool takes them, keeping `kInFlight` calls open.
class Soak {
 public:
  static constexpr int kInFlight = 24;
  static constexpr int kChats = 40;

  Soak(BotApiServer& server, asio::any_io_executor executor, floodgate::net::HttpsClient& http,
       std::vector<floodgate::Credential<floodgate::BotToken>> tokens, std::uint64_t seed)
      : rng_(seed), bots_(executor, http, std::move(tokens), {.endpoint = server.endpoint(), .retry = retry()}) {}

  static floodgate::RetryPolicy retry() {
    floodgate::RetryPolicy policy;
    policy.max_wait = 2s;  // waits out short flood waits and local pacing; longer ones end the call
    policy.backoff_base = 20ms;
    policy.backoff_cap = 200ms;
    return policy;
  }

  int in_flight() const { return in_flight_.load(); }

  /// Starts one call: mostly a new message to a random chat, sometimes an
  /// edit of a message that was sent (owner-bound, idempotent).
  void submit() {
    std::unique_lock lock(mutex_);
    const bool edit = !sent_.empty() && std::uniform_int_distribution<int>(0, 4)(rng_) == 0;
    ++in_flight_;
    if (edit) {
      const SentMessage target = sent_[std::uniform_int_distribution<std::size_t>(0, sent_.size() - 1)(rng_)];
      const auto text = fmt::format("{} (edit {})", original_text(target), ++edits_);
      const std::size_t index = edit_completions_.size();
      edit_completions_.push_back(0);
      lock.unlock();
      bots_.async_edit_message_text(target, text, [this, index](std::error_code, BotPoolResult) {
        std::lock_guard guard(mutex_);
        ++edit_completions_[index];
        --in_flight_;
      });
      return;
    }
    const std::int64_t seq = static_cast<std::int64_t>(calls_.size());
    const std::int64_t chat = std::uniform_int_distribution<std::int64_t>(1, kChats)(rng_);
    calls_.push_back({.chat_id = chat});
    lock.unlock();
    bots_.async_send_message({.chat_id = chat, .text = fmt::format("s{}", seq)},
                             [this, seq](std::error_code ec, BotPoolResult result) {
                               std::lock_guard guard(mutex_);
                               auto& call = calls_[static_cast<std::size_t>(seq)];
                               ++call.completions;
                               call.error = ec;
                               if (!ec) {
                                 call.sent = result.sent();
                                 if (call.sent) {
                                   sent_.push_back(*call.sent);
                                   texts_[key_of(*call.sent)] = fmt::format("s{}", seq);
                                 }
                               }
                               --in_flight_;
                             });
  }

  /// Every check of the soak; returns the failures (empty: passed).
  std::vector<std::string> check(const BotApiServer& server, Endings& endings) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> failures;
    std::map<std::string, int> delivered;  // "s<seq>" -> times it is in its chat
    for (int chat = 1; chat <= kChats; ++chat) {
      for (const auto& message : server.messages(chat)) {
        const auto text = message.text.substr(0, message.text.find(' '));
        ++delivered[text];
      }
    }
    for (std::size_t seq = 0; seq < calls_.size(); ++seq) {
      const auto& call = calls_[seq];
      const auto text = fmt::format("s{}", seq);
      const int times = delivered.count(text) ? delivered.at(text) : 0;
      if (call.completions != 1) {
        failures.push_back(fmt::format("{} ended {} times", text, call.completions));
        continue;
      }
      if (!call.error) {
        ++endings.ok;
        if (times != 1) failures.push_back(fmt::format("{} succeeded and is in its chat {} times", text, times));
      } else if (call.error == floodgate::errc::outcome_unknown) {
        ++endings.unknown;
        if (times > 1) failures.push_back(fmt::format("{} (outcome unknown) is in its chat {} times", text, times));
      } else {
        ++(call.error == floodgate::errc::all_credentials_cooling ? endings.cooling : endings.other);
        if (times != 0) {
          failures.push_back(fmt::format("{} failed definitely ({}) but is in its chat {} times", text,
                                         call.error.message(), times));
        }
      }
    }
    for (std::size_t i = 0; i < edit_completions_.size(); ++i) {
      if (edit_completions_[i] != 1) failures.push_back(fmt::format("edit {} ended {} times", i, edit_completions_[i]));
    }
    return failures;
  }

  std::size_t calls() const {
    std::lock_guard lock(mutex_);
    return calls_.size() + edit_completions_.size();
  }

 private:
  using MessageKey = std::tuple<std::string, std::int64_t, std::int64_t>;
  static MessageKey key_of(const SentMessage& message) {
    return {message.token_id, message.chat_id, message.message_id};
  }
  std::string original_text(const SentMessage& message) const { return texts_.at(key_of(message)); }

  mutable std::mutex mutex_;
  std::mt19937_64 rng_;
  std::vector<Submitted> calls_;
  std::vector<int> edit_completions_;
  std::vector<SentMessage> sent_;
  std::map<MessageKey, std::string> texts_;  // -> "s<seq>" (message ids count per bot in private chats)
  int edits_ = 0;
  std::atomic<int> in_flight_{0};
  BotPool bots_;
};

/// One random fault for one of the first three tokens.
void inject_random_fault(BotApiServer& server, const std::vector<Secret>& tokens, std::mt19937_64& rng) {
  const auto& token = tokens[std::uniform_int_distribution<std::size_t>(0, 2)(rng)];
  const int pick = std::uniform_int_distribution<int>(0, 99)(rng);
  if (pick < 20) {
    server.inject(token, Fault::flood_wait(std::uniform_int_distribution<std::int64_t>(1, 4)(rng)));
  } else if (pick < 25) {  // a storm: every token told to wait at once
    for (std::size_t i = 0; i < 3; ++i) server.inject(tokens[i], Fault::flood_wait(1));
  } else if (pick < 45) {
    const int statuses[] = {500, 502, 503, 504};
    server.inject(token, Fault::server_error(statuses[std::uniform_int_distribution<int>(0, 3)(rng)]));
  } else if (pick < 58) {
    server.inject(token, Fault::drop_connection());
  } else if (pick < 71) {
    server.inject(token, Fault::truncated_response());
  } else if (pick < 84) {
    server.inject(token, Fault::slow_reply(1500ms));  // past the client's 1 s read timeout
  } else {
    server.inject(token, Fault::invalid_json());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = floodgate::soak::parse_args("bot_pool_soak", argc, argv);
  floodgate::set_log_level(floodgate::LogLevel::warning);  // flood waits handled as designed are not news
  std::mt19937_64 rng(args.seed);

  std::vector<Secret> tokens;
  std::vector<floodgate::Credential<floodgate::BotToken>> credentials;
  for (int i = 0; i < 5; ++i) {
    tokens.emplace_back(token_text(i));
    credentials.push_back({fmt::format("token-{}", i), {tokens.back()}});
  }
  BotApiServer server({.tokens = tokens});
  server.start();

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  std::vector<std::string> failures;
  Endings endings;
  std::size_t rss_warm = 0, rss_end = 0, faults = 0;
  std::size_t calls = 0;
  {
    floodgate::net::HttpClientOptions options;
    options.tls = floodgate::net::make_client_tls_context({.ca_pem = server.ca_pem()});
    options.read_timeout = 1s;
    floodgate::net::HttpsClient http(io.get_executor(), std::move(options));
    Soak soak(server, io.get_executor(), http, std::move(credentials), args.seed);

    // Tokens 0-2 take the random faults; token 3 is told once to wait 10^10 s
    // (~317 years: must saturate, never wrap); token 4 is revoked part-way.
    const auto start = std::chrono::steady_clock::now();
    const auto end = start + args.duration;
    auto next_fault = start;
    bool huge_wait_sent = false, revoked = false, warm = false;
    std::exponential_distribution<double> fault_gap(1.0 / 0.15);  // a fault every 150 ms on average
    for (auto now = start; now < end; now = std::chrono::steady_clock::now()) {
      const auto elapsed = now - start;
      if (!warm && elapsed >= args.duration / 5) {
        warm = true;
        rss_warm = resident_bytes();
      }
      if (!huge_wait_sent && elapsed >= args.duration * 3 / 10) {
        huge_wait_sent = true;
        server.inject(tokens[3], Fault::flood_wait(10'000'000'000));
      }
      if (!revoked && elapsed >= args.duration / 2) {
        revoked = true;
        server.revoke_token(tokens[4]);
      }
      if (now >= next_fault) {
        inject_random_fault(server, tokens, rng);
        ++faults;
        next_fault += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(fault_gap(rng)));
      }
      // At most one new call per 4 ms: calls that end at once (everything
      // cooling) must not turn the soak into a busy loop.
      if (soak.in_flight() < Soak::kInFlight) soak.submit();
      std::this_thread::sleep_for(4ms);
    }
    rss_end = resident_bytes();
    // Every call must end by itself: at most the retry policy's waits and timeouts.
    const auto drain_limit = std::chrono::steady_clock::now() + 60s;
    while (soak.in_flight() > 0 && std::chrono::steady_clock::now() < drain_limit) std::this_thread::sleep_for(10ms);
    if (soak.in_flight() > 0) failures.push_back(fmt::format("{} calls still pending 60 s after the end", soak.in_flight()));
    auto checked = soak.check(server, endings);
    failures.insert(failures.end(), checked.begin(), checked.end());
    calls = soak.calls();
  }
  work.reset();
  io_thread.join();

  std::uint64_t requests = 0, in_cooldown = 0, in_known_cooldown = 0;
  for (const auto& token : tokens) {
    const auto stats = server.stats(token);
    requests += stats.requests;
    in_cooldown += stats.sent_during_cooldown;
    in_known_cooldown += stats.sent_during_known_cooldown;
  }
  server.stop();
  if (in_known_cooldown != 0) {
    failures.push_back(fmt::format("{} requests went into a cooldown the pool had been told of", in_known_cooldown));
  }
  constexpr std::size_t kRssSlack = 32u << 20;
  if (kRssChecked && rss_warm != 0 && rss_end > rss_warm + kRssSlack) {
    failures.push_back(fmt::format("resident memory grew from {} to {} MiB after the warm-up", rss_warm >> 20,
                                   rss_end >> 20));
  }

  fmt::print("bot_pool_soak: seed {}, {} s: {} calls ({} sends ok, {} outcome unknown, {} all cooling, {} other "
             "errors), {} faults injected, {} requests, {} in a cooldown while in flight, {} in a known cooldown, "
             "RSS {} -> {} MiB{}\n",
             args.seed, args.duration.count(), calls, endings.ok, endings.unknown, endings.cooling, endings.other,
             faults, requests, in_cooldown, in_known_cooldown, rss_warm >> 20, rss_end >> 20,
             kRssChecked ? "" : " (not checked under a sanitizer)");
  for (const auto& failure : failures) fmt::print(stderr, "bot_pool_soak: FAILED: {}\n", failure);
  if (!failures.empty()) return 1;
  fmt::print("bot_pool_soak: passed\n");
  return 0;
}
