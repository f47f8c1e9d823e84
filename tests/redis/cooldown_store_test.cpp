// RedisCooldownStore: pools in different "processes" (each its own store,
// connections and io thread, as two processes would have) share cooldowns
// through a real redis-server.
#include <catch2/catch.hpp>

#include <boost/asio/use_future.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include "../telegram/io_runner.hpp"
#include "floodgate/core/cooldown_store.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/keys.hpp"
#include "redis_server.hpp"

using floodgate::redis::FailurePolicy;
using floodgate::redis::parse_redis_url;
using floodgate::redis::RedisClient;
using floodgate::redis::RedisCooldownOptions;
using floodgate::redis::RedisCooldownStore;
using floodgate::redis::RedisReply;
using floodgate::test::IoRunner;
using floodgate::test::RedisServer;
using namespace std::chrono_literals;
using Pool = floodgate::CredentialPool<int>;

namespace {

RedisCooldownOptions options(std::string pool = "bots") {
  RedisCooldownOptions o;
  o.pool_name = std::move(pool);
  o.open_timeout = 3s;
  o.client.connect_timeout = 1000ms;
  o.client.command_timeout = 1000ms;
  o.client.reconnect.floor = 20ms;
  o.client.reconnect.cap = 100ms;
  return o;
}

// One process: an io thread, a pool of three tokens, a store attached to it.
struct Process {
  Process(const std::string& url, RedisCooldownOptions o = options()) : store(io.executor(), parse_redis_url(url), o) {
    for (const char* id : {"tok-1", "tok-2", "tok-3"}) pool.add({id, 0});
    opened = store.open();
    store.attach(pool);
  }
  ~Process() { store.detach(pool); }

  bool cooling(const std::string& id) {
    auto s = pool.snapshot(id);
    return s && s->state == floodgate::CredentialState::cooling;
  }
  std::optional<std::chrono::nanoseconds> remaining(const std::string& id) {
    auto s = pool.snapshot(id);
    if (!s || s->state != floodgate::CredentialState::cooling) return std::nullopt;
    return s->cooldown_remaining;
  }

  IoRunner io;
  Pool pool;
  RedisCooldownStore store;
  bool opened = false;
};

std::pair<std::error_code, RedisReply> command(RedisServer& server, std::vector<std::string> args) {
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()));
  client.start();
  auto result = client.async_command(std::move(args), boost::asio::use_future).get();
  return {std::get<0>(result), std::get<1>(result)};
}

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("redis keys: hash-tagged, ids kept apart, pool names checked") {
  floodgate::redis::Keys keys("bots");
  CHECK(keys.cooldown("tok-1") == "floodgate:{bots}:state:cooldown:tok-1");
  CHECK(keys.scoped("a:b", "c") != keys.scoped("a", "b:c"));
  CHECK(keys.scoped("tok-1", "-100") == "floodgate:{bots}:state:scoped:5:tok-1:-100");
  CHECK(keys.kind_of(keys.disabled("x")) == floodgate::redis::Keys::Kind::disabled);
  CHECK_FALSE(keys.kind_of("floodgate:{other}:state:cooldown:x"));
  CHECK(keys.scoped_pattern("a*b") == "floodgate:{bots}:state:scoped:3:a\\*b:*");
  CHECK_THROWS_AS(floodgate::redis::Keys("a}b"), floodgate::Error);
  CHECK_THROWS_AS(floodgate::redis::Keys(""), floodgate::Error);
}

TEST_CASE("redis cooldowns: a flood wait seen by one process cools the token in the other within a round trip") {
  RedisServer server;
  Process a(server.url());
  Process b(server.url());
  REQUIRE(a.opened);
  REQUIRE(b.opened);
  REQUIRE(wait_for([&] { return a.store.shared() && b.store.shared(); }));

  a.pool.cooldown("tok-2", 900s);
  REQUIRE(wait_for([&] { return b.cooling("tok-2"); }));
  CHECK(*b.remaining("tok-2") > 895s);
  CHECK(*b.remaining("tok-2") <= 901s);
  CHECK_FALSE(b.cooling("tok-1"));
  // b's pool then never hands tok-2 out.
  for (int i = 0; i < 20; ++i) {
    auto lease = b.pool.acquire();
    REQUIRE(lease);
    CHECK(lease->id() != "tok-2");
  }

  // The key carries the TTL; no token appears in Redis, only ids.
  auto [ec, ttl] = command(server, {"PTTL", "floodgate:{bots}:state:cooldown:tok-2"});
  // The pool's CoarseClock pads every cooldown by its lag bound, so that it
  // never ends early; the TTL carries that padding.
  const auto padding = std::chrono::ceil<std::chrono::milliseconds>(floodgate::CoarseClock{}.lag_bound()).count();
  CHECK(ttl.integer > 895000);
  CHECK(ttl.integer <= 900000 + padding);

  // A per-chat cooldown, a disable and an enable travel the same way.
  b.pool.cooldown("tok-3", "-1001", 60s);
  REQUIRE(wait_for([&] { return a.pool.snapshot("tok-3")->scoped_cooldowns == 1; }));
  CHECK_FALSE(a.pool.acquire_id("tok-3", "-1001"));
  CHECK(a.pool.acquire_id("tok-3", "-1002"));

  a.pool.disable("tok-1", "401 Unauthorized");
  REQUIRE(wait_for([&] { return b.pool.snapshot("tok-1")->state == floodgate::CredentialState::disabled; }));
  CHECK(b.pool.snapshot("tok-1")->disabled_reason == "401 Unauthorized");
  b.pool.enable("tok-1");
  REQUIRE(wait_for([&] { return a.pool.snapshot("tok-1")->state != floodgate::CredentialState::disabled; }));

  a.pool.clear_cooldown("tok-2");
  REQUIRE(wait_for([&] { return !b.cooling("tok-2"); }));
  CHECK(command(server, {"EXISTS", "floodgate:{bots}:state:cooldown:tok-2"}).second.integer == 0);
}

