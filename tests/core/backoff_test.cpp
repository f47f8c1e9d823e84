// core/backoff.hpp: the one backoff's ceiling as its other users take it
// (RetrySchedule draws from 0 below it, a TDLib login waits it exactly).
// backoff_delay and Backoff's count are also exercised under their kite names
// in tests/kite/ticker_test.cpp.
#include <catch2/catch.hpp>

#include <limits>

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
