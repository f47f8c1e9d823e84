// Every area's options structs from a user's JSON config, written back
// (round trip), and mistakes named by key: net/, async/, http/, redis/,
// kite/ and telegram/ json.hpp, beyond BotPoolOptions (json_test.cpp).
#include <catch2/catch.hpp>

#include "floodgate/async/json.hpp"
#include "floodgate/http/json.hpp"
#include "floodgate/kite/json.hpp"
#include "floodgate/net/json.hpp"
#include "floodgate/redis/json.hpp"
#include "floodgate/telegram/json.hpp"

#include <string>

using namespace std::chrono_literals;
using nlohmann::json;

namespace {
template <class T>
std::string error_reading(const char* text) {
  try {
    (void)json::parse(text).get<T>();
  } catch (const floodgate::Error& e) {
    return e.what();
  }
  return "";
}

/// Written, read back and written again: the same JSON.
template <class T>
json round_trip(const T& value) {
  const json written = value;
  CHECK(json(written.get<T>()) == written);
  return written;
}
}  // namespace

TEST_CASE("net options map from JSON and round-trip, the TLS context stays code-only", "[json]") {
  using namespace floodgate::net;
  const auto tls = json::parse(R"({"ca_file": "/etc/ssl/my-ca.pem"})").get<TlsClientOptions>();
  CHECK(tls.verify_peer);
  CHECK(tls.ca_file == "/etc/ssl/my-ca.pem");
  CHECK(round_trip(tls) == json::parse(R"({"verify_peer": true, "ca_file": "/etc/ssl/my-ca.pem", "ca_pem": ""})"));

  const auto http = json::parse(R"({"connect_timeout": "3s", "max_body_bytes": 1048576, "user_agent": "bot/1"})")
                        .get<HttpClientOptions>();
  CHECK(http.connect_timeout == 3s);
  CHECK(http.read_timeout == HttpClientOptions{}.read_timeout);
  CHECK(http.max_body_bytes == 1048576);
  CHECK(http.user_agent == "bot/1");
  CHECK(round_trip(http).at("total_timeout") == "90s");

  const auto ws = json::parse(R"({"allow_plain_ws": true, "idle_timeout": 0, "max_message_bytes": 65536})")
                      .get<WebSocketOptions>();
  CHECK(ws.allow_plain_ws);
  CHECK(ws.idle_timeout == 0ms);
  CHECK(ws.max_message_bytes == 65536);
  CHECK(round_trip(ws).at("handshake_timeout") == "10s");

  CHECK(error_reading<HttpClientOptions>(R"({"tls": {}})").starts_with("HttpClientOptions: unknown key 'tls'"));
  CHECK(error_reading<TlsClientOptions>(R"({"ca_file": 7})") ==
        "TlsClientOptions.ca_file: expected a file path as text, got number");
  CHECK(error_reading<WebSocketOptions>(R"({"max_message_bytes": -1})")
            .starts_with("WebSocketOptions.max_message_bytes: -1 is out of range"));
}

TEST_CASE("async, http and redis options map from JSON and round-trip", "[json]") {
  CHECK(json::parse(R"({"max_waiters": 10})").get<floodgate::async::AsyncLimiterOptions>().max_waiters == 10);
  CHECK(round_trip(floodgate::async::AsyncLimiterOptions{}) == json::parse(R"({"max_waiters": 1024})"));
  CHECK(error_reading<floodgate::async::AsyncLimiterOptions>(R"({"max_waiter": 10})") ==
        "AsyncLimiterOptions: unknown key 'max_waiter' (known keys: max_waiters)");

  const auto classify = json::parse(R"({"quota_wait": "720h"})").get<floodgate::http::ClassifyOptions>();
  CHECK(classify.quota_wait == 720h);
  CHECK(classify.default_wait == 1s);
  CHECK(round_trip(classify) == json::parse(R"({"default_wait": "1s", "quota_wait": "720h"})"));

  const auto gate = json::parse(R"({"pool_name": "bots", "on_unavailable": "fail_closed", "poll": "1ms"})")
                        .get<floodgate::redis::ReservingGateOptions>();
  CHECK(gate.pool_name == "bots");
  CHECK(gate.on_unavailable == floodgate::redis::FailurePolicy::fail_closed);
  CHECK(gate.poll == 1ms);
  CHECK(gate.reservation_ttl == 250ms);
  CHECK(round_trip(gate).at("on_unavailable") == "fail_closed");
  CHECK(error_reading<floodgate::redis::ReservingGateOptions>(R"({"poll": "soon"})")
            .starts_with("ReservingGateOptions.poll: 'soon' is not a duration"));
}

