// floodgate/core/clock.hpp: the time sources the core is written against.
//
// Every timing rule in floodgate (cooldowns, ejection, token buckets, retry
// backoff) reads time through a `Clock` object, never through a global. In
// production that is `SteadyClock`; in tests it is `ManualClock`, whose time
// moves only when the test says so, so that "cooldown expires to the tick" is
// a statement a test can check exactly, without sleeping.
//
// A Clock is any copyable type with
//   using duration / time_point;       // time_point on a monotonic scale
//   time_point now() const;            // monotonic time, used for all decisions
//   std::chrono::system_clock::time_point wall_now() const;  // only to persist
//
// Wall-clock time is used only where a cooldown must survive a restart (the
// CooldownStore), because a steady clock's epoch is per boot.
//
// A Clock may also have
//   duration lag_bound() const;        // how far now() may run behind true time
// A clock that reads a cached time (CoarseClock) lags; code that ends a wait
// by this clock (the pool's cooldowns) adds the bound, so that a wait never
// ends early. `clock_lag_bound(clock)` is zero for clocks without it. A
// lagging clock may also have
//   time_point precise_now() const;    // true time, at a higher price
// which the rate limiters read where the lag is too large a share of a
// bucket to be charged (core/detail/limiter_clock.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <ctime>
#include <memory>

namespace floodgate {

template <class C>
concept Clock = std::copy_constructible<C> && requires(const C& c) {
  typename C::duration;
  typename C::time_point;
  { c.now() } -> std::same_as<typename C::time_point>;
  { c.wall_now() } -> std::same_as<std::chrono::system_clock::time_point>;
};

/// The production clock: std::chrono::steady_clock for decisions, the system
/// clock for persistence.
struct SteadyClock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  time_point now() const noexcept { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const noexcept {
    return std::chrono::system_clock::now();
  }
};

/// A monotonic clock that costs a few nanoseconds a read, for the pool's hot
/// path: Linux's CLOCK_MONOTONIC_COARSE, the time the kernel stored at its last
/// timer tick, read from the vDSO without touching the clock hardware (on a
/// KVM guest `steady_clock` costs about 30 ns through kvm-clock; this about
/// 5). Same epoch and time_point type as `SteadyClock`, so its times mix with
/// steady_clock's and Asio's steady_timer waits on them.
///
/// The price is resolution: a reading runs up to one tick (1 to 10 ms; 4 ms
/// at the usual HZ=250) behind true time, so a wait that starts at one
/// reading and ends at a later one may really be up to a tick shorter than
/// the readings say. Code that ends a wait by this clock must add
/// `lag_bound()`, which the pool does for every cooldown (flood waits,
/// ejections, stored cooldowns), and which the rate limiters charge to each
/// admission (rate.hpp). `lag_bound()` is twice the kernel's stated
/// resolution: one tick, plus one for a tick that comes late. It is the
/// pool's default clock; the limiters take it when asked (their default is
/// SteadyClock): docs/concepts.md, "Clocks".
///
/// Elsewhere than Linux it is `SteadyClock` with a lag bound of zero.
struct CoarseClock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  time_point now() const noexcept {
#if defined(CLOCK_MONOTONIC_COARSE)
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point(std::chrono::duration_cast<duration>(std::chrono::seconds(ts.tv_sec) +
                                                           std::chrono::nanoseconds(ts.tv_nsec)));
#else
    return std::chrono::steady_clock::now();
#endif
  }
  std::chrono::system_clock::time_point wall_now() const noexcept { return std::chrono::system_clock::now(); }

  /// `steady_clock::now()`: no lag, the price of a clock read on this machine.
  time_point precise_now() const noexcept { return std::chrono::steady_clock::now(); }

  /// How far `now()` may run behind `steady_clock::now()`.
  duration lag_bound() const noexcept {
    static const duration bound = measure_lag_bound();
    return bound;
  }

 private:
  static duration measure_lag_bound() noexcept {
#if defined(CLOCK_MONOTONIC_COARSE)
    timespec res{};
    if (::clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0) return std::chrono::milliseconds(20);
    return 2 * std::chrono::duration_cast<duration>(std::chrono::seconds(res.tv_sec) +
                                                    std::chrono::nanoseconds(res.tv_nsec));
#else
    return duration::zero();
#endif
  }
};

/// `clock.lag_bound()` if the clock has one, else zero.
template <class C>
typename C::duration clock_lag_bound(const C& clock) noexcept {
  if constexpr (requires { { clock.lag_bound() } -> std::convertible_to<typename C::duration>; }) {
    return clock.lag_bound();
  } else {
    return C::duration::zero();
  }
}

/// Whether a (lagging) clock can also be read precisely.
template <class C>
concept HasPreciseNow = requires(const C& c) {
  { c.precise_now() } -> std::same_as<typename C::time_point>;
};

/// `clock.precise_now()` if the clock has one, else `clock.now()`: the time to
/// add a wait to when the wait must not end early by the clock's lag (a timer
/// armed at a lagging reading plus a wait computed from a precise one would).
template <class C>
typename C::time_point clock_precise_now(const C& clock) noexcept {
  if constexpr (HasPreciseNow<C>) {
    return clock.precise_now();
  } else {
    return clock.now();
  }
}

/// A virtual clock for tests and simulations. Copies share one time line, so a
/// test can hand a copy to a pool and keep one to advance. Thread-safe.
///
///   ManualClock clock;             // starts at an arbitrary, non-zero instant
///   pool.cooldown("A", 900s);
///   clock.advance(899s);           // A still cooling
///   clock.advance(1s);             // A usable again, exactly now
class ManualClock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<ManualClock, duration>;
  using rep = duration::rep;
  using period = duration::period;
  static constexpr bool is_steady = true;

  /// `wall_start` is the wall-clock time at the clock's creation.
  explicit ManualClock(std::chrono::system_clock::time_point wall_start =
                           std::chrono::system_clock::time_point{std::chrono::hours{24 * 365 * 56}})
      : state_(std::make_shared<State>(wall_start)) {}

  time_point now() const noexcept {
    return time_point{duration{state_->ticks.load(std::memory_order_acquire)}};
  }
  /// `wall_start` advanced by as much virtual time as has passed.
  std::chrono::system_clock::time_point wall_now() const noexcept {
    return state_->wall_start + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                    duration{state_->ticks.load(std::memory_order_acquire) - kStartTicks});
  }

  /// Moves time forward; negative steps are ignored (time never runs backwards).
  void advance(duration step) const noexcept {
    if (step.count() > 0) state_->ticks.fetch_add(step.count(), std::memory_order_acq_rel);
  }
  /// Moves time to `t` if it is later than now.
  void advance_to(time_point t) const noexcept {
    auto cur = state_->ticks.load(std::memory_order_acquire);
    while (cur < t.time_since_epoch().count() &&
           !state_->ticks.compare_exchange_weak(cur, t.time_since_epoch().count())) {
    }
  }

 private:
  // Virtual time starts one hour in, so that "time_point{}" (zero) always means "never".
  static constexpr rep kStartTicks = std::chrono::duration_cast<duration>(std::chrono::hours{1}).count();

  struct State {
    explicit State(std::chrono::system_clock::time_point w) : wall_start(w) {}
    std::atomic<rep> ticks{kStartTicks};
    std::chrono::system_clock::time_point wall_start;
  };
  std::shared_ptr<State> state_;
};

static_assert(Clock<SteadyClock>);
static_assert(Clock<CoarseClock>);
static_assert(Clock<ManualClock>);

}  // namespace floodgate
