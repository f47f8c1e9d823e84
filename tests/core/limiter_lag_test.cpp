// The rate limiters on a clock that lags true time (CoarseClock, which a
// user may choose; SteadyClock is their default). rate.hpp ("Limiting on a lagging clock") proves that charging
// each admission the clock's lag keeps every window of true time within
// burst + rate * window; these tests check it in virtual time over random
// request times, at every phase of the clock's tick, with a control showing
// that the same limiter without the charge lets too much through. Then: which
// reading each limiter takes, and the real CoarseClock.
#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/core/limit_set.hpp>
#include <floodgate/core/token_bucket.hpp>
#include <floodgate/telegram/limits.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using floodgate::ManualClock;
using floodgate::Rate;

namespace {

// What CLOCK_MONOTONIC_COARSE does, in virtual time: a reading is the true
// time (a ManualClock) as of the last tick, and a tick may be delivered
// `late` after its instant, so a reading lags by up to tick + late. With
// `declare_lag` false the clock hides its lag (the naive limiter); with
// `precise` it also offers the true time, as CoarseClock does.
template <bool declare_lag, bool precise = false>
struct LaggingClock {
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  ManualClock truth;
  duration tick = 4ms;
  duration phase = 0ns;  // where in true time the ticks fall
  duration late = 0ns;   // how long after its instant a tick is seen, < tick

  time_point now() const noexcept {
    const auto since = truth.now().time_since_epoch() - phase - late;
    return time_point(since - since % tick + phase);
  }
  std::chrono::system_clock::time_point wall_now() const noexcept { return truth.wall_now(); }
  duration lag_bound() const noexcept
    requires declare_lag
  {
    return 2 * tick;
  }
  time_point precise_now() const noexcept
    requires precise
  {
    return truth.now();
  }
};
static_assert(floodgate::Clock<LaggingClock<true>>);
static_assert(floodgate::Clock<LaggingClock<false>>);
static_assert(floodgate::Clock<LaggingClock<true, true>>);

struct Use {
  std::int64_t at;  // true time (ns) the tokens are used
  std::uint32_t tokens;
};

// The largest excess, in tokens, of any window of true time over what the
// bucket may pass in it: max over windows [a, b] of used - (burst + rate * (b - a)).
// Positive means the limiter let too much through.
double worst_excess(std::vector<Use> uses, Rate rate, double burst) {
  std::sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) { return a.at < b.at; });
  const long double per_ns = static_cast<long double>(rate.tokens()) / rate.period().count();
  long double worst = -1e18L;
  for (std::size_t i = 0; i < uses.size(); ++i) {
    long double used = 0;
    for (std::size_t k = i; k < uses.size(); ++k) {
      used += uses[k].tokens;
      // Equal times: count the window once all of them are in.
      if (k + 1 < uses.size() && uses[k + 1].at == uses[k].at) continue;
      const long double allowed = burst + per_ns * static_cast<long double>(uses[k].at - uses[i].at);
      worst = std::max(worst, used - allowed);
    }
  }
  return static_cast<double>(worst);
}

std::int64_t ns(ManualClock::time_point t) { return t.time_since_epoch().count(); }
std::int64_t ns_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct Scenario {
  Rate rate;
  double burst;
  std::uint32_t max_tokens;  // per request
};

// Drives one bucket on `clock` with random requests (try_acquire, and
// reservations used by a steady timer or by delay() read on the lagging
// clock) for `requests` steps; returns the true-time uses.
template <class ClockT>
std::vector<Use> drive(floodgate::TokenBucket<ClockT>& bucket, const ClockT& clock, const Scenario& s,
                       std::mt19937_64& random, int requests) {
  const std::int64_t interval = s.rate.interval().count();
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<std::uint32_t> tokens(1, s.max_tokens);
  std::uniform_int_distribution<std::int64_t> gap_small(0, 2 * interval / 10 + 1);
  std::uniform_int_distribution<std::int64_t> gap_large(0, 3 * interval);
  std::uniform_int_distribution<std::int64_t> gap_tick(0, 9'000'000);
  std::vector<Use> uses;
  for (int i = 0; i < requests; ++i) {
    const int what = kind(random);
    const auto gap = what < 4 ? gap_small(random) : what < 8 ? gap_tick(random) : gap_large(random);
    clock.truth.advance(std::chrono::nanoseconds(gap));
    const std::uint32_t n = tokens(random);
    if (what == 9 || what == 5) {
      auto booked = bucket.reserve(n);
      REQUIRE(booked.ok());
      // The holder acts at ready_at by a steady timer, or after delay() read now.
      const std::int64_t at = what == 9 ? ns(booked.ready_at()) : ns(clock.truth.now()) + booked.delay().count();
      REQUIRE(at >= ns(booked.ready_at()));
      uses.push_back({at, n});
    } else if (bucket.try_acquire(n)) {
      uses.push_back({ns(clock.truth.now()), n});
    }
  }
  return uses;
}

