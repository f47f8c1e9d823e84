// RedisLimitSet: limits shared by several clients (as several processes
// would hold them) in a real redis-server, judged by one GCRA script on
// Redis' clock. Rates are slow (a token per 10 s or more) so that the real
// time a test takes cannot refill a limit by more than the one token allowed for.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "../telegram/io_runner.hpp"
#include "floodgate/redis/limit_set.hpp"
#include "floodgate/redis/reserving_gate.hpp"
#include "redis_server.hpp"

using floodgate::LimitDecision;
using floodgate::Rate;
using floodgate::redis::FailurePolicy;
using floodgate::redis::parse_redis_url;
using floodgate::redis::RedisClient;
using floodgate::redis::RedisClientOptions;
using floodgate::redis::RedisLimitOptions;
using floodgate::redis::RedisLimitSet;
using floodgate::redis::RedisReply;
using floodgate::redis::ReservingGate;
using floodgate::redis::ReservingGateOptions;
using floodgate::test::IoRunner;
using floodgate::test::RedisServer;
using namespace std::chrono_literals;

namespace {

RedisClientOptions quick() {
  RedisClientOptions o;
  o.connect_timeout = 1000ms;
  o.command_timeout = 1000ms;
  o.reconnect.floor = 20ms;
  o.reconnect.cap = 100ms;
  return o;
}

std::pair<std::error_code, LimitDecision> check(RedisLimitSet<std::int64_t>& limits, std::int64_t key,
                                                std::uint32_t n = 1) {
  auto [ec, decision] = limits.async_try_acquire(key, n, boost::asio::use_future).get();
  return {ec, decision};
}

std::int64_t evalsha_calls(RedisClient& client) {
  auto [ec, info] = client.async_command({"INFO", "commandstats"}, boost::asio::use_future).get();
  const auto at = info.text.find("cmdstat_evalsha:calls=");
  if (ec || at == std::string::npos) return 0;
  return std::stoll(info.text.substr(at + 22));
}

}  // namespace

TEST_CASE("redis limits: two processes share one token's limit instead of getting one each") {
  RedisServer server;
  IoRunner io_a;
  IoRunner io_b;
  RedisClient redis_a(io_a.executor(), parse_redis_url(server.url()), quick());
  RedisClient redis_b(io_b.executor(), parse_redis_url(server.url()), quick());
  redis_a.start();
  redis_b.start();
  RedisLimitOptions o{.pool_name = "bots", .owner = "tok-1"};
  RedisLimitSet<std::int64_t> a(redis_a, o);
  RedisLimitSet<std::int64_t> b(redis_b, o);
  a.add("bot", Rate::per_minute(6), 5);
  b.add("bot", Rate::per_minute(6), 5);

  int admitted = 0;
  LimitDecision last_refusal;
  for (int i = 0; i < 10; ++i) {
    for (auto* limits : {&a, &b}) {
      auto [ec, d] = check(*limits, 42);
      REQUIRE_FALSE(ec);
      if (d) {
        ++admitted;
      } else {
        last_refusal = d;
      }
    }
  }
  CHECK(admitted >= 5);
  CHECK(admitted <= 6);  // the burst, plus at most one token refilled while the test ran
  CHECK(last_refusal.limit == "bot");
  CHECK_FALSE(last_refusal.per_key);
  CHECK(last_refusal.retry_after > 0s);
  CHECK(last_refusal.retry_after <= 10s);

  // Another owner (another token) has its own budget.
  RedisLimitSet<std::int64_t> other(redis_a, {.pool_name = "bots", .owner = "tok-2"});
  other.add("bot", Rate::per_minute(6), 5);
  CHECK(check(other, 42).second.admitted);
}