TEST_CASE("redis cooldowns: a process that starts later loads them, and expiry is Redis' TTL") {
  RedisServer server;
  {
    Process a(server.url());
    a.pool.cooldown("tok-1", 600s);
    a.pool.cooldown("tok-2", 300ms);
    a.pool.disable("tok-3", "revoked");
    REQUIRE(wait_for([&] {
      return command(server, {"EXISTS", "floodgate:{bots}:state:cooldown:tok-1"}).second.integer == 1;
    }));
  }  // a is gone: what it wrote stays in Redis, bounded by the TTLs
  std::this_thread::sleep_for(400ms);  // real time: the TTL is Redis' clock
  CHECK(command(server, {"EXISTS", "floodgate:{bots}:state:cooldown:tok-2"}).second.integer == 0);
  Process late(server.url());
  REQUIRE(late.opened);
  CHECK(late.cooling("tok-1"));
  CHECK(*late.remaining("tok-1") > 590s);
  CHECK_FALSE(late.cooling("tok-2"));
  CHECK(late.pool.snapshot("tok-3")->state == floodgate::CredentialState::disabled);

  // Another pool's name sees none of it.
  Process other(server.url(), options("other"));
  CHECK_FALSE(other.cooling("tok-1"));
}

TEST_CASE("redis cooldowns: a Redis restarted empty gets the live cooldowns back from the processes") {
  RedisServer server;
  Process a(server.url());
  Process b(server.url());
  a.pool.cooldown("tok-1", 600s);
  REQUIRE(wait_for([&] { return b.cooling("tok-1"); }));
  server.restart();
  // Both reconnect, write back what they hold, and keep sharing.
  REQUIRE(wait_for([&] {
    return command(server, {"EXISTS", "floodgate:{bots}:state:cooldown:tok-1"}).second.integer == 1;
  }));
  REQUIRE(wait_for([&] { return a.store.shared() && b.store.shared(); }));
  b.pool.cooldown("tok-3", 120s);
  REQUIRE(wait_for([&] { return a.cooling("tok-3"); }));
}

