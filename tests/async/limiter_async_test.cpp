// Virtual timers and async waiting on limiters, all in virtual time.
#include <floodgate/async/async_concurrency_limit.hpp>
#include <floodgate/async/async_limiter.hpp>
#include <floodgate/async/timer.hpp>
#include <floodgate/core/clock.hpp>
#include <floodgate/core/limit_set.hpp>
#include <floodgate/telegram/limits.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using floodgate::ManualClock;
using floodgate::Rate;
using floodgate::async::AsyncLimiter;
using floodgate::async::VirtualTime;
using Bucket = floodgate::TokenBucket<ManualClock>;

namespace {

/// "name" on success, "name:<error message>" otherwise.
std::string describe(const std::string& name, std::error_code ec) {
  std::string text = name;
  if (ec) text.append(":").append(ec.message());
  return text;
}

/// Records when (in virtual time since the start) and how each operation ended.
struct Log {
  explicit Log(const VirtualTime& time) : time_(time), start_(time.now()) {}

  auto on(std::string name) {
    return [this, name = std::move(name)](std::error_code ec, auto&&...) {
      const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(time_.now() - start_);
      entries.push_back(describe(name, ec) + "@" + std::to_string(elapsed.count()));
    };
  }

  std::vector<std::string> entries;

 private:
  const VirtualTime& time_;
  ManualClock::time_point start_;
};

using Entries = std::vector<std::string>;

/// One io_context on virtual time, with a log of how operations ended.
struct VirtualRig {
  asio::io_context io;
  ManualClock clock;
  VirtualTime time{io, clock};
  Log log{time};
};

}  // namespace

static_assert(std::is_same_v<floodgate::async::timer_for_t<floodgate::SteadyClock>, asio::steady_timer>);
static_assert(std::is_same_v<floodgate::async::timer_for_t<ManualClock>, floodgate::async::ManualTimer>);

TEST_CASE_METHOD(VirtualRig, "virtual timer: fires at its deadline, in deadline order, only when time is driven", "[limiter_async]") {

  auto late = floodgate::async::make_timer(io.get_executor(), clock);
  auto early = floodgate::async::make_timer(io.get_executor(), clock);
  late.expires_after(15min);
  early.expires_after(250ms);
  late.async_wait([&](boost::system::error_code ec) { log.on("late")(ec); });
  early.async_wait([&](boost::system::error_code ec) { log.on("early")(ec); });

  time.poll();
  CHECK(log.entries.empty());
  clock.advance(1h);  // moving the clock alone fires nothing
  time.poll();
  CHECK(log.entries.empty());
  CHECK(time.next_deadline() == clock.now() - 1h + 250ms);

  time.advance(0s);  // both are overdue now
  CHECK(log.entries == Entries{"early@3600000", "late@3600000"});
}

TEST_CASE_METHOD(VirtualRig, "virtual timer: advance stops at each deadline", "[limiter_async]") {
  auto timer = floodgate::async::make_timer(io.get_executor(), clock);
  // A chain: each expiry arms the next one 100 ms later.
  int remaining = 3;
  std::function<void(boost::system::error_code)> tick = [&](boost::system::error_code ec) {
    log.on("tick")(ec);
    if (--remaining > 0) {
      timer.expires_after(100ms);
      timer.async_wait(tick);
    }
  };
  timer.expires_after(100ms);
  timer.async_wait(tick);
  time.advance(1s);
  CHECK(log.entries == Entries{"tick@100", "tick@200", "tick@300"});
}

TEST_CASE("virtual timer: cancel, re-arm and per-operation cancellation abort the wait", "[limiter_async]") {
  asio::io_context io;
  ManualClock clock;
  VirtualTime time(io, clock);
  std::vector<boost::system::error_code> results;
  auto record = [&](boost::system::error_code ec) { results.push_back(ec); };

  floodgate::async::ManualTimer timer(io.get_executor(), clock);
  timer.expires_after(1s);
  timer.async_wait(record);
  CHECK(timer.expires_after(2s) == 1);  // re-arming aborts the pending wait
  timer.async_wait(record);
  CHECK(timer.cancel() == 1);

  asio::cancellation_signal signal;
  timer.expires_after(3s);
  timer.async_wait(asio::bind_cancellation_slot(signal.slot(), record));
  time.poll();
  signal.emit(asio::cancellation_type::terminal);

  time.advance(10s);
  REQUIRE(results.size() == 3);
  for (const auto& ec : results) CHECK(ec == asio::error::operation_aborted);
}

