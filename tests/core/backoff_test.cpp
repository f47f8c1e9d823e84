// core/backoff.hpp: the one backoff's ceiling as its other users take it
// (RetrySchedule draws from 0 below it, a TDLib login waits it exactly).
// backoff_delay and Backoff's count are also exercised under their kite names
// in tests/kite/ticker_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

#include "floodgate/core/backoff.hpp"
#include "floodgate/core/clock.hpp"
#include "floodgate/core/retry_policy.hpp"

using namespace std::chrono_literals;

TEST_CASE("backoff: the doubling ceiling in any unit, capped, never overflowing") {
  CHECK(floodgate::doubling_ceiling(1000ms, 60000ms, 0) == 1000ms);  // 0 counts as the first failure
  CHECK(floodgate::doubling_ceiling(1000ms, 60000ms, 1) == 1000ms);
  CHECK(floodgate::doubling_ceiling(1000ms, 60000ms, 4) == 8000ms);
  CHECK(floodgate::doubling_ceiling(1000ms, 60000ms, 7) == 60000ms);  // 64 s capped
  const std::chrono::nanoseconds base = 100ms;
  CHECK(floodgate::doubling_ceiling(base, std::chrono::nanoseconds(10s), 3) == 400ms);
  CHECK(floodgate::doubling_ceiling(base, std::chrono::nanoseconds(10s), std::numeric_limits<std::size_t>::max()) == 10s);
  CHECK(floodgate::doubling_ceiling(300ms, 100ms, 5) == 300ms);  // a cap under the floor: the floor
  CHECK(floodgate::doubling_ceiling(0ms, 100ms, 5) == 0ms);
}

TEST_CASE("backoff: a pause is drawn between the floor and the ceiling, a healthy connection resets the count") {
  const floodgate::BackoffPolicy policy{.floor = 100ms, .cap = 1s, .healthy_after = 5s, .max_attempts = 0};
  CHECK(floodgate::backoff_delay(policy, 3, 0.0) == 100ms);
  CHECK(floodgate::backoff_delay(policy, 3, 1.0) == 400ms);
  floodgate::ManualClock clock;
  floodgate::Backoff<floodgate::ManualClock> backoff(policy);
  CHECK(backoff.failed(clock.now(), 1.0).delay == 100ms);
  CHECK(backoff.failed(clock.now(), 1.0).delay == 200ms);
  backoff.opened();
  backoff.data(clock.now());
  clock.advance(5s);
  const auto next = backoff.failed(clock.now(), 1.0);  // lost after being healthy: from the floor again
  CHECK_FALSE(next.give_up);                            // max_attempts 0: never
  CHECK(next.failures == 1);
  CHECK(next.delay == 100ms);
}

TEST_CASE("backoff: RetrySchedule's transient backoff is full jitter from 0 up to the doubling ceiling") {
  floodgate::RetryPolicy policy;
  policy.backoff_base = 100ms;
  policy.backoff_cap = 1s;
  floodgate::RetrySchedule schedule(policy, 7);
  const std::chrono::nanoseconds ceilings[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s};
  for (auto ceiling : ceilings) {
    const auto pause = schedule.next_backoff();
    CHECK(pause >= 0ns);
    CHECK(pause <= ceiling);
  }
  policy.backoff_cap = 50ms;  // a cap under the base caps every pause
  floodgate::RetrySchedule capped(policy, 7);
  for (int i = 0; i < 5; ++i) CHECK(capped.next_backoff() <= 50ms);
}

TEST_CASE("backoff: RetrySchedule's jitter spreads over its range, and consecutive seeds draw unrelated pauses") {
  floodgate::RetryPolicy policy;
  policy.backoff_base = 1s;
  policy.backoff_cap = 1s;
  // The retry executor seeds its runs 1, 2, 3, ...: their first pauses must
  // not follow the seed, nor bunch in part of [0, 1 s].
  constexpr int runs = 1000;
  std::set<std::int64_t> distinct;
  int quarters[4] = {};
  std::chrono::nanoseconds previous{-1};
  int rising = 0;
  for (std::uint64_t seed = 1; seed <= runs; ++seed) {
    const auto pause = floodgate::RetrySchedule(policy, seed).next_backoff();
    REQUIRE(pause >= 0ns);
    REQUIRE(pause <= 1s);
    distinct.insert(pause.count());
    ++quarters[std::min<std::int64_t>(3, pause * 4 / 1s)];
    if (pause > previous) ++rising;
    previous = pause;
  }
  CHECK(distinct.size() == runs);
  for (const int quarter : quarters) {
    CHECK(quarter > runs / 4 - 60);  // 250 expected each; 60 is over 3.5 standard deviations
    CHECK(quarter < runs / 4 + 60);
  }
  // Pauses of consecutive seeds rise about half of the time, as independent draws do.
  CHECK(rising > runs / 2 - 80);
  CHECK(rising < runs / 2 + 80);
}