TEST_CASE("the reconnect policies (BackoffPolicy) are part of the Redis and Kite options", "[json]") {
  const auto redis = json::parse(R"({"reconnect": {"floor": "50ms", "cap": "2s"}})")
                         .get<floodgate::redis::RedisClientOptions>();
  CHECK(redis.reconnect.floor == 50ms);
  CHECK(redis.reconnect.cap == 2s);
  // Left out: the Redis client's own defaults, not BackoffPolicy's.
  CHECK(redis.reconnect.healthy_after == floodgate::redis::RedisClientOptions{}.reconnect.healthy_after);
  CHECK(redis.reconnect.max_attempts == 0);
  CHECK(round_trip(redis).at("reconnect") ==
        json::parse(R"({"floor": "50ms", "cap": "2s", "healthy_after": "5s", "max_attempts": 0})"));

  const auto kite =
      json::parse(R"({"connection": {"reconnect": {"floor": "2s", "max_attempts": 10}}, "batches_kept": 512})")
          .get<floodgate::kite::TickerManagerOptions>();
  CHECK(kite.batches_kept == 512);
  CHECK(round_trip(kite).at("batches_kept") == 512);
  CHECK(kite.connection.reconnect.floor == 2s);
  CHECK(kite.connection.reconnect.cap == 60s);
  CHECK(kite.connection.reconnect.max_attempts == 10);
  CHECK(round_trip(kite).at("connection").at("reconnect").at("max_attempts") == 10);

  CHECK(error_reading<floodgate::kite::TickerManagerOptions>(R"({"connection": {"reconnect": {"ceiling": "1s"}}})")
            .starts_with("TickerManagerOptions.connection.reconnect: unknown key 'ceiling'"));
  CHECK(error_reading<floodgate::redis::RedisClientOptions>(R"({"reconnect": {"max_attempts": 1.5}})") ==
        "RedisClientOptions.reconnect.max_attempts: expected an integer, got number");
}

TEST_CASE("UpdatePoller, TDLib and MTProto options map from JSON and round-trip", "[json]") {
  using namespace floodgate::telegram;
  const auto poller = json::parse(R"({"token_ids": ["token-0", "token-2"], "timeout": "50s",
                                      "allowed_updates": ["message"], "backoff": {"backoff_cap": "1min"}})")
                          .get<UpdatePollerOptions>();
  CHECK(poller.token_ids == std::vector<std::string>{"token-0", "token-2"});
  CHECK(poller.timeout == 50s);
  REQUIRE(poller.allowed_updates);
  CHECK(*poller.allowed_updates == std::vector<std::string>{"message"});
  CHECK(poller.backoff.backoff_cap == 1min);
  CHECK(poller.backoff.backoff_base == UpdatePollerOptions{}.backoff.backoff_base);
  CHECK(round_trip(poller).at("allowed_updates") == json::array({"message"}));
  CHECK(json(UpdatePollerOptions{}).at("allowed_updates").is_null());  // none: Telegram keeps its own
  CHECK_FALSE(json::parse(R"({"allowed_updates": null})").get<UpdatePollerOptions>().allowed_updates);
  CHECK(error_reading<UpdatePollerOptions>(R"({"token_ids": ["token-0", 7]})") ==
        "UpdatePollerOptions.token_ids[1]: expected text, got number");
  CHECK(error_reading<UpdatePollerOptions>(R"({"on_update": null})").starts_with(
        "UpdatePollerOptions: unknown key 'on_update'"));

  const auto tdjson = json::parse(R"({"request_timeout": "1min", "tdlib_log_verbosity": -1})").get<TdjsonClient::Options>();
  CHECK(tdjson.request_timeout == 1min);
  CHECK(tdjson.tdlib_log_verbosity == -1);
  round_trip(tdjson);
  const auto library = json::parse(R"({"search_dirs": ["/opt/td/lib", "/usr/lib"]})").get<TdjsonLibrary::Options>();
  CHECK(library.search_dirs == std::vector<std::filesystem::path>{"/opt/td/lib", "/usr/lib"});
  CHECK(round_trip(library) == json::parse(R"({"path": "", "search_dirs": ["/opt/td/lib", "/usr/lib"]})"));

  const auto pool = json::parse(R"({"session": {"sessions_root": "/var/lib/bot", "use_test_dc": true,
                                                "login_timeout": "30s", "bot_token": "2402491234:AAHsecret-value"},
                                    "retry": {"max_attempts": 5}})")
                        .get<MtprotoPool::Options>();
  CHECK(pool.session.sessions_root == "/var/lib/bot");
  CHECK(pool.session.use_test_dc);
  CHECK(pool.session.login_timeout == 30s);
  REQUIRE(pool.session.bot_token);
  CHECK(pool.session.bot_token->reveal() == "2402491234:AAHsecret-value");
  CHECK(pool.retry.max_attempts == 5);
  const json written = pool;
  CHECK(written.at("session").at("bot_token") == "2402****");  // never in clear
  CHECK(written.dump().find("AAHsecret") == std::string::npos);
  CHECK(written.at("session").at("login_timeout") == "30s");
  CHECK(json(json(MtprotoSession::Options{}).get<MtprotoSession::Options>()) == json(MtprotoSession::Options{}));
  CHECK(error_reading<MtprotoPool::Options>(R"({"session": {"login_timeout": "forever"}})")
            .starts_with("MtprotoPool::Options.session.login_timeout: 'forever' is not a duration"));
  CHECK(error_reading<MtprotoPool::Options>(R"({"store": null})").starts_with("MtprotoPool::Options: unknown key 'store'"));
}
