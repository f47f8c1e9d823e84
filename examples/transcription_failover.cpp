// transcription_failover: audio transcription through three paid providers,
// failing over when one runs out.
//
// Starts three local providers (floodgate::sim::HttpApiServer) and sends 300
// transcription jobs, about 25 a second (an audio file streamed from disk,
// cost = its seconds) through one http::ApiKeyPool:
//
//   primary   tier 0, 2 keys, 40 calls of quota each, refilled every 4 s
//             (its "billing cycle"), Retry-After in seconds
//   backup    tier 1, 2 keys, 15 requests/s each, Retry-After as HTTP dates
//             and x-ratelimit-* headers, 3% random 429s
//   last      tier 2, 1 key, a custom x-api-key header
//
// The primary's keys run out, the calls move to the backups, and when the
// primary's quota comes back (the pool rests an exhausted key for the
// provider's quota_wait) the calls return to it. A live table shows each key
// while the jobs flow; the program ends by itself with a summary.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "floodgate/core/format.hpp"
#include "floodgate/http/api_key_pool.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/http_api_server.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using floodgate::Secret;
using namespace floodgate::http;

namespace {

constexpr int kJobs = 300;
constexpr int kConcurrency = 4;

std::vector<ApiKeySpec> keys(const std::string& prefix, int count) {
  std::vector<ApiKeySpec> out;
  for (int i = 1; i <= count; ++i) out.push_back({fmt::format("{}-{}", prefix, i), Secret(fmt::format("sk-{}-{}-demo", prefix, i))});
  return out;
}

std::vector<Secret> secrets(const std::vector<ApiKeySpec>& specs) {
  std::vector<Secret> out;
  for (const auto& spec : specs) out.push_back(spec.key);
  return out;
}

const char* state_name(floodgate::CredentialState state) {
  switch (state) {
    case floodgate::CredentialState::ready: return "ready";
    case floodgate::CredentialState::cooling: return "cooling";
    case floodgate::CredentialState::ejected: return "ejected";
    case floodgate::CredentialState::disabled: return "disabled";
  }
  return "?";
}

void print_table(const ApiKeyPool& pool, double seconds, int finished) {
  fmt::print("\n t={:5.1f}s  jobs done {:3}/{}\n", seconds, finished, kJobs);
  fmt::print("  {:<9} {:<8} {:<8} {:>8} {:>6} {:>11} {:>10}\n", "key", "provider", "state", "requests", "ok",
             "flood waits", "rest left");
  for (const auto& record : pool.snapshot()) {
    const auto rest = std::chrono::duration<double>(record.cooldown_remaining).count();
    fmt::print("  {:<9} {:<8} {:<8} {:>8} {:>6} {:>11} {:>9.1f}s\n", record.id, pool.provider_of(record.id),
               state_name(record.state), record.requests, record.successes, record.flood_waits, rest);
  }
}

}  // namespace

int main() {
  const auto certificates = floodgate::sim::TestCertificates::generate();
  auto primary_keys = keys("prim", 2);
  auto backup_keys = keys("back", 2);
  auto last_keys = keys("last", 1);
  floodgate::sim::HttpApiServer primary({.keys = secrets(primary_keys), .limit = floodgate::sim::Rate{50, 1s},
                                         .quota = 40, .certificates = certificates});
  floodgate::sim::HttpApiServer backup({.keys = secrets(backup_keys), .limit = floodgate::sim::Rate{15, 1s},
                                        .retry_after = floodgate::sim::RetryAfterForm::http_date,
                                        .headers = floodgate::sim::RateLimitHeaders::openai,
                                        .rate_limit_probability = 0.03, .certificates = certificates});
  floodgate::sim::HttpApiServer last({.keys = secrets(last_keys), .limit = std::nullopt, .certificates = certificates});
  primary.start();
  backup.start();
  last.start();

  // One "recording", streamed from disk for every attempt.
  const auto audio = std::filesystem::temp_directory_path() / fmt::format("floodgate-demo-{}.ogg", ::getpid());
  std::ofstream(audio, std::ios::binary) << std::string(256 * 1024, 'A');

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  floodgate::net::HttpClientOptions client_options;
  client_options.tls = floodgate::net::make_client_tls_context({.ca_pem = certificates.ca_pem});
  floodgate::net::HttpsClient http(io.get_executor(), client_options);

  ProviderSpec first{.name = "primary", .base_url = primary.url() + "/v1", .keys = primary_keys};
  first.classify.quota_wait = 4s;  // the quota refills every 4 s in this demo (a month in real life)
  ProviderSpec second{.name = "backup", .base_url = backup.url() + "/v1", .keys = backup_keys, .tier = 1};
  ProviderSpec third{.name = "last", .base_url = last.url() + "/v1", .auth = KeyAuth::header("x-api-key"),
                     .keys = last_keys, .tier = 2};
  ApiKeyPoolOptions options;
  options.retry.max_wait = 5s;
  options.retry.max_attempts = 20;
  ApiKeyPool pool(io.get_executor(), http, {first, second, third}, options);

  // The primary's billing cycle.
  std::atomic<bool> running{true};
  std::thread billing([&] {
    while (running) {
      for (int i = 0; i < 40 && running; ++i) std::this_thread::sleep_for(100ms);
      for (const auto& key : primary_keys) primary.reset_quota(key.key);
    }
  });

  std::mutex mutex;
  std::condition_variable changed;
  int started = 0;
  int finished = 0;
  int in_flight = 0;
  std::map<std::string, int> served;
  std::map<std::string, int> failures;
  const auto begin = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(); };
  auto next_print = begin;
  auto print_now_and_then = [&] {  // called with the mutex held
    if (finished < kJobs && std::chrono::steady_clock::now() >= next_print) {
      print_table(pool, elapsed(), finished);
      next_print += 1s;
    }
  };
  std::unique_lock lock(mutex);
  while (finished < kJobs) {
    while (started < kJobs && in_flight < kConcurrency) {
      auto job = ApiCall::post_file("/transcribe", audio, "audio/ogg");
      job.cost = 30;  // seconds of audio
      ++started;
      ++in_flight;
      pool.async_call(std::move(job), [&](std::error_code ec, ApiResult result) {
        std::lock_guard guard(mutex);
        --in_flight;
        ++finished;
        if (ec) ++failures[ec.message()];
        else ++served[result.provider];
        changed.notify_one();
      });
      lock.unlock();
      std::this_thread::sleep_for(40ms);  // jobs arrive over time: about 25 a second
      lock.lock();
      print_now_and_then();
    }
    changed.wait_for(lock, 100ms);
    print_now_and_then();
  }
  lock.unlock();
  print_table(pool, elapsed(), finished);

  running = false;
  billing.join();
  fmt::print("\nsummary after {:.1f} s: {} jobs\n", elapsed(), kJobs);
  for (const auto& [provider, count] : served) fmt::print("  served by {:<8} {}\n", provider, count);
  for (const auto& [reason, count] : failures) fmt::print("  failed ({}) {}\n", reason, count);
  std::uint64_t into_cooldown = 0;
  for (const auto& key : primary_keys) into_cooldown += primary.stats(key.key).sent_while_exhausted;
  for (const auto& key : backup_keys) into_cooldown += backup.stats(key.key).sent_during_cooldown;
  fmt::print("  requests sent into a known cooldown or spent quota: {}\n", into_cooldown);

  work.reset();
  io.stop();
  io_thread.join();
  std::filesystem::remove(audio);
  return failures.empty() ? 0 : 1;
}
