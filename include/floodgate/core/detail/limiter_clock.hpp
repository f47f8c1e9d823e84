// floodgate/core/detail/limiter_clock.hpp: how a rate limiter reads its clock.
//
// A limiter on a clock that lags true time (CoarseClock: a few ns a read, up
// to `lag_bound()` behind) reads that clock only where its GCRA arithmetic
// can absorb the lag; elsewhere it reads the clock's precise time
// (`precise_now()`, steady_clock for CoarseClock). The rule and its proof are
// in rate.hpp ("Limiting on a lagging clock"); this header only picks the
// reading.
//
// A `Reading` is a time `now` no later than the true instant of the request,
// and `lag`: how much later that instant may be (zero for a precise reading).
#pragma once

#include <floodgate/core/clock.hpp>

#include <chrono>
#include <cstdint>

namespace floodgate::detail {

struct Reading {
  std::int64_t now = 0;  ///< ns; at or before the true time of the request
  std::int64_t lag = 0;  ///< ns; the true time is at most now + lag
};

/// The lag a limiter may absorb: a bucket whose tolerance (burst * interval)
/// is at least this many lag bounds reads the fast clock. Charging the lag
/// costs such a bucket at most 1 / kLagShare of its burst (see rate.hpp).
inline constexpr std::int64_t kLagShare = 100;

/// The clock of a limiter, with its lag bound in ns read once.
template <Clock C>
class LimiterClock {
 public:
  explicit LimiterClock(C clock)
      : clock_(std::move(clock)),
        lag_(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_lag_bound(clock_)).count()) {}

  const C& clock() const noexcept { return clock_; }
  std::int64_t lag() const noexcept { return lag_; }

  /// Whether a bucket of this tolerance (ns) may be judged on the fast,
  /// lagging reading.
  /// A lagging clock without `precise_now()` is always read fast (it has no
  /// other reading), and the lag is charged whatever the tolerance.
  bool lag_absorbed_by(std::int64_t tolerance) const noexcept {
    if constexpr (!HasPreciseNow<C>) return true;
    return lag_ == 0 || tolerance / kLagShare >= lag_;
  }

  /// The reading for a bucket of this tolerance: the fast one with its lag
  /// where the bucket absorbs it, else the precise one.
  Reading read(std::int64_t tolerance) const { return read(lag_absorbed_by(tolerance)); }
  Reading read(bool fast) const {
    if (fast) return {to_ns(clock_.now()), lag_};
    if constexpr (HasPreciseNow<C>) return {to_ns(clock_.precise_now()), 0};
    return {to_ns(clock_.now()), lag_};
  }

 private:
  template <class TimePoint>
  static std::int64_t to_ns(TimePoint t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  C clock_;
  std::int64_t lag_;
};

}  // namespace floodgate::detail
