// nlohmann::json serializers of the core's options (floodgate/core/json.hpp):
// a user's config maps onto them, round-trips, and mistakes are named.
#include <catch2/catch.hpp>

#include <string>

#include "floodgate/core/json.hpp"

using namespace floodgate;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {
std::string error_of(const json& j, auto read) {
  try {
    read(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a user's JSON maps onto PoolOptions and RetryPolicy, left-out keys keep defaults", "[json]") {
  const auto config = json::parse(R"({
    "pool": {"ejection": {"consecutive_failures": 3, "base_rest": "45s", "max_rest": "10min"}, "latency_smoothing": 0.5},
    "retry": {"max_attempts": 4, "max_wait": 1.5, "backoff_base": "250ms", "flood_jitter_cap": "1s"}
  })");
  const auto pool = config.at("pool").get<PoolOptions>();
  CHECK(pool.ejection.consecutive_failures == 3);
  CHECK(pool.ejection.base_rest == 45s);
  CHECK(pool.ejection.max_rest == 10min);
  CHECK(pool.ejection.successes_to_forgive == EjectionPolicy{}.successes_to_forgive);
  CHECK(pool.latency_smoothing == 0.5);
  const auto retry = config.at("retry").get<RetryPolicy>();
  CHECK(retry.max_attempts == 4);
  CHECK(retry.max_wait == 1500ms);  // a bare number is seconds
  CHECK(retry.backoff_base == 250ms);
  CHECK(retry.backoff_cap == RetryPolicy{}.backoff_cap);
  CHECK(retry.flood_jitter_cap == 1s);
}

TEST_CASE("options round-trip through JSON, durations are written as text", "[json]") {
  RetryPolicy retry;
  retry.max_attempts = 3;
  retry.max_wait = 90s;
  retry.backoff_base = 1500us;
  const json j = retry;
  CHECK(j.at("max_wait") == "90s");
  CHECK(j.at("backoff_base") == "1500us");
  CHECK(j.at("backoff_cap") == "10s");
  const auto back = j.get<RetryPolicy>();
  CHECK(back.max_attempts == 3);
  CHECK(back.max_wait == 90s);
  CHECK(back.backoff_base == 1500us);
  CHECK(json(back) == j);

  PoolOptions pool;
  pool.ejection.max_rest = 2h;
  const json p = pool;
  CHECK(p.at("ejection").at("max_rest") == "2h");
  CHECK(json(p.get<PoolOptions>()) == p);

  KeyedLimiterOptions keys{.max_keys = 1000, .shards = 4};
  CHECK(json(json(keys).get<KeyedLimiterOptions>()) == json(keys));

  Rate rate = Rate::zero();
  json("20/min").get_to(rate);
  CHECK(rate == Rate::per_minute(20));
  CHECK(json(rate) == "20/min");
}

TEST_CASE("mistakes in a config are errors that name the key", "[json]") {
  const auto read_pool = [](const json& j) { (void)j.get<PoolOptions>(); };
  const auto read_retry = [](const json& j) { (void)j.get<RetryPolicy>(); };
  auto what = error_of(json::parse(R"({"latncy_smoothing": 0.3})"), read_pool);
  CHECK(what.find("unknown key 'latncy_smoothing'") != std::string::npos);
  CHECK(what.find("latency_smoothing") != std::string::npos);  // the keys it has
  what = error_of(json::parse(R"({"ejection": {"base_rest": "30 parsecs"}})"), read_pool);
  CHECK(what.find("PoolOptions.ejection.base_rest") != std::string::npos);
  what = error_of(json::parse(R"({"max_attempts": "eight"})"), read_retry);
  CHECK(what.find("RetryPolicy.max_attempts: expected an integer, got string") != std::string::npos);
  what = error_of(json::parse(R"({"max_attempts": -1})"), read_retry);
  CHECK(what.find("RetryPolicy.max_attempts") != std::string::npos);
  what = error_of(json::parse(R"({"max_attempts": 4294967296})"), read_retry);
  CHECK(what.find("RetryPolicy.max_attempts: 4294967296 is out of range") != std::string::npos);
  what = error_of(json::parse(R"({"max_wait": -2})"), read_retry);
  CHECK(what.find("RetryPolicy.max_wait") != std::string::npos);
  what = error_of(json::parse(R"([1, 2])"), read_retry);
  CHECK(what.find("RetryPolicy: expected an object") != std::string::npos);
  what = error_of(json("30 per second"), [](const json& j) {
    Rate rate = Rate::zero();
    j.get_to(rate);
  });
  CHECK(what.find("invalid rate '30 per second'") != std::string::npos);
}

TEST_CASE("a Secret is written redacted, never in clear", "[json]") {
  const Secret token("2402491234:AAHsecret-value");
  const auto written = floodgate::json_detail::write_value(token);
  CHECK(written == "2402****");
  CHECK(written.dump().find("AAH") == std::string::npos);
}

TEST_CASE("a redacted Secret does not read back as a credential, a real one does", "[json]") {
  Secret read;
  floodgate::json_detail::read_value(json("2402491234:AAHsecret-value"), read, "BotToken");
  CHECK(read.reveal() == "2402491234:AAHsecret-value");

  for (const char* redacted : {"2402****", "****"}) {
    Secret kept("kept-secret-value");
    const auto what = error_of(json(redacted), [&](const json& j) { floodgate::json_detail::read_value(j, kept, "BotToken"); });
    CHECK(what == fmt::format("BotToken: \"{}\" is a redacted secret (written configs hold secrets that way); "
                              "give the secret itself",
                              redacted));
    CHECK(kept.reveal() == "kept-secret-value");  // nothing half-read
  }
  // None given: written "", read back as none.
  CHECK(floodgate::json_detail::write_value(Secret()) == "");
  Secret none("x");
  floodgate::json_detail::read_value(json(""), none, "BotToken");
  CHECK(none.reveal().empty());
  // A written config holding a secret is refused on the way back, by its path.
  const auto written = floodgate::json_detail::write_value(Secret("2402491234:AAHsecret-value"));
  Secret back;
  CHECK(error_of(written, [&](const json& j) { floodgate::json_detail::read_value(j, back, "bots[0].token"); })
            .starts_with("bots[0].token: \"2402****\" is a redacted secret"));
}

TEST_CASE("BackoffPolicy, StatusOptions and PrometheusOptions map from JSON and round-trip", "[json]") {
  const auto backoff = json::parse(R"({"floor": "250ms", "cap": "2min", "max_attempts": 0})").get<BackoffPolicy>();
  CHECK(backoff.floor == 250ms);
  CHECK(backoff.cap == 2min);
  CHECK(backoff.healthy_after == BackoffPolicy{}.healthy_after);  // left out: the default
  CHECK(backoff.max_attempts == 0);
  const json written = backoff;
  CHECK(written == json::parse(R"({"floor": "250ms", "cap": "2min", "healthy_after": "30s", "max_attempts": 0})"));
  const auto back = written.get<BackoffPolicy>();
  CHECK(back.floor == backoff.floor);
  CHECK(back.cap == backoff.cap);
  CHECK(back.healthy_after == backoff.healthy_after);
  CHECK(back.max_attempts == backoff.max_attempts);

  CHECK(json::parse(R"({"utc": true})").get<StatusOptions>().utc);
  CHECK(json(StatusOptions{}) == json::parse(R"({"utc": false})"));
  const auto prometheus = json::parse(R"({"prefix": "my_bot", "pool": "bots"})").get<PrometheusOptions>();
  CHECK(prometheus.prefix == "my_bot");
  CHECK(prometheus.pool == "bots");
  CHECK(json(prometheus) == json::parse(R"({"prefix": "my_bot", "pool": "bots"})"));
}

TEST_CASE("BackoffPolicy: an unknown key or a wrong type is an error naming the key", "[json]") {
  const auto read = [](const json& j) { (void)j.get<BackoffPolicy>(); };
  CHECK(error_of(json::parse(R"({"flor": "1s"})"), read) ==
        "BackoffPolicy: unknown key 'flor' (known keys: floor, cap, healthy_after, max_attempts)");
  CHECK(error_of(json::parse(R"({"max_attempts": "many"})"), read) ==
        "BackoffPolicy.max_attempts: expected an integer, got string");
  CHECK(error_of(json::parse(R"({"cap": true})"), read).starts_with(
        "BackoffPolicy.cap: expected text or a number, got boolean"));
  CHECK(error_of(json::parse(R"({"healthy_after": "30 parsecs"})"), read).starts_with(
        "BackoffPolicy.healthy_after: '30 parsecs' has no known unit"));
  CHECK(error_of(json::parse(R"({"utc": 1})"), [](const json& j) { (void)j.get<StatusOptions>(); }) ==
        "StatusOptions.utc: expected true or false, got number");
}