TEST_CASE_METHOD(VirtualRig, "async limiter: waiters are served first-in first-out at the exact refill times", "[limiter_async]") {
  Bucket bucket(Rate::per_second(10), 1, clock);
  AsyncLimiter waiter(io.get_executor(), bucket);

  for (const char* name : {"a", "b", "c", "d"}) waiter.async_acquire(1, log.on(name));
  time.poll();
  CHECK(log.entries == Entries{"a@0"});  // the bucket started with one token
  CHECK(waiter.waiting() == 3);

  time.advance(1s);
  CHECK(log.entries == Entries{"a@0", "b@100", "c@200", "d@300"});
  CHECK(waiter.waiting() == 0);
}

TEST_CASE_METHOD(VirtualRig, "async limiter: a small request never overtakes a bigger one ahead of it", "[limiter_async]") {
  Bucket bucket(Rate::per_second(10), 3, clock);
  REQUIRE(bucket.try_acquire(3));
  AsyncLimiter waiter(io.get_executor(), bucket);

  waiter.async_acquire(3, log.on("big"));
  waiter.async_acquire(1, log.on("small"));
  time.advance(1s);
  CHECK(log.entries == Entries{"big@300", "small@400"});
}

TEST_CASE_METHOD(VirtualRig, "async limiter: the waiter bound fails new callers with too_many_waiters", "[limiter_async]") {
  Bucket bucket(Rate::per_second(1), 1, clock);
  REQUIRE(bucket.try_acquire());
  AsyncLimiter waiter(io.get_executor(), bucket, {.max_waiters = 2});

  waiter.async_acquire(1, log.on("a"));
  waiter.async_acquire(1, log.on("b"));
  waiter.async_acquire(1, log.on("c"));
  time.poll();
  CHECK(log.entries == Entries{"c:too many operations are waiting@0"});
  time.advance(2s);
  CHECK(log.entries == Entries{"c:too many operations are waiting@0", "a@1000", "b@2000"});
}

TEST_CASE_METHOD(VirtualRig, "async limiter: a cancelled waiter takes nothing and lets the next one through", "[limiter_async]") {
  Bucket bucket(Rate::per_second(1), 1, clock);
  REQUIRE(bucket.try_acquire());
  AsyncLimiter waiter(io.get_executor(), bucket);

  asio::cancellation_signal signal;
  waiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), log.on("first")));
  waiter.async_acquire(1, log.on("second"));
  time.advance(500ms);
  signal.emit(asio::cancellation_type::terminal);
  time.poll();
  CHECK(log.entries == Entries{"first:operation cancelled@500"});
  time.advance(2s);
  CHECK(log.entries == Entries{"first:operation cancelled@500", "second@1000"});
  CHECK(bucket.time_until() == 0s);  // the cancelled waiter took nothing
}

namespace {
// A coroutine of its own (not a lambda): g++ 12 mishandles some temporaries inside co_await in lambdas.
asio::awaitable<void> acquire_or_time_out(AsyncLimiter<Bucket>& waiter, ManualClock clock, std::string& winner) {
  using namespace asio::experimental::awaitable_operators;
  auto timer = floodgate::async::make_timer(co_await asio::this_coro::executor, clock);
  timer.expires_after(300ms);
  auto acquire = waiter.async_acquire(1, asio::as_tuple(asio::use_awaitable));
  auto wait = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  const auto first = co_await (std::move(acquire) || std::move(wait));
  winner = first.index() == 0 ? "acquired" : "timer";
}
}  // namespace

TEST_CASE_METHOD(VirtualRig, "async limiter: async_acquire || timer ends with the timer and takes nothing",
                 "[limiter_async][cancel]") {
  Bucket bucket(Rate::per_second(1), 1, clock);
  REQUIRE(bucket.try_acquire());
  AsyncLimiter waiter(io.get_executor(), bucket);
  std::string winner;
  asio::co_spawn(io, acquire_or_time_out(waiter, clock, winner), asio::detached);
  time.advance(300ms);
  CHECK(winner == "timer");
  time.advance(700ms);
  CHECK(bucket.try_acquire());  // the token refilled at 1 s went to nobody
}

