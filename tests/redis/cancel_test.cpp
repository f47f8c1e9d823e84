// Per-operation cancellation of RedisClient::async_command / async_eval and
// RedisLimitSet::async_try_acquire, against a real redis-server: `||` with a
// timer (tests/async/cancel_race.hpp) and a cancellation_signal emitted by hand.
//
// Two ways to hold a command where the test wants it, both Redis' own:
// - not written yet: another connection runs CLIENT PAUSE, so the client
//   under test is stuck in its handshake (its PING is not answered) and
//   queues what it is given;
// - written, not answered: a BLPOP on the same connection blocks it in Redis,
//   and every command pipelined behind it waits for it.
#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <future>
#include <string>

#include "../async/cancel_race.hpp"
#include "../telegram/io_runner.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/limit_set.hpp"
#include "redis_server.hpp"

using floodgate::LimitDecision;
using floodgate::Rate;
using floodgate::redis::parse_redis_url;
using floodgate::redis::RedisClient;
using floodgate::redis::RedisClientOptions;
using floodgate::redis::RedisLimitSet;
using floodgate::redis::RedisReply;
using floodgate::test::IoRunner;
using floodgate::test::run_race;
using floodgate::test::RedisServer;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

RedisClientOptions patient() {
  RedisClientOptions o;
  o.connect_timeout = 5000ms;  // longer than any pause below: the handshake waits it out
  o.command_timeout = 5000ms;
  o.reconnect.floor = 20ms;
  o.reconnect.cap = 100ms;
  return o;
}

std::pair<std::error_code, RedisReply> run(RedisClient& client, std::vector<std::string> args) {
  auto [ec, reply] = client.async_command(std::move(args), asio::use_future).get();
  return {ec, std::move(reply)};
}

/// A second connection that pauses every client of `server` for `pause`.
struct Pauser {
  Pauser(IoRunner& io, const RedisServer& server) : client(io.executor(), parse_redis_url(server.url()), patient()) {
    client.start();
  }
  void pause(std::chrono::milliseconds pause) {
    REQUIRE(run(client, {"CLIENT", "PAUSE", std::to_string(pause.count()), "ALL"}).second.text == "OK");
  }
  RedisClient client;
};

}  // namespace

TEST_CASE("redis client: a command not written yet, cancelled, ends at once and never runs, the client goes on",
          "[redis][cancel]") {
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial,
                             asio::cancellation_type::total);
  RedisServer server;
  IoRunner io;
  Pauser pauser(io, server);
  pauser.pause(1500ms);
  RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
  client.start();  // its handshake waits for the pause: commands queue
  asio::cancellation_signal signal;
  std::promise<std::error_code> cancelled;
  client.async_command({"SET", "never", "1"}, asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, RedisReply) {
                         cancelled.set_value(ec);
                       }));
  auto after = client.async_command({"SET", "after", "1"}, asio::use_future);
  asio::post(client.get_executor(), [&] { signal.emit(type); });
  auto ec = cancelled.get_future();
  REQUIRE(ec.wait_for(1s) == std::future_status::ready);  // long before the pause ends
  const auto code = ec.get();
  CHECK(code == std::errc::operation_canceled);
  CHECK(code == floodgate::errc::cancelled);
  CHECK_FALSE(client.connected());
  // The rest of the queue is sent once the pause ends; the cancelled command never is.
  CHECK(std::get<1>(after.get()).text == "OK");
  CHECK(run(client, {"GET", "never"}).second.type == RedisReply::Type::nil);
  CHECK(run(client, {"GET", "after"}).second.text == "1");
}

TEST_CASE("redis client: async_command || timer on a written command ends with the timer, it runs once, replies stay matched",
          "[redis][cancel]") {
  RedisServer server;
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
  client.start();
  REQUIRE(run(client, {"PING"}).second.text == "PONG");
  auto blocker = client.async_command({"BLPOP", "nothing", "1.5"}, asio::use_future);  // holds the connection
  auto incr = client.async_command({"INCR", "counter"}, asio::as_tuple(asio::use_awaitable));
  const auto result = run_race(io.executor(), std::move(incr), 100ms);
  CHECK(result.timer_won);
  CHECK(result.took < 1s);  // not the BLPOP's 1.5 s
  // Written before the cancel: Redis runs it, once, and its reply is read and dropped,
  // so the next command gets its own reply, not the INCR's.
  CHECK(std::get<1>(blocker.get()).type == RedisReply::Type::nil);
  auto [ec, value] = run(client, {"GET", "counter"});
  CHECK_FALSE(ec);
  CHECK(value.text == "1");
  CHECK(client.connected());
}

