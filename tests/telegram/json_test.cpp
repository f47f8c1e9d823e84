// The adapters' options from a user's JSON config (telegram/, http/, kite/,
// redis/ json.hpp), and the formatters of every area (floodgate/fmt.hpp).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "floodgate/fmt.hpp"
#include "floodgate/http/json.hpp"
#include "floodgate/kite/json.hpp"
#include "floodgate/redis/json.hpp"
#include "floodgate/telegram/json.hpp"

using namespace std::chrono_literals;
using floodgate::Rate;
using floodgate::telegram::BotPoolOptions;
using nlohmann::json;

TEST_CASE("a user's JSON config maps onto BotPoolOptions and round-trips", "[json]") {
  const auto config = json::parse(R"({
    "endpoint": "http://127.0.0.1:8081",
    "retry": {"max_attempts": 5, "max_wait": "5s"},
    "limits": {"bot": "25/s", "private_chat_burst": 2, "group_chat": "15/min", "keys": {"max_keys": 5000}},
    "pool": {"ejection": {"consecutive_failures": 2}},
    "flood_scope": {"chats": 3, "window": "1500ms"},
    "routing": {"enabled": false, "idle": "10min", "unreachable_for": "1h"}
  })");
  const auto options = config.get<BotPoolOptions>();
  CHECK_FALSE(options.endpoint.tls);
  CHECK(options.endpoint.host == "127.0.0.1");
  CHECK(options.endpoint.port == 8081);
  CHECK(options.retry.max_attempts == 5);
  CHECK(options.retry.max_wait == 5s);
  CHECK(options.limits.bot == Rate::per_second(25));
  CHECK(options.limits.private_chat == Rate::per_second(1));  // left out: the default
  CHECK(options.limits.private_chat_burst == 2);
  CHECK(options.limits.group_chat == Rate::per_minute(15));
  CHECK(options.limits.keys.max_keys == 5000);
  CHECK(options.pool.ejection.consecutive_failures == 2);
  CHECK(options.flood_scope.chats == 3);
  CHECK(options.flood_scope.window == 1500ms);
  CHECK_FALSE(options.routing.enabled);
  CHECK(options.routing.idle == 10min);
  CHECK(options.routing.unreachable_for == 1h);

  const json written = options;
  CHECK(written.at("limits").at("bot") == "25/s");
  CHECK(written.at("endpoint") == "http://127.0.0.1:8081");
  CHECK(json(written.get<BotPoolOptions>()) == written);
}

