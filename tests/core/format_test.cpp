#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sstream>

using namespace floodgate;
using namespace floodgate::test;

namespace {
// 2026-11-27 22:30:00 UTC: a fixed wall-clock start for the virtual clock.
const auto kWallStart = std::chrono::system_clock::time_point(std::chrono::seconds(1795818600));
const std::string kToken = "2402123456:AAHsecretsecretsecretsecret";
}  // namespace

TEST_CASE("a secret never prints its value", "[secret]") {
  const Secret token(kToken);
  CHECK(fmt::format("{}", token) == "2402****");
  CHECK(fmt::format("token={:>12}", token) == "token=    2402****");
  std::ostringstream os;
  os << token;
  CHECK(os.str() == "2402****");
  CHECK(Secret("short").redacted() == "****");
  CHECK(token.reveal() == kToken);
  try {
    throw Error(fmt::format("rejected token {}", token));
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "rejected token 2402****");
  }
}

TEST_CASE("a moved-from secret is empty", "[secret]") {
  Secret a(kToken);
  Secret b(std::move(a));
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): that is the point
  CHECK(b.reveal() == kToken);
}

TEST_CASE("the status table reads like the /status view", "[format]") {
  ManualClock clock(kWallStart);
  CredentialPool<BotToken, RoundRobin, ManualClock> pool({}, clock);
  pool.add({"API-1", {Secret(kToken)}});
  pool.add({"API-2", {Secret(kToken + "2")}});
  pool.add({"API-3", {Secret(kToken + "3")}});
  pool.add({"API-4", {Secret(kToken + "4")}});
  for (int i = 0; i < 200; ++i) {
    auto lease = pool.acquire();
    if (lease->id() == "API-1" && i == 4) {
      lease->report(Outcome<>::not_sent("connect failed"));
    } else {
      lease->success(std::chrono::milliseconds(20));
    }
  }
  pool.cooldown("API-3", std::chrono::seconds(900));
  pool.disable("API-2", "authentication failed");
  for (int i = 0; i < 5; ++i) pool.acquire("x")->success(std::chrono::milliseconds(1));

  const auto table = status_table(pool.snapshot(), {.utc = true});
  CHECK(table ==
        "✅ API-1: Ready (98.1% success, 53 requests)\n"
        "⛔ API-2: Disabled (authentication failed)\n"
        "⏳ API-3: FloodWait until 22:45:00 (15m 00s left)\n"
        "✅ API-4: Ready (100.0% success, 52 requests)\n");
  CHECK_THAT(table, !Catch::Contains("2402"));
  CHECK(fmt::format("{}", *pool.snapshot("API-1")) ==
        "API-1 ready: 53 requests, 98.1% success, 0 flood waits, 0 in flight");
}

TEST_CASE("ejected credentials show their rest", "[format]") {
  ManualClock clock(kWallStart);
  PoolOptions options;
  options.ejection.consecutive_failures = 1;
  options.ejection.base_rest = std::chrono::seconds(70);
  CredentialPool<BotToken, BestHealth, ManualClock> pool(options, clock);
  pool.add({"API-9", {Secret(kToken)}});
  pool.acquire()->report(Outcome<>::not_sent("connect failed"));
  CHECK(status_line(*pool.snapshot("API-9"), {.utc = true}) ==
        "🩹 API-9: Resting after failures until 22:31:10 (ejected 1×)");
}

TEST_CASE("Prometheus exposition", "[format]") {
  ManualClock clock(kWallStart);
  CredentialPool<BotToken, BestHealth, ManualClock> pool({}, clock);
  pool.add({"API-1", {Secret(kToken)}});
  pool.add({"we\"ird\\id", {Secret(kToken + "x")}});
  pool.acquire()->success(std::chrono::milliseconds(250));
  pool.cooldown("we\"ird\\id", std::chrono::seconds(42));

  const auto text = prometheus_text(pool.snapshot(), {.pool = "bots"});
  CHECK_THAT(text, Catch::Contains("# TYPE floodgate_requests_total counter\n"));
  CHECK_THAT(text, Catch::Contains("floodgate_requests_total{credential=\"API-1\",pool=\"bots\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("floodgate_cooldown_seconds{credential=\"we\\\"ird\\\\id\",pool=\"bots\"} 42\n"));
  CHECK_THAT(text, Catch::Contains("floodgate_up{credential=\"API-1\",pool=\"bots\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("floodgate_latency_seconds{credential=\"API-1\",pool=\"bots\"} 0.25\n"));
  CHECK_THAT(text, !Catch::Contains("2402"));
}
