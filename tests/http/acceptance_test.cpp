// Issue 15's acceptance run: 1,000 calls over 2 providers x 3 keys with
// injected 429s (Retry-After in seconds from one, as HTTP dates with
// x-ratelimit headers from the other), real rate limits, one exhausted quota
// and budgets. The simulators count what arrived where: no request may reach a
// key inside a cooldown it was told of or after its quota was reported spent,
// every call ends exactly once and is applied exactly once, no budget is exceeded.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "floodgate/core/error.hpp"
#include "http_test_support.hpp"

using namespace floodgate;
using namespace floodgate::http;
using namespace floodgate::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kPrimaryRequestsPerDay = 500;
constexpr std::uint32_t kBackupKeyCostPerMinute = 900;

struct Run {
  Run() {
    primary = start_server({.keys = secrets_of(primary_keys),
                            .limit = sim::Rate{60, 1s},
                            .retry_after = sim::RetryAfterForm::seconds,
                            .rate_limit_probability = 0.03,
                            .seed = 7});
    backup = start_server({.keys = secrets_of(backup_keys),
                           .limit = sim::Rate{40, 1s},
                           .retry_after = sim::RetryAfterForm::http_date,
                           .headers = sim::RateLimitHeaders::openai,
                           .rate_limit_probability = 0.03,
                           .seed = 11});
    primary->set_quota(primary_keys[1].key, 40);  // p-2 runs out of quota
    for (auto& key : backup_keys) key.budget.cost_per_minute = kBackupKeyCostPerMinute;

    ProviderSpec first{.name = "primary", .base_url = primary->url() + "/v1", .keys = primary_keys};
    first.budget.requests_per_day = kPrimaryRequestsPerDay;
    first.classify.quota_wait = 1h;
    ProviderSpec second{.name = "backup", .base_url = backup->url() + "/v1", .auth = KeyAuth::header("x-api-key"),
                        .keys = backup_keys, .tier = 1};
    ApiKeyPoolOptions options;
    options.retry.max_attempts = 30;
    options.retry.max_wait = 5s;
    options.retry.backoff_base = 1ms;
    options.retry.backoff_cap = 10ms;
    pool = std::make_unique<ApiKeyPool>(io.executor(), client, std::vector<ProviderSpec>{first, second}, options);
  }

  std::uint64_t total(const std::vector<ApiKeySpec>& keys, const sim::HttpApiServer& server,
                      std::uint64_t sim::HttpKeyStats::*field) const {
    std::uint64_t sum = 0;
    for (const auto& key : keys) sum += server.stats(key.key).*field;
    return sum;
  }

  /// Checks what the simulators saw; `elapsed` bounds the budgets' refill.
  void check_budgets(std::chrono::duration<double> elapsed) const {
    const double primary_allowed = kPrimaryRequestsPerDay * (1 + elapsed.count() / 86400.0);
    CHECK(static_cast<double>(total(primary_keys, *primary, &sim::HttpKeyStats::requests)) <= primary_allowed);
    for (const auto& key : backup_keys) {
      const double allowed = kBackupKeyCostPerMinute * (1 + elapsed.count() / 60.0);
      INFO(key.id << " cost " << backup->stats(key.key).cost << " allowed " << allowed);
      CHECK(static_cast<double>(backup->stats(key.key).cost) <= allowed);
    }
  }

  IoThread io;
  std::vector<ApiKeySpec> primary_keys = make_keys("p", 3);
  std::vector<ApiKeySpec> backup_keys = make_keys("b", 3);
  std::unique_ptr<sim::HttpApiServer> primary;
  std::unique_ptr<sim::HttpApiServer> backup;
  net::HttpsClient client{io.executor(), trusting_client_options()};
  std::unique_ptr<ApiKeyPool> pool;
};

std::uint32_t cost_of(int i) { return 1 + static_cast<std::uint32_t>(i % 10); }

}  // namespace

