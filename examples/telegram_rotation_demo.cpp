// telegram_rotation_demo: more load than one bot token can carry, spread over several.
//
// With no token in the environment (TELEGRAM_BOT_TOKEN, MULTITOKEN1..10) it
// starts the Bot API simulator with 3 tokens, each limited to 10 messages/s,
// offers 120 messages to 30 chats at once, prints the status table while they
// flow and a summary at the end: delivered, per-token share, flood waits,
// which bot sent each chat's messages in the order they arrived (one bot per
// chat, in order: BotPool's chat affinity and per-chat queues), the
// simulator's 429 answers (0: the local limits match the simulator's, which
// are Telegram's documented ones) and requests sent into a known cooldown (0).
// `telegram_rotation_demo --simulator` uses the simulator even when tokens are
// set (ctest runs it so and checks both zeros).
//
// With real tokens: telegram_rotation_demo <chat_id> sends 5 messages to that chat.
//
// Several processes (docs/redis.md):
//   --redis URL      share cooldowns, disables and each token's limits with every
//                    other process holding the same tokens, through Redis
//                    (redis:// or rediss://)
//   --botapi URL     use a running simulator (`floodgate-sim botapi`) instead of
//                    starting one; its tokens file holds 100001:SIMULATED-demo-token-1 …3
//   --ca FILE        the CA certificate that simulator wrote with --ca-out
#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "floodgate/telegram/credentials.hpp"
#include "floodgate/core/format.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/reserving_gate.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/telegram/bot_pool.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct Run {
  std::atomic<int> delivered{0};
  std::atomic<int> failed{0};
  std::atomic<int> pending{1};  // 1: offering is still under way (a fast call must not end the run early)
  std::promise<void> all_done;
};

void offer(floodgate::telegram::BotPool& bots, Run& run, std::int64_t chat, std::string text) {
  ++run.pending;
  bots.async_send_message({.chat_id = chat, .text = std::move(text)},
                          [&run](std::error_code ec, floodgate::telegram::BotPoolResult result) {
                            if (ec) {
                              ++run.failed;
                              fmt::print("failed: {} {}\n", ec.message(), result.description);
                            } else {
                              ++run.delivered;
                            }
                            if (--run.pending == 0) run.all_done.set_value();  // exactly once
                          });
}

}  // namespace