TEST_CASE_METHOD(VirtualRig, "async limiter: impossible requests fail, destruction ends the waiters", "[limiter_async]") {
  Bucket bucket(Rate::per_second(1), 2, clock);
  REQUIRE(bucket.try_acquire(2));
  {
    AsyncLimiter waiter(io.get_executor(), bucket);
    waiter.async_acquire(3, log.on("too_big"));
    waiter.async_acquire(1, log.on("pending"));
    time.advance(100ms);
  }
  time.poll();
  CHECK(log.entries == Entries{"too_big:rate limited@0", "pending:shut down@100"});
  time.advance(10s);  // the destroyed limiter's timer does nothing
  CHECK(log.entries.size() == 2);
}

TEST_CASE("async limiter: use_future and use_awaitable work with the same API", "[limiter_async]") {
  asio::io_context io;
  ManualClock clock;
  VirtualTime time(io, clock);
  Bucket bucket(Rate::per_second(10), 1, clock);
  AsyncLimiter waiter(io.get_executor(), bucket);

  // With std::error_code signatures Boost.Asio hands the code back as the
  // result instead of throwing.
  std::future<std::error_code> first = waiter.async_acquire(1, asio::use_future);
  std::optional<ManualClock::time_point> coroutine_done;
  std::vector<std::error_code> coroutine_results;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        coroutine_results.push_back(co_await waiter.async_acquire(1, asio::use_awaitable));
        coroutine_results.push_back(co_await waiter.async_acquire(1, asio::use_awaitable));
        coroutine_done = clock.now();
      },
      asio::detached);
  const auto start = clock.now();
  REQUIRE(time.run_until([&] { return coroutine_done.has_value(); }, 1min));
  CHECK(*coroutine_done - start == 200ms);
  CHECK(coroutine_results == std::vector<std::error_code>{{}, {}});
  CHECK(first.get() == std::error_code{});
}

TEST_CASE_METHOD(VirtualRig, "async limiter: a waiter held by its own chat does not hold up other chats", "[limiter_async]") {
  auto limits = floodgate::telegram_bot_limits(clock);
  const std::int64_t group = -100;
  const std::int64_t user = 42;
  REQUIRE(limits.try_acquire(group));
  AsyncLimiter waiter(io.get_executor(), limits);

  waiter.async_acquire(group, log.on("group"));  // 3 s until the group may speak again
  waiter.async_acquire(user, log.on("user1"));
  waiter.async_acquire(user, log.on("user2"));
  time.advance(5s);
  // The users' messages wait only for the bot-wide 30/s pace (34 ms rounded),
  // the group's for its 20/min.
  CHECK(log.entries == Entries{"user1@33", "user2@66", "group@3000"});
}

TEST_CASE("async concurrency limit: waiters get released permits in order, per key", "[limiter_async]") {
  asio::io_context io;
  ManualClock clock;
  VirtualTime time(io, clock);
  using Limit = floodgate::KeyedConcurrencyLimit<std::int64_t>;
  Limit limit(1);
  floodgate::async::AsyncConcurrencyLimit waiter(io.get_executor(), limit, {.max_waiters = 3});
  std::vector<std::string> order;
  std::vector<Limit::Permit> held;
  auto keep = [&](std::string name) {
    return [&, name](std::error_code ec, Limit::Permit permit) {
      order.push_back(describe(name, ec));
      if (permit) held.push_back(std::move(permit));
    };
  };

  asio::cancellation_signal signal;
  waiter.async_acquire(1, keep("a"));
  waiter.async_acquire(1, keep("b"));
  waiter.async_acquire(1, asio::bind_cancellation_slot(signal.slot(), keep("c")));
  waiter.async_acquire(1, keep("d"));
  waiter.async_acquire(2, keep("other_key"));
  waiter.async_acquire(1, keep("over_bound"));
  time.poll();
  CHECK(order == Entries{"a", "other_key", "over_bound:too many operations are waiting"});
  CHECK(waiter.waiting() == 3);

  signal.emit(asio::cancellation_type::terminal);
  time.poll();
  held.erase(held.begin());  // release a's permit: b is next in line
  time.poll();
  CHECK(order == Entries{"a", "other_key", "over_bound:too many operations are waiting",
                         "c:operation cancelled", "b"});
  CHECK(limit.in_flight(1) == 1);
  held.clear();
  time.poll();
  CHECK(order.back() == "d");
  CHECK(limit.in_flight(2) == 0);
  held.clear();
  CHECK(limit.active_keys() == 0);
}