TEST_CASE("redis limits: per-key limits first, all or nothing, a request above the burst never passes") {
  RedisServer server;
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url(server.url()), quick());
  redis.start();
  RedisLimitSet<std::int64_t> limits(redis, {.pool_name = "bots", .owner = "tok-1"});
  limits.add("bot", Rate::per_minute(1), 2)
      .add_per_key("private_chat", Rate::per_minute(1), 1, [](std::int64_t chat) { return chat > 0; });

  CHECK(check(limits, 1).second.admitted);  // bot: 1 left; chat 1: empty
  auto [ec, refused] = check(limits, 1);
  REQUIRE_FALSE(ec);
  CHECK_FALSE(refused.admitted);
  CHECK(refused.limit == "private_chat");
  CHECK(refused.per_key);
  CHECK(check(limits, 2).second.admitted);  // the refusal above took nothing from "bot"
  auto [ec3, shared] = check(limits, 3);
  CHECK_FALSE(shared.admitted);
  CHECK(shared.limit == "bot");
  CHECK(check(limits, -5).second.limit == "bot");  // a group: only "bot" applies

  auto [ec4, never] = check(limits, 9, 3);
  CHECK(never.retry_after == LimitDecision::never);

  // The keys are hash-tagged per pool, the chat's expires when it would be full again.
  auto [pec, ttl] = redis.async_command({"PTTL", "floodgate:{bots}:limit:tok-1:private_chat:1"},
                                        boost::asio::use_future).get();
  CHECK(ttl.integer > 0);
  CHECK(ttl.integer <= 60001);
}

TEST_CASE("redis limits: the script survives SCRIPT FLUSH (NOSCRIPT, reloaded) and runs once") {
  RedisServer server;
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url(server.url()), quick());
  redis.start();
  RedisLimitSet<std::int64_t> limits(redis, {.owner = "tok-1"});
  limits.add("bot", Rate::per_minute(1), 3);
  CHECK(check(limits, 0).second.admitted);
  redis.async_command({"SCRIPT", "FLUSH"}, boost::asio::use_future).get();
  CHECK(check(limits, 0).second.admitted);
  CHECK(check(limits, 0).second.admitted);
  CHECK_FALSE(check(limits, 0).second.admitted);  // 3 taken in all: none twice
}

TEST_CASE("redis limits: grant batching makes one round trip per lease and never exceeds the lease") {
  RedisServer server;
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url(server.url()), quick());
  redis.start();
  RedisLimitSet<std::int64_t> limits(redis, {.owner = "tok-1", .lease = 10, .lease_ttl = 60s});
  limits.add("bot", Rate::per_minute(1), 20);
  const auto before = evalsha_calls(redis);
  int admitted = 0;
  for (int i = 0; i < 30; ++i) admitted += check(limits, 0).second.admitted ? 1 : 0;
  // 20 in the bucket = two leases of 10; the rest are refused by Redis.
  CHECK(admitted == 20);
  const auto trips = evalsha_calls(redis) - before;
  CHECK(trips >= 12);  // 2 leases + 10 refused checks
  CHECK(trips <= 13);  // (+1 for NOSCRIPT on the first)
}

TEST_CASE("redis limits: Redis unreachable, fail_open limits locally and fail_closed refuses") {
  int port = 0;
  {
    RedisServer gone;
    port = gone.port();
  }
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url("redis://127.0.0.1:" + std::to_string(port)), quick());
  redis.start();
  RedisLimitSet<std::int64_t> open(redis, {.owner = "tok-1", .on_unavailable = FailurePolicy::fail_open});
  RedisLimitSet<std::int64_t> closed(redis, {.owner = "tok-1", .on_unavailable = FailurePolicy::fail_closed});
  open.add("bot", Rate::per_minute(1), 2);
  closed.add("bot", Rate::per_minute(1), 2);
  const auto started = std::chrono::steady_clock::now();
  CHECK(check(open, 0).second.admitted);
  CHECK(check(open, 0).second.admitted);
  CHECK_FALSE(check(open, 0).second.admitted);  // the local limit still holds
  CHECK(check(closed, 0).first == floodgate::redis::errc::unavailable);
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  CHECK_FALSE(open.shared());
}