TEST_CASE("redis cooldowns: unreachable at start, fail_open runs on the local file and shares once Redis is up") {
  const auto dir = std::filesystem::temp_directory_path() / ("floodgate-redis-store-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  floodgate::CooldownStore file(dir / "cooldowns.json");
  file.set_cooldown("tok-1", std::chrono::system_clock::now() + 300s);

  std::unique_ptr<RedisServer> server = std::make_unique<RedisServer>();
  const int port = server->port();
  const std::string url = server->url();
  server->stop();

  auto o = options();
  o.fallback = &file;
  const auto started = std::chrono::steady_clock::now();
  Process a(url, o);
  CHECK_FALSE(a.opened);
  CHECK(std::chrono::steady_clock::now() - started < 2s);  // no hang: the refusal decides
  CHECK(a.cooling("tok-1"));                               // from the file
  a.pool.cooldown("tok-2", 200s);                          // kept locally meanwhile
  CHECK(file.find("tok-2"));

  server->restart();
  REQUIRE(server->port() == port);
  REQUIRE(wait_for([&] { return a.store.shared(); }, 5s));
  REQUIRE(wait_for([&] {
    return command(*server, {"EXISTS", "floodgate:{bots}:state:cooldown:tok-2"}).second.integer == 1;
  }));
  Process b(url);
  CHECK(b.cooling("tok-1"));
  CHECK(b.cooling("tok-2"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("redis cooldowns: unreachable at start, fail_closed refuses to open") {
  int port = 0;
  {
    RedisServer gone;
    port = gone.port();
  }
  IoRunner io;
  auto o = options();
  o.on_unavailable = FailurePolicy::fail_closed;
  RedisCooldownStore store(io.executor(), parse_redis_url("redis://127.0.0.1:" + std::to_string(port)), o);
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(store.open(), Catch::Contains("unavailable") && Catch::Contains("fail_closed"));
  CHECK(std::chrono::steady_clock::now() - started < 2s);
}

TEST_CASE("redis cooldowns: a wrong password is a clear error that does not echo it") {
  // The ACL docs/redis.md gives a floodgate user: enough for everything the store does.
  RedisServer server({.user = "fleet",
                      .password = "correct-horse",
                      .acl = "~floodgate:* &floodgate:* +@read +@write +@scripting +@pubsub +@connection +time"});
  IoRunner io;
  auto o = options();
  o.on_unavailable = FailurePolicy::fail_closed;
  RedisCooldownStore store(io.executor(), parse_redis_url(server.url("fleet", "battery-staple-9")), o);
  try {
    store.open();
    FAIL("opened with a wrong password");
  } catch (const floodgate::redis::RedisError& e) {
    const std::string what = e.what();
    CHECK(e.code() == floodgate::errc::auth_failed);
    CHECK(what.find("refused the user/password") != std::string::npos);
    CHECK(what.find("fleet:****@") != std::string::npos);
    CHECK(what.find("battery-staple-9") == std::string::npos);
  }
  // The right one works, and the ACL allows every command the store sends.
  Process ok(server.url("fleet", "correct-horse"));
  Process other(server.url("fleet", "correct-horse"));
  CHECK(ok.opened);
  ok.pool.cooldown("tok-1", 60s);
  ok.pool.cooldown("tok-2", "chat", 60s);
  ok.pool.disable("tok-3", "revoked");
  REQUIRE(wait_for([&] { return other.cooling("tok-1") && other.pool.snapshot("tok-3")->state ==
                                                              floodgate::CredentialState::disabled; }));
  ok.pool.clear_cooldown("tok-2");
  ok.pool.enable("tok-3");
  REQUIRE(wait_for([&] { return other.pool.snapshot("tok-3")->state != floodgate::CredentialState::disabled; }));
}

TEST_CASE("redis cooldowns: malformed entries and events are ignored, never fatal") {
  RedisServer server;
  command(server, {"SET", "floodgate:{bots}:state:cooldown:x", "{not json", "PX", "100000"});
  command(server, {"SET", "floodgate:{bots}:state:scoped:1:y:", "[1,2]", "PX", "100000"});
  Process a(server.url());
  CHECK(a.opened);
  for (const char* event : {"", "null", "{\"op\":\"cooldown\",\"id\":\"tok-1\"}",
                            "{\"op\":\"cooldown\",\"id\":\"tok-1\",\"ttl_ms\":\"x\"}", "{\"op\":7}", "[]"}) {
    command(server, {"PUBLISH", "floodgate:{bots}:events", event});
  }
  command(server, {"PUBLISH", "floodgate:{bots}:events",
                   R"({"op":"cooldown","id":"tok-1","ttl_ms":60000,"origin":"elsewhere"})"});
  REQUIRE(wait_for([&] { return a.cooling("tok-1"); }));
  CHECK_FALSE(a.cooling("tok-2"));
}

namespace {

// A fallback sink that counts the calls made after it was told it is gone
// (as a file store declared before the Redis store is destroyed right after it).
class WatchedFallback final : public floodgate::CooldownSink {
 public:
  std::optional<floodgate::CooldownRecord> find(std::string_view) const override { return std::nullopt; }
  void set_cooldown(std::string_view, WallTime) override { called(); }
  void set_scoped_cooldown(std::string_view, std::string_view, WallTime) override { called(); }
  void clear_cooldowns(std::string_view) override { called(); }
  void set_disabled(std::string_view, std::string_view) override { called(); }
  void set_enabled(std::string_view) override { called(); }

  std::promise<void> first_call;
  std::atomic<bool> closing{false};
  std::atomic<bool> gone{false};
  std::atomic<int> calls{0};
  std::atomic<int> calls_after_gone{0};

 private:
  // The first call holds the I/O thread until close() has started, and a while
  // longer: a close() that does not wait for it returns meanwhile.
  void called() {
    if (gone.load()) ++calls_after_gone;
    if (calls++ != 0) return;
    first_call.set_value();
    while (!closing.load()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(100ms);
  }
};

}  // namespace

TEST_CASE("redis cooldowns: after close() the store never calls its fallback, even for a load already read") {
  RedisServer server;
  for (const char* id : {"tok-1", "tok-2"}) {
    const std::string value = std::string(R"({"id":")") + id + R"("})";
    REQUIRE_FALSE(command(server, {"SET", std::string("floodgate:{bots}:state:cooldown:") + id, value, "PX", "300000"}).first);
  }
  WatchedFallback fallback;
  IoRunner io;
  auto o = options();
  o.fallback = &fallback;
  RedisCooldownStore store(io.executor(), parse_redis_url(server.url()), o);
  // The load reads both keys in one reply and applies them one after the other.
  REQUIRE(fallback.first_call.get_future().wait_for(5s) == std::future_status::ready);
  fallback.closing = true;
  store.close();  // while the first is being applied: the second must not reach the fallback
  fallback.gone = true;
  io.drain();
  CHECK(fallback.calls == 1);
  CHECK(fallback.calls_after_gone == 0);
}
