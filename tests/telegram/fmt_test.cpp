// The formatters of the adapters' enums, stats and credentials (telegram/,
// kite/, redis/, http/, net/ fmt.hpp), checked text for text; secrets print
// redacted ("2402****") and never in clear.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "floodgate/fmt.hpp"

using namespace std::chrono_literals;

namespace {
constexpr const char* clear_secret = "2402491234:AAHsecret-value";
}  // namespace

TEST_CASE("Telegram enums format by name, with the string format spec", "[fmt]") {
  using namespace floodgate::telegram;
  CHECK(fmt::format("{}", MediaKind::photo) == "photo");
  CHECK(fmt::format("{}", MediaKind::animation) == "animation");
  CHECK(fmt::format("{}", MediaKind::document) == "document");
  CHECK(fmt::format("{}", MtprotoSession::State::needs_user_action) == "needs user action");  // to_string(State)
  CHECK(fmt::format("{}", MtprotoSession::State::ready) == "ready");
  CHECK(fmt::format("{}", AuthStep::phone_number) == "phone_number");
  CHECK(fmt::format("{}", AuthStep::email_code) == "email_code");
  CHECK(fmt::format("{}", PollState::conflict) == "conflict");
  CHECK(fmt::format("{}", TdjsonLibrary::Interface::client_id) == "client_id");
  CHECK(fmt::format("{}", TdjsonLibrary::Interface::legacy) == "legacy");
  CHECK(fmt::format("[{:>8}]", AuthStep::code) == "[    code]");
}

TEST_CASE("Telegram stats and statuses format as key=value text", "[fmt]") {
  using namespace floodgate::telegram;
  BotPollStatus status{.token_id = "token-1", .state = PollState::polling, .next_offset = 42, .requests = 7,
                       .delivered = 40, .conflicts = 1};
  CHECK(fmt::format("{}", status) == "token-1 polling next_offset=42 requests=7 delivered=40 conflicts=1");
  status.state = PollState::conflict;
  status.description = "Conflict: terminated by other getUpdates request";
  CHECK(fmt::format("{}", status) ==
        "token-1 conflict next_offset=42 requests=7 delivered=40 conflicts=1 "
        "description=\"Conflict: terminated by other getUpdates request\"");
  const TdjsonClient::Stats stats{.received = 12, .malformed = 1, .unmatched = 2, .pending = 3};
  CHECK(fmt::format("{}", stats) == "received=12 malformed=1 unmatched=2 pending=3");
}

TEST_CASE("credentials format with their secrets redacted", "[fmt]") {
  const floodgate::BotToken token{floodgate::Secret(clear_secret)};
  CHECK(fmt::format("{}", token) == "2402****");
  const floodgate::MtprotoApp app{.api_id = 12345, .api_hash = floodgate::Secret("0123456789abcdef")};
  CHECK(fmt::format("{}", app) == "api_id=12345 api_hash=0123****");
  const floodgate::telegram::MtprotoCredentials credentials{.api_id = 777, .api_hash = floodgate::Secret(clear_secret)};
  CHECK(fmt::format("{}", credentials) == "api_id=777 api_hash=2402****");
  const floodgate::KiteKey kite{floodgate::Secret("kitekey123456"), floodgate::Secret(clear_secret)};
  CHECK(fmt::format("{}", kite) == "api_key=kite**** access_token=2402****");
  const auto url = floodgate::redis::parse_redis_url("redis://app:" + std::string(clear_secret) + "@127.0.0.1:6380/2");
  const auto url_text = fmt::format("{}", url);
  CHECK(url_text == url.redacted());
  CHECK(url_text.find("AAH") == std::string::npos);
  CHECK(url_text.find("2402491234") == std::string::npos);
  for (const auto& text : {fmt::format("{}", token), fmt::format("{:>40}", app), fmt::format("{}", credentials),
                           fmt::format("{}", kite)}) {
    CHECK(text.find("AAHsecret") == std::string::npos);
  }
}

TEST_CASE("Kite stats format as key=value text", "[fmt]") {
  using namespace floodgate::kite;
  ConnectionStats connection;
  connection.state = ConnectionState::connected;
  connection.subscriptions = 1500;
  connection.ticks = 9000;
  connection.frames = 30;
  connection.heartbeats = 4;
  connection.connects = 2;
  connection.reconnects = 1;
  connection.uptime = 5000ms;
  CHECK(fmt::format("{}", connection) ==
        "connected subscriptions=1500 ticks=9000 frames=30 heartbeats=4 text_messages=0 malformed_frames=0 "
        "unknown_packets=0 connects=2 reconnects=1 failed_attempts=0 watchdog_timeouts=0 failures_in_a_row=0 "
        "uptime=5000ms");
  connection.state = ConnectionState::waiting_to_reconnect;
  connection.last_error = make_error_code(floodgate::net::errc::timeout);
  connection.last_http_status = 403;
  connection.uptime = 0ms;
  CHECK(fmt::format("{}", connection).ends_with(
      fmt::format("uptime=0ms last_error=\"{}\" last_http_status=403", connection.last_error.message())));
  CHECK(fmt::format("{}", connection).starts_with("reconnecting subscriptions=1500 "));

  KeyStats key;
  key.id = "API-1";
  key.health = KeyHealth::live;
  key.instruments = 4500;
  key.capacity = 9000;
  key.ticks = 100;
  key.uptime = 60000ms;
  key.connections = {connection, connection};
  CHECK(fmt::format("{}", key) ==
        "API-1 live instruments=4500/9000 ticks=100 reconnects=0 malformed_frames=0 unknown_packets=0 "
        "failed_attempts=0 watchdog_timeouts=0 instruments_moved_out=0 instruments_moved_in=0 uptime=60000ms "
        "connections=2");

  ManagerStats manager;
  manager.keys = 2;
  manager.keys_serving = 1;
  manager.connections_open = 3;
  manager.instruments = 4500;
  manager.ticks = 100;
  manager.failovers = 1;
  manager.instruments_moved = 1500;
  CHECK(fmt::format("{}", manager) ==
        "keys=2 keys_serving=1 connections_open=3 instruments=4500 unplaced_instruments=0 ticks=100 "
        "messages_delivered=0 messages_dropped=0 ticks_conflated=0 unknown_packets=0 reconnects=0 failovers=1 "
        "instruments_moved=1500 uptime=0ms");
}

TEST_CASE("Redis, HTTP and net values format by name", "[fmt]") {
  using floodgate::redis::FailurePolicy;
  using floodgate::redis::RedisReply;
  CHECK(fmt::format("{}", FailurePolicy::fail_open) == "fail_open");
  CHECK(fmt::format("{}", FailurePolicy::fail_closed) == "fail_closed");
  CHECK(fmt::format("{}", RedisReply::Type::status) == "status");
  CHECK(fmt::format("{}", RedisReply::Type::nil) == "nil");
  using floodgate::http::KeyAuth;
  CHECK(fmt::format("{}", KeyAuth::Style::query) == "query");
  CHECK(fmt::format("{}", KeyAuth::bearer()) == "bearer");
  CHECK(fmt::format("{}", KeyAuth::header("x-api-key")) == "header x-api-key");
  CHECK(fmt::format("{}", KeyAuth::query("key")) == "query key");
  const floodgate::net::HttpClientStats http{.connections_opened = 2, .connections_reused = 9, .requests = 11,
                                             .failures = 1};
  CHECK(fmt::format("{}", http) == "connections_opened=2 connections_reused=9 requests=11 failures=1");
}