TEST_CASE("redis limits: Redis restarted mid-run: checks resume, at most one extra burst is admitted") {
  RedisServer server;
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url(server.url()), quick());
  redis.start();
  RedisLimitSet<std::int64_t> limits(redis, {.owner = "tok-1", .on_unavailable = FailurePolicy::fail_closed});
  limits.add("bot", Rate::per_minute(1), 3);
  int admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += check(limits, 0).second.admitted ? 1 : 0;
  CHECK(admitted == 3);
  server.restart();  // empty: the TAT and the script are gone
  // Every check ends (admitted, refused or unavailable while reconnecting), none hangs.
  int after = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto [ec, d] = check(limits, 0);
    if (ec) {
      // fail_closed while reconnecting (or lost, for a check written as the old server went)
      CHECK((ec == floodgate::redis::errc::unavailable || ec == floodgate::redis::errc::connection_lost));
      std::this_thread::sleep_for(20ms);
      continue;
    }
    if (d) {
      ++after;
    } else {
      break;  // refused by the fresh bucket once its burst is spent
    }
  }
  CHECK(after == 3);  // the documented bound: one more burst, no more
}

TEST_CASE("redis limits: a check outlives its client: it ends without touching the destroyed client") {
  RedisServer server;
  boost::asio::io_context io;  // not running yet: the check is queued when the client goes
  auto redis = std::make_unique<RedisClient>(io.get_executor(), parse_redis_url(server.url()), quick());
  redis->start();
  RedisLimitSet<std::int64_t> limits(*redis, {.owner = "tok-1"});
  limits.add("bot", Rate::per_minute(6), 5);
  int completions = 0;
  limits.async_try_acquire(42, 1, [&](std::error_code, LimitDecision) { ++completions; });
  redis.reset();  // its shutdown ends the queued check after the client object is gone
  io.run();       // without the executor kept by the set: heap-use-after-free (ASan)
  CHECK(completions == 1);
}

TEST_CASE("redis gate: a destroyed gate starts no check and never answers send now") {
  RedisServer server;
  IoRunner io;
  RedisClient redis(io.executor(), parse_redis_url(server.url()), quick());
  redis.start();
  int configured = 0;
  std::function<std::chrono::nanoseconds(std::string_view, std::int64_t)> gate_fn;
  {
    ReservingGate gate(redis, {.pool_name = "bots"}, [&](ReservingGate::Limits& limits) {
      ++configured;
      limits.add("bot", Rate::per_minute(6), 5);
    });
    gate_fn = gate.as_function();
  }
  // A retry of a destroyed pool may still ask. No reservation exists, so not
  // zero (send now), and not a short poll either: a long refusal, which a
  // retry gives up on (beyond its max_wait) instead of polling.
  CHECK(gate_fn("tok-1", 42) >= 1h);
  CHECK(gate_fn("tok-1", 42) >= 1h);
  CHECK(configured == 0);
}

TEST_CASE("redis gate: calls after the gate and its client are destroyed use neither") {
  RedisServer server;
  IoRunner io;
  auto redis = std::make_unique<RedisClient>(io.executor(), parse_redis_url(server.url()), quick());
  redis->start();
  auto gate = std::make_unique<ReservingGate>(*redis, ReservingGateOptions{.pool_name = "bots"},
                                              [](ReservingGate::Limits& limits) {
                                                limits.add("bot", Rate::per_minute(6), 5);
                                              });
  auto gate_fn = gate->as_function();
  CHECK(gate_fn("tok-1", 42) == ReservingGateOptions{}.poll);  // a check in flight at teardown
  gate.reset();   // the shipped order: the gate, then its client
  redis.reset();
  // A new credential would make a limit set on the freed client and call it (ASan without the latch).
  CHECK(gate_fn("tok-2", 42) >= 1h);
  CHECK(gate_fn("tok-1", 42) >= 1h);
}