int main(int argc, char** argv) {
  std::string redis_url;
  std::string botapi_url;
  std::string ca_file;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw floodgate::Error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--redis") redis_url = value();
    else if (arg == "--botapi") botapi_url = value();
    else if (arg == "--ca") ca_file = value();
    else positional.push_back(arg);
  }

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  const bool force_simulator = argc > 1 && std::string_view(argv[1]) == "--simulator";
  auto tokens = force_simulator ? std::vector<floodgate::Credential<floodgate::BotToken>>{}
                                : floodgate::bot_tokens_from(floodgate::Environment::from_process());
  std::optional<floodgate::sim::BotApiServer> sim;
  floodgate::net::HttpClientOptions http_options;
  floodgate::telegram::BotPoolOptions options;
  options.retry.max_wait = 30s;
  std::vector<std::int64_t> chats;

  if (tokens.empty() && !botapi_url.empty()) {
    for (int i = 1; i <= 3; ++i) {
      tokens.push_back({fmt::format("token-{}", i), {floodgate::Secret(fmt::format("10000{}:SIMULATED-demo-token-{}", i, i))}});
    }
    http_options.tls = floodgate::net::make_client_tls_context({.ca_file = ca_file});
    options.endpoint = floodgate::net::Endpoint::parse(botapi_url);
    options.limits.bot = floodgate::Rate::per_second(9);
    for (int chat = 1; chat <= 30; ++chat) chats.push_back(chat);
    fmt::print("simulator: {} (shared with other processes)\n", botapi_url);
  } else if (tokens.empty()) {
    std::vector<floodgate::Secret> secrets;
    for (int i = 1; i <= 3; ++i) {
      secrets.emplace_back(fmt::format("10000{}:SIMULATED-demo-token-{}", i, i));
      tokens.push_back({fmt::format("token-{}", i), {secrets.back()}});
    }
    floodgate::sim::BotApiLimits limits;
    limits.overall = floodgate::sim::Rate{10, 1s};
    sim.emplace(floodgate::sim::BotApiServerOptions{.tokens = secrets, .limits = limits});
    sim->start();
    fmt::print("simulator: {} with 3 tokens, 10 msg/s each, 1 msg/s per chat\n", sim->url());
    http_options.tls = floodgate::net::make_client_tls_context({.ca_pem = sim->ca_pem()});
    options.endpoint = sim->endpoint();
    // Pace each token a little under the server's overall limit: network jitter can bunch requests,
    // and a 429 on a chat call is taken as that chat's limit (see docs/telegram-bot-api.md).
    options.limits.bot = floodgate::Rate::per_second(9);
    for (int chat = 1; chat <= 30; ++chat) chats.push_back(chat);
  } else if (!positional.empty()) {
    chats.push_back(std::stoll(positional[0]));
  } else {
    fmt::print(stderr, "usage: {} <chat_id>   (with TELEGRAM_BOT_TOKEN / MULTITOKEN1..10 set)\n", argv[0]);
    work.reset();
    io_thread.join();
    return 2;
  }

  floodgate::net::HttpsClient http(io.get_executor(), http_options);
  // Each token's limits, shared with the other processes: the per-chat limit
  // 10 % under Telegram's, as the overall one already is.
  std::optional<floodgate::redis::RedisClient> limits_client;
  std::optional<floodgate::redis::ReservingGate> shared_limits;
  if (!redis_url.empty()) {
    limits_client.emplace(io.get_executor(), floodgate::redis::parse_redis_url(redis_url));
    limits_client->start();
    shared_limits.emplace(*limits_client, floodgate::redis::ReservingGateOptions{.pool_name = "rotation-demo"},
                          [bot = options.limits.bot](floodgate::redis::RedisLimitSet<std::int64_t>& limits) {
                            limits.add("bot", bot, 1).add_per_key("private_chat", floodgate::Rate::per_second(0.9), 3,
                                                                  [](std::int64_t chat) { return chat > 0; });
                          });
    options.shared_limits = shared_limits->as_function();
  }
  floodgate::telegram::BotPool bots(io.get_executor(), http, std::move(tokens), options);
  std::optional<floodgate::redis::RedisCooldownStore> shared;
  if (!redis_url.empty()) {
    shared.emplace(io.get_executor(), floodgate::redis::parse_redis_url(redis_url),
                   floodgate::redis::RedisCooldownOptions{.pool_name = "rotation-demo"});
    const auto url = floodgate::redis::parse_redis_url(redis_url).redacted();
    if (shared->open()) {
      fmt::print("cooldowns shared through {}\n", url);
    } else {
      fmt::print("cooldowns NOT shared: {} is unavailable\n", url);
    }
    shared->attach(bots.pool());
  }

  Run run;
  auto done = run.all_done.get_future();
  const int per_chat = sim ? 4 : 5;
  const auto started = std::chrono::steady_clock::now();
  for (int round = 0; round < per_chat; ++round) {
    for (auto chat : chats) offer(bots, run, chat, fmt::format("message {} to chat {}", round + 1, chat));
  }
  if (--run.pending == 0) run.all_done.set_value();  // every call ended while they were offered
  while (done.wait_for(500ms) != std::future_status::ready) {
    fmt::print("-- {} delivered, {} pending\n{}", run.delivered.load(), run.pending.load(),
               floodgate::status_table(bots.snapshot()));
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;

  fmt::print("\n== summary: {} delivered, {} failed in {:.1f} s\n", run.delivered.load(), run.failed.load(),
             elapsed.count());
  fmt::print("{}", floodgate::status_table(bots.snapshot()));
  for (const auto& token : bots.snapshot()) {
    fmt::print("{}: {} delivered ({:.0f}%), {} flood waits\n", token.id, token.successes,
               100.0 * static_cast<double>(token.successes) / std::max(1, run.delivered.load()), token.flood_waits);
  }
  if (sim) {
    // What each chat received, in the order it arrived, and from which bot (chat affinity keeps one).
    int several_bots = 0;
    int out_of_order = 0;
    for (auto chat : chats) {
      const auto messages = sim->messages(chat);
      std::string line = fmt::format("chat {:>2}:", chat);
      for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        line += fmt::format(" [{} by token-{}]", m.text.substr(0, m.text.find(" to chat")), m.sender_id - 100000);
        if (m.text != fmt::format("message {} to chat {}", i + 1, chat)) ++out_of_order;
        if (i > 0 && m.sender_id != messages[i - 1].sender_id) ++several_bots;
      }
      fmt::print("{}\n", line);
    }
    fmt::print("chats from more than one bot: {}, out of order: {}\n", several_bots, out_of_order);
    std::uint64_t into_cooldown = 0;
    std::uint64_t flood_answers = 0;
    for (int i = 1; i <= 3; ++i) {
      const auto stats = sim->stats(floodgate::Secret(fmt::format("10000{}:SIMULATED-demo-token-{}", i, i)));
      into_cooldown += stats.sent_during_cooldown;
      flood_answers += stats.rate_limited;
    }
    fmt::print("429 answers: {}\n", flood_answers);
    fmt::print("requests sent into a known cooldown: {}\n", into_cooldown);
  }
  if (shared) shared->detach(bots.pool());
  shared.reset();
  if (limits_client) limits_client->close();  // an open connection would keep io.run() from returning
  work.reset();
  io_thread.join();
  return run.failed.load() == 0 ? 0 : 1;
}