TEST_CASE("Acceptance: 1,000 calls, 2 providers x 3 keys, injected 429s and an exhausted quota") {
  Run run;
  const auto started = std::chrono::steady_clock::now();
  int succeeded = 0;
  std::map<std::string, int> by_provider;
  for (int i = 0; i < 1000; ++i) {
    auto [ec, result] = call(*run.pool, transcribe(fmt::format("call-{}", i), cost_of(i)));
    INFO("call " << i << ": " << ec.message() << " " << result.description);
    CHECK_FALSE(ec);
    if (!ec) ++succeeded;
    ++by_provider[result.provider];
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
  CHECK(succeeded == 1000);

  // Applied exactly once each, over both servers.
  auto applied = run.primary->applied_ids();
  for (const auto& [id, count] : run.backup->applied_ids()) applied[id] += count;
  CHECK(applied.size() == 1000);
  CHECK(std::all_of(applied.begin(), applied.end(), [](const auto& entry) { return entry.second == 1; }));

  // Nothing sent into a known cooldown or a spent quota.
  for (const auto* keys : {&run.primary_keys, &run.backup_keys}) {
    const auto& server = keys == &run.primary_keys ? *run.primary : *run.backup;
    for (const auto& key : *keys) {
      const auto stats = server.stats(key.key);
      INFO(key.id << ": " << stats.requests << " requests, " << stats.rate_limited << " 429");
      CHECK(stats.sent_during_cooldown == 0);
      CHECK(stats.sent_while_exhausted == 0);
    }
  }
  CHECK(run.primary->stats(run.primary_keys[1].key).quota_refused == 1);
  // The run met what it is meant to survive (else it proves nothing).
  CHECK(run.total(run.primary_keys, *run.primary, &sim::HttpKeyStats::rate_limited) > 0);
  CHECK(run.total(run.backup_keys, *run.backup, &sim::HttpKeyStats::rate_limited) > 0);
  CHECK(by_provider["backup"] > 0);
  run.check_budgets(elapsed);
}

TEST_CASE("Acceptance: concurrent calls with lost answers each end exactly once and are applied at most once") {
  Run run;
  // Answers lost after the request was applied: those calls end with outcome_unknown, never repeated.
  for (const auto& key : run.primary_keys) run.primary->inject(key.key, sim::HttpFault::truncated_response(), 3);
  for (const auto& key : run.backup_keys) run.backup->inject(key.key, sim::HttpFault::answer(502), 2);

  constexpr int kCalls = 400;
  std::vector<std::atomic<int>> completions(kCalls);
  std::vector<std::error_code> errors(kCalls);
  std::mutex mutex;
  std::condition_variable all_done;
  int done = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) {
    run.pool->async_call(transcribe(fmt::format("c-{}", i), cost_of(i)), [&, i](std::error_code ec, ApiResult) {
      ++completions[i];
      std::lock_guard lock(mutex);
      errors[i] = ec;
      if (++done == kCalls) all_done.notify_one();
    });
  }
  {
    std::unique_lock lock(mutex);
    REQUIRE(all_done.wait_for(lock, 120s, [&] { return done == kCalls; }));
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
  auto applied = run.primary->applied_ids();
  for (const auto& [id, count] : run.backup->applied_ids()) applied[id] += count;
  int unknown = 0;
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i << ": " << errors[i].message());
    CHECK(completions[i] == 1);
    const auto it = applied.find(fmt::format("c-{}", i));
    const int times = it == applied.end() ? 0 : it->second;
    if (!errors[i]) {
      CHECK(times == 1);
    } else if (errors[i] == errc::outcome_unknown) {  // the answer was lost: applied once or not at all
      CHECK(times <= 1);
      ++unknown;
    } else {  // any other ending (a long cooldown, attempts used up) sent nothing that was applied
      CHECK(times == 0);
    }
  }
  CHECK(unknown >= 9);  // the truncated replies (3 per primary key) at least
  run.check_budgets(elapsed);
}