const Scenario kScenarios[] = {
    {Rate::per_second(30), 1, 1},     // Telegram's bot limit
    {Rate::per_second(1), 3, 2},      // Telegram's private chats, requests of up to 2 tokens
    {Rate::per_second(200), 5, 3},    // a tolerance (25 ms) of about three lag bounds
    {Rate::per_second(1000), 4, 1},   // a tolerance (4 ms) below the lag bound
    {Rate::per_second(100), 50, 10},  // a large burst
};

}  // namespace

TEST_CASE("a token bucket on a lagging clock never passes more than burst + rate * t in true time",
          "[limiter][clock]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 random(seed);
  for (const Scenario& s : kScenarios) {
    for (auto phase = 0ns; phase < 4ms; phase += 500us) {
      for (std::chrono::nanoseconds late : {0ns, 1ns, 1999000ns, 3999000ns}) {
        LaggingClock<true> clock{ManualClock{}, 4ms, phase, late};
        floodgate::TokenBucket<LaggingClock<true>> bucket(s.rate, s.burst, clock);
        const auto uses = drive(bucket, clock, s, random, 1000);
        CAPTURE(s.rate.to_string(), s.burst, phase.count(), late.count());
        CHECK(worst_excess(uses, s.rate, s.burst) <= 1e-9);
        CHECK(uses.size() > 10);  // it did admit: the property is not met by refusing everything
      }
    }
  }
}

TEST_CASE("without charging the lag the same bucket passes more than burst + rate * t", "[limiter][clock]") {
  // The control for the test above: the same requests on a clock that hides
  // its lag, i.e. a bucket judging coarse readings as if they were exact.
  std::mt19937_64 random(17);
  int over = 0;
  for (const Scenario& s : kScenarios) {
    for (auto phase = 0ns; phase < 4ms; phase += 500us) {
      LaggingClock<false> clock{ManualClock{}, 4ms, phase, 3999us};
      floodgate::TokenBucket<LaggingClock<false>> bucket(s.rate, s.burst, clock);
      if (worst_excess(drive(bucket, clock, s, random, 300), s.rate, s.burst) > 1e-9) ++over;
    }
  }
  CHECK(over > 0);
}

TEST_CASE("a keyed limiter and a limit set on a lagging clock keep every key within its rate", "[limiter][clock]") {
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<std::int64_t> gap(0, 6'000'000);
  std::uniform_int_distribution<int> chat(1, 3);
  for (auto phase = 0ns; phase < 4ms; phase += 1ms) {
    LaggingClock<true> clock{ManualClock{}, 4ms, phase, 2ms};
    floodgate::KeyedLimiter<int, LaggingClock<true>> per_key(Rate::per_second(50), 2, {}, clock);
    floodgate::LimitSet<std::int64_t, LaggingClock<true>> set(clock);
    set.add("all", Rate::per_second(100), 1).add_per_key("chat", Rate::per_second(40), 2);
    std::vector<Use> keyed_uses[4], set_uses[4], set_all;
    for (int i = 0; i < 3000; ++i) {
      clock.truth.advance(std::chrono::nanoseconds(gap(random)));
      const int key = chat(random);
      if (per_key.try_acquire(key)) keyed_uses[key].push_back({ns(clock.truth.now()), 1});
      if (set.try_acquire(key)) {
        set_uses[key].push_back({ns(clock.truth.now()), 1});
        set_all.push_back({ns(clock.truth.now()), 1});
      }
    }
    CAPTURE(phase.count());
    for (int key = 1; key <= 3; ++key) {
      CHECK(worst_excess(keyed_uses[key], Rate::per_second(50), 2) <= 1e-9);
      CHECK(worst_excess(set_uses[key], Rate::per_second(40), 2) <= 1e-9);
      CHECK(keyed_uses[key].size() > 100);
    }
    CHECK(worst_excess(set_all, Rate::per_second(100), 1) <= 1e-9);
  }
}

TEST_CASE("a bucket too small to absorb the lag reads the precise clock and keeps its full rate", "[limiter][clock]") {
  // 30/s with a burst of 1: a tolerance of 33 ms, less than 100 lag bounds (800 ms).
  // Charged the lag it would pass one request per 33 + 8 ms at most; read
  // precisely it passes one per 33.3 ms, to the nanosecond.
  LaggingClock<true, true> clock{ManualClock{}, 4ms, 1ms, 1ms};
  floodgate::TokenBucket<LaggingClock<true, true>> bucket(Rate::per_second(30), 1, clock);
  int passed = 0;
  std::vector<Use> uses;
  for (int step = 0; step < 100'000; ++step) {  // 10 s of constant demand, every 100 us
    if (bucket.try_acquire()) {
      ++passed;
      uses.push_back({ns(clock.truth.now()), 1});
    }
    clock.truth.advance(100us);
  }
  CHECK(passed >= 299);  // the first at once, then every 33.3 ms (+ up to a 100 us step) for 10 s
  CHECK(passed <= 301);
  CHECK(worst_excess(uses, Rate::per_second(30), 1) <= 1e-9);
  CHECK(bucket.reads_fast() == false);

  // The same clock, a burst that refills in 1 s: the fast reading, charged.
  floodgate::TokenBucket<LaggingClock<true, true>> big(Rate::per_second(30), 30, clock);
  CHECK(big.reads_fast());
}