TEST_CASE("redis client: total cancellation of a written command lets it end with its reply", "[redis][cancel]") {
  RedisServer server;
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
  client.start();
  REQUIRE(run(client, {"PING"}).second.text == "PONG");
  asio::cancellation_signal signal;
  std::promise<std::pair<std::error_code, RedisReply>> done;
  auto blocker = client.async_command({"BLPOP", "nothing", "0.3"}, asio::use_future);
  client.async_command({"INCR", "counter"}, asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, RedisReply r) {
                         done.set_value({ec, std::move(r)});
                       }));
  REQUIRE(io.wait_until([&] { return client.connected(); }));
  std::this_thread::sleep_for(50ms);  // both written (the pipeline leaves at once)
  asio::post(client.get_executor(), [&] { signal.emit(asio::cancellation_type::total); });
  auto [ec, reply] = done.get_future().get();
  CHECK_FALSE(ec);
  CHECK(reply.integer == 1);
  blocker.get();
}

TEST_CASE("redis client: async_eval || timer ends with the timer, a script call cancelled before it is written never runs",
          "[redis][cancel]") {
  RedisServer server;
  IoRunner io;
  const floodgate::redis::Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  SECTION("written: the timer wins, the script runs once") {
    RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
    client.start();
    REQUIRE(run(client, {"PING"}).second.text == "PONG");
    auto blocker = client.async_command({"BLPOP", "nothing", "1.5"}, asio::use_future);
    auto eval = client.async_eval(script, {"n"}, {"5"}, asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(io.executor(), std::move(eval), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
    blocker.get();
    // The EVALSHA was written: NOSCRIPT came back to nobody, so no SCRIPT LOAD and no second call.
    CHECK(run(client, {"GET", "n"}).second.type == RedisReply::Type::nil);
    auto again = client.async_eval(script, {"n"}, {"5"}, asio::use_future).get();
    CHECK(std::get<1>(again).integer == 5);
  }
  SECTION("not written yet") {
    Pauser pauser(io, server);
    pauser.pause(1500ms);
    RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
    client.start();
    auto eval = client.async_eval(script, {"n"}, {"5"}, asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(io.executor(), std::move(eval), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
    CHECK(run(client, {"GET", "n"}).second.type == RedisReply::Type::nil);
  }
}

TEST_CASE("redis limits: a check cancelled before Redis saw it ends with cancelled, takes nothing, decides nothing locally",
          "[redis][cancel]") {
  RedisServer server;
  IoRunner io;
  Pauser pauser(io, server);
  pauser.pause(1500ms);
  RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
  client.start();
  RedisLimitSet<std::int64_t> limits(client, {.pool_name = "cancel", .owner = "tok"});  // fail_open
  limits.add("bot", Rate::per_second(0.01), 1);  // one token, none back during the test
  asio::cancellation_signal signal;
  std::promise<std::pair<std::error_code, LimitDecision>> done;
  asio::post(client.get_executor(), [&] {
    limits.async_try_acquire(7, 1, asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, LimitDecision d) {
                               done.set_value({ec, d});
                             }));
    signal.emit(asio::cancellation_type::terminal);
  });
  auto future = done.get_future();
  REQUIRE(future.wait_for(1s) == std::future_status::ready);
  auto [ec, decision] = future.get();
  CHECK(ec == std::errc::operation_canceled);
  CHECK_FALSE(decision.admitted);  // no local admission
  // The one token is still there once Redis answers again.
  auto [ec2, second] = limits.async_try_acquire(7, 1, asio::use_future).get();
  CHECK_FALSE(ec2);
  CHECK(second.admitted);
  CHECK(limits.shared());
  auto [ec3, third] = limits.async_try_acquire(7, 1, asio::use_future).get();
  CHECK_FALSE(ec3);
  CHECK_FALSE(third.admitted);
}

TEST_CASE("redis limits: async_try_acquire || timer ends with the timer while Redis is busy", "[redis][cancel]") {
  RedisServer server;
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()), patient());
  client.start();
  REQUIRE(run(client, {"PING"}).second.text == "PONG");
  RedisLimitSet<std::int64_t> limits(client, {.pool_name = "cancel", .owner = "tok"});
  limits.add("bot", Rate::per_second(0.01), 3);
  // The first check loads the script (NOSCRIPT, SCRIPT LOAD) and takes a token.
  REQUIRE(std::get<1>(limits.async_try_acquire(7, 1, asio::use_future).get()).admitted);
  auto blocker = client.async_command({"BLPOP", "nothing", "1.5"}, asio::use_future);
  auto acquire = limits.async_try_acquire(7, 1, asio::as_tuple(asio::use_awaitable));
  const auto result = run_race(io.executor(), std::move(acquire), 100ms);
  CHECK(result.timer_won);
  CHECK(result.took < 1s);
  blocker.get();
  // The script was written before the cancel: it ran and took its token (none is given back).
  auto [ec, next] = limits.async_try_acquire(7, 1, asio::use_future).get();
  CHECK_FALSE(ec);
  CHECK(next.admitted);
  auto [ec2, last] = limits.async_try_acquire(7, 1, asio::use_future).get();
  CHECK_FALSE(ec2);
  CHECK_FALSE(last.admitted);
}
