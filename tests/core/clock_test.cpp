// The pool's default clock, CoarseClock, lags true time by up to a tick. These
// tests prove that a cooldown measured on such a clock never ends early: in
// virtual time, on a clock that lags exactly as a coarse one does, over every
// phase of the tick; and on the real CoarseClock against steady_clock over
// random cooldown lengths.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <thread>

namespace floodgate::test {
namespace {

// What CLOCK_MONOTONIC_COARSE does, in virtual time: a reading is the true
// time (a ManualClock) rounded down to the last tick. With `declare_lag`
// false the clock hides its lag, as a naive coarse clock would.
template <bool declare_lag>
struct TickClock {
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  ManualClock truth;
  duration tick;

  time_point now() const noexcept {
    const auto t = truth.now().time_since_epoch();
    return time_point(t - t % tick);
  }
  std::chrono::system_clock::time_point wall_now() const noexcept { return truth.wall_now(); }
  duration lag_bound() const noexcept
    requires declare_lag
  {
    return tick;
  }
};
static_assert(Clock<TickClock<true>>);

// Cools "A" at true time `start` + `phase` for `wait`, then moves true time in
// `step`s until "A" is handed out again. Returns how much true time passed
// between the cooldown and that acquire.
template <bool declare_lag>
std::chrono::nanoseconds cooled_for(std::chrono::nanoseconds wait, std::chrono::nanoseconds phase, bool via_report) {
  using namespace std::chrono;
  constexpr nanoseconds kTick = 4ms, kStep = 50us;
  TickClock<declare_lag> clock{ManualClock{}, kTick};
  clock.truth.advance(kTick - clock.truth.now().time_since_epoch() % kTick + phase);  // a known phase of the tick
  CredentialPool<Token, BestHealth, TickClock<declare_lag>> pool({}, clock);
  pool.add({"A", {"a"}});
  const auto started = clock.truth.now();
  if (via_report) {
    auto lease = pool.acquire();
    REQUIRE(lease);
    lease->report(Outcome<>::flood_wait(wait));
  } else {
    REQUIRE(pool.cooldown("A", wait));
  }
  while (!pool.acquire()) clock.truth.advance(kStep);
  return clock.truth.now() - started;
}

TEST_CASE("a cooldown on a lagging clock never ends early, at any phase of the tick", "[clock][cooldown]") {
  using namespace std::chrono;
  const bool via_report = GENERATE(false, true);
  for (nanoseconds wait : {nanoseconds(0), nanoseconds(1us), nanoseconds(3ms), nanoseconds(4ms), nanoseconds(5ms),
                           nanoseconds(1s), nanoseconds(1s + 3999us), nanoseconds(30s)}) {
    for (nanoseconds phase = 0ns; phase < 4ms; phase += 250us) {
      CAPTURE(wait.count(), phase.count(), via_report);
      const auto passed = cooled_for<true>(wait, phase, via_report);
      CHECK(passed >= wait);
      CHECK(passed <= wait + 2 * 4ms + 50us);  // and it lasts at most two ticks longer
    }
  }
}

TEST_CASE("without its lag bound the same clock would end cooldowns early", "[clock][cooldown]") {
  // The control for the test above: it can tell a padded cooldown from one that is not.
  using namespace std::chrono;
  bool ended_early = false;
  for (nanoseconds phase = 0ns; phase < 4ms; phase += 250us) {
    if (cooled_for<false>(5ms, phase, false) < 5ms) ended_early = true;
  }
  CHECK(ended_early);
}

TEST_CASE("CoarseClock reads steady_clock's time, at most its lag bound behind", "[clock]") {
  const CoarseClock coarse;
  const auto lag = coarse.lag_bound();
  CHECK(lag >= std::chrono::nanoseconds::zero());
  CHECK(lag <= std::chrono::milliseconds(100));
  for (int i = 0; i < 20000; ++i) {
    const auto before = std::chrono::steady_clock::now();
    const auto reading = coarse.now();
    const auto after = std::chrono::steady_clock::now();
    REQUIRE(reading <= after);
    REQUIRE(reading >= before - lag);
  }
}

TEST_CASE("a cooldown on the real CoarseClock never ends early, for random lengths", "[clock][cooldown]") {
  using namespace std::chrono;
  const auto seed = std::random_device{}();
  CAPTURE(seed);  // a failure names the lengths' seed
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<std::int64_t> length_us(0, 15'000);
  CredentialPool<Token, RoundRobin> pool;  // the default clock: CoarseClock
  static_assert(std::is_same_v<decltype(pool)::clock_type, CoarseClock>);
  pool.add({"A", {"a"}});
  for (int round = 0; round < 40; ++round) {
    const nanoseconds wait = microseconds(length_us(random));
    const bool via_report = round % 2 == 1;
    if (via_report) {
      auto lease = pool.acquire();
      REQUIRE(lease);
      lease->report(Outcome<>::flood_wait(wait));
    } else {
      REQUIRE(pool.cooldown("A", wait));
    }
    const auto cooled_at = steady_clock::now();  // at or after the pool's own reading
    for (;;) {
      const auto tried_at = steady_clock::now();  // the acquire happens at or after this
      auto lease = pool.acquire();
      if (lease) {
        CAPTURE(round, wait.count(), via_report);
        CHECK(tried_at - cooled_at >= wait);
        lease->success();
        break;
      }
      std::this_thread::sleep_for(100us);
    }
  }
}

}  // namespace
}  // namespace floodgate::test