TEST_CASE("charging the lag costs a bucket that absorbs it at most a lag bound per admission", "[limiter][clock]") {
  // A burst of one at a rate whose interval is 100 lag bounds: every
  // admission is charged up to one lag bound, the worst case.
  LaggingClock<true, true> clock{ManualClock{}, 4ms, 0ns, 3ms};
  const Rate rate(1, 800ms);
  floodgate::TokenBucket<LaggingClock<true, true>> bucket(rate, 1, clock);
  REQUIRE(bucket.reads_fast());
  int passed = 0;
  for (int step = 0; step < 800'000; ++step) {  // 80 s of constant demand: 100 tokens at the full rate
    if (bucket.try_acquire()) ++passed;
    clock.truth.advance(100us);
  }
  CHECK(passed <= 101);
  CHECK(passed >= 98);  // the first at once, then one per 800 + at most 8 ms (+ a tick's rounding)
}

TEST_CASE("the limiters default to SteadyClock, on CoarseClock a big bucket reads fast, a small one precisely",
          "[limiter][clock]") {
  static_assert(std::is_same_v<floodgate::TokenBucket<>::clock_type, floodgate::SteadyClock>);
  static_assert(std::is_same_v<floodgate::KeyedLimiter<int>::clock_type, floodgate::SteadyClock>);
  static_assert(std::is_same_v<floodgate::LimitSet<int>::clock_type, floodgate::SteadyClock>);
  static_assert(std::is_same_v<decltype(floodgate::telegram_bot_limits())::clock_type, floodgate::SteadyClock>);
  REQUIRE(floodgate::CoarseClock{}.lag_bound() > 0ns);  // Linux: CLOCK_MONOTONIC_COARSE
  floodgate::TokenBucket<floodgate::CoarseClock> big(Rate::per_second(1000), 1000);
  floodgate::TokenBucket<floodgate::CoarseClock> small(Rate::per_second(30), 1);
  CHECK(big.reads_fast());
  CHECK_FALSE(small.reads_fast());
  // Telegram's 30/s bot limit has a burst of 1.
  CHECK_FALSE(floodgate::telegram_bot_limits(floodgate::CoarseClock{}).reads_fast());
}

TEST_CASE("on a lagging clock the last token of a burst taken at once comes up to the lag late (why it is not the default)",
          "[limiter][clock]") {
  // 2 a minute with a burst of 2, both asked for at the same reading: the
  // first is charged the lag, so the second conforms only a lag later. On
  // SteadyClock both pass at once. ApiKeyPool's budgets and a fail-open Redis
  // limit do not wait for a refusal: that is the reason SteadyClock stays the
  // default.
  LaggingClock<true, true> clock{ManualClock{}, 4ms, 0ns, 1ms};
  floodgate::TokenBucket<LaggingClock<true, true>> bucket(Rate::per_minute(2), 2, clock);
  REQUIRE(bucket.reads_fast());
  CHECK(bucket.try_acquire());
  const auto second = bucket.check();
  CHECK_FALSE(second.admitted);
  CHECK(second.retry_after > 0ns);
  CHECK(second.retry_after <= clock.lag_bound());

  ManualClock steady;
  floodgate::TokenBucket<ManualClock> exact(Rate::per_minute(2), 2, steady);
  CHECK(exact.try_acquire());
  CHECK(exact.try_acquire());
}

TEST_CASE("a token bucket on the real CoarseClock passes at most burst + rate * t between steady_clock readings",
          "[limiter][clock]") {
  // Each admission happened between two steady_clock readings; a window runs
  // from the later reading of its first admission to the earlier one of its
  // last, so it is never longer than the truth.
  floodgate::TokenBucket<floodgate::CoarseClock> bucket(Rate::per_second(2000), 1600);  // 0.8 s of burst: the fast reading
  REQUIRE(bucket.reads_fast());
  struct Admission {
    std::int64_t before, after;
  };
  std::vector<Admission> admitted;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 300ms) {
    const auto before = std::chrono::steady_clock::now();
    if (bucket.try_acquire()) {
      admitted.push_back({ns_since(before), ns_since(std::chrono::steady_clock::now())});
    }
  }
  REQUIRE(admitted.size() > 1600);
  const long double per_ns = 2000.0L / 1e9L;
  long double worst = -1e18L;
  for (std::size_t i = 0; i < admitted.size(); i += 7) {
    for (std::size_t k = i; k < admitted.size(); ++k) {
      const long double window = std::max<std::int64_t>(admitted[k].before - admitted[i].after, 0);
      worst = std::max(worst, static_cast<long double>(k - i + 1) - (1600 + per_ns * window));
    }
  }
  CHECK(worst <= 1e-9L);
}
