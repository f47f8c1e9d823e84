// BotPoolOptions from a user's JSON config (floodgate/telegram/json.hpp), and
// the net/kite formatters that live beside the adapters.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "floodgate/fmt.hpp"
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