TEST_CASE("BotPoolOptions: code-only members and typos are refused by name", "[json]") {
  const auto error_of = [](const char* text) -> std::string {
    try {
      (void)json::parse(text).get<BotPoolOptions>();
    } catch (const floodgate::Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of(R"({"routing": {"affinity_sink": null}})").find("BotPoolOptions.routing: unknown key 'affinity_sink'") !=
        std::string::npos);
  CHECK(error_of(R"({"limit": {}})").find("unknown key 'limit'") != std::string::npos);
  CHECK(error_of(R"({"limits": {"bot": "30/fortnight"}})").find("BotPoolOptions.limits.bot") != std::string::npos);
  CHECK(error_of(R"({"endpoint": "ftp://x"})").find("BotPoolOptions.endpoint") != std::string::npos);
  CHECK(error_of(R"({"routing": {"idle": "1500ms"}})").find("not a whole number of s") != std::string::npos);
}

TEST_CASE("net, kite and redis values format by name", "[fmt]") {
  CHECK(fmt::format("{}", floodgate::net::Endpoint::parse("https://api.telegram.org")) ==
        "https://api.telegram.org:443");
  CHECK(fmt::format("{}", floodgate::net::HttpMethod::post) == "POST");
  CHECK(fmt::format("{}", floodgate::net::errc::timeout) ==
        make_error_code(floodgate::net::errc::timeout).message());
  CHECK(fmt::format("{}", floodgate::redis::errc::unavailable) ==
        make_error_code(floodgate::redis::errc::unavailable).message());
  CHECK(fmt::format("{}", floodgate::kite::Mode::full) == "full");
  CHECK(fmt::format("{}", floodgate::kite::Segment::nse) == "nse");
  CHECK(fmt::format("{}", static_cast<floodgate::kite::Segment>(42)) == "segment 42");
  CHECK(fmt::format("{}", floodgate::kite::PacketKind::index_quote) == "index_quote");
  CHECK(fmt::format("{}", floodgate::kite::KeyHealth::degraded) == "degraded");
  CHECK(fmt::format("{}", floodgate::kite::ConnectionState::waiting_to_reconnect) ==
        to_string(floodgate::kite::ConnectionState::waiting_to_reconnect));
  CHECK(fmt::format("{}", floodgate::kite::DistributionStrategy::round_robin) == "round_robin");
  floodgate::kite::Tick tick;
  tick.instrument_token = 408065;
  tick.kind = floodgate::kite::PacketKind::quote;
  tick.last_price = 1523.45;
  CHECK(fmt::format("{}", tick) == "408065 quote 1523.45");
}

TEST_CASE("ApiKeyPool, Kite manager and Redis options from JSON, round-trip, named errors", "[json]") {
  const auto api = json::parse(R"({"retry": {"max_attempts": 6}, "unreachable_rest": "15s"})")
                       .get<floodgate::http::ApiKeyPoolOptions>();
  CHECK(api.retry.max_attempts == 6);
  CHECK(api.unreachable_rest == 15s);
  CHECK(json(json(api).get<floodgate::http::ApiKeyPoolOptions>()) == json(api));

  const auto kite = json::parse(R"({
    "per_key": {"max_connections": 2, "connection": {"url": "wss://127.0.0.1:9001", "watchdog_timeout": "3s"}},
    "distribution": "manual", "default_mode": "full", "failover_after": "45s", "conflate_ticks": true
  })").get<floodgate::kite::MultiKeyTickerManagerOptions>();
  CHECK(kite.per_key.max_connections == 2);
  CHECK(kite.per_key.connection.url == "wss://127.0.0.1:9001");
  CHECK(kite.per_key.connection.watchdog_timeout == 3s);
  CHECK(kite.distribution == floodgate::kite::DistributionStrategy::manual);
  CHECK(kite.default_mode == floodgate::kite::Mode::full);
  CHECK(kite.failover_after == 45s);
  CHECK(kite.conflate_ticks);
  const json kite_json = kite;
  CHECK(kite_json.at("default_mode") == "full");
  CHECK(json(kite_json.get<floodgate::kite::MultiKeyTickerManagerOptions>()) == kite_json);
  CHECK_FALSE(kite_json.contains("keys"));  // keys and their secrets are never written

  const auto redis = json::parse(R"({"pool_name": "bots", "on_unavailable": "fail_closed",
                                     "client": {"command_timeout": "500ms"}})")
                         .get<floodgate::redis::RedisCooldownOptions>();
  CHECK(redis.pool_name == "bots");
  CHECK(redis.on_unavailable == floodgate::redis::FailurePolicy::fail_closed);
  CHECK(redis.client.command_timeout == 500ms);
  CHECK(json(json(redis).get<floodgate::redis::RedisCooldownOptions>()) == json(redis));
  const auto limits = json::parse(R"({"owner": "token-a", "lease": 4, "lease_ttl": "200ms"})")
                          .get<floodgate::redis::RedisLimitOptions>();
  CHECK(limits.lease == 4);
  CHECK(limits.lease_ttl == 200ms);

  const auto error_of = [](auto read) -> std::string {
    try {
      read();
    } catch (const floodgate::Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(error_of([] { (void)json::parse(R"({"default_mode": "everything"})").get<floodgate::kite::MultiKeyTickerManagerOptions>(); })
            .find("MultiKeyTickerManagerOptions.default_mode") != std::string::npos);
  CHECK(error_of([] { (void)json::parse(R"({"keys": []})").get<floodgate::kite::MultiKeyTickerManagerOptions>(); })
            .find("unknown key 'keys'") != std::string::npos);
  CHECK(error_of([] { (void)json::parse(R"({"on_unavailable": "shrug"})").get<floodgate::redis::RedisLimitOptions>(); })
            .find("RedisLimitOptions.on_unavailable") != std::string::npos);
}
