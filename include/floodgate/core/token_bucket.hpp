// floodgate/core/token_bucket.hpp: a lock-free token bucket.
//
//   floodgate::TokenBucket bucket(floodgate::Rate::per_second(30), /*burst=*/30);
//   if (bucket.try_acquire()) send();                 // take one token or refuse
//   auto wait = bucket.time_until(5);                  // how long until 5 tokens
//   auto r = bucket.reserve(3);                        // book 3 tokens now, use them at r.ready_at()
//   if (changed_my_mind) r.cancel();                   // gives the 3 tokens back (if not yet due)
//
// The bucket starts full. Its whole state is one `std::atomic<int64_t>` (the
// GCRA "theoretical arrival time", see rate.hpp), updated with one
// compare-and-swap, so `try_acquire` is lock-free and costs a clock read plus a
// CAS. Time comes from a `Clock` object (floodgate/core/clock.hpp), so tests
// drive it with `ManualClock`.
//
// The default clock is `SteadyClock`. On `CoarseClock` (a few ns a read, up
// to its lag bound L behind true time) a bucket whose burst refills in at
// least 100 L (0.8 s with the usual L = 8 ms) reads the coarse time and
// charges each admission the lag, which provably never admits more than
// burst + rate * t in any window of true time (rate.hpp, "Limiting on a
// lagging clock"); a smaller bucket reads `steady_clock`. The charge has a
// price that keeps CoarseClock from being the default: after an idle spell
// the last token of a burst taken at once comes up to L late (a 2/min
// bucket passes one request, and the second only L later), which a caller
// that does not wait (ApiKeyPool's budgets, a fail-open Redis limit) sees as
// a refusal.
//
// Rules:
// - `Rate::zero()` never admits (any burst is accepted). A positive rate with a
//   burst below one token throws `floodgate::Error`: it could never admit.
// - A request for more tokens than the burst can never pass: `try_acquire`
//   refuses it and `time_until` returns `TokenBucket::never`.
// - `set_rate`/`set_burst` may be called while other threads take tokens. They
//   keep the number of tokens currently available (capped at the new burst).
//   While a reconfiguration runs (a few instructions), takers spin on it; a
//   take that races with it is judged by either the old or the new settings,
//   never a mix of the two.
#pragma once

#include <floodgate/core/clock.hpp>
#include <floodgate/core/rate.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

namespace floodgate {

template <Clock C = SteadyClock>
class TokenBucket {
 public:
  using clock_type = C;
  using duration = std::chrono::nanoseconds;
  using time_point = typename C::time_point;

  /// `time_until` of a request that can never pass.
  static constexpr duration never = LimitDecision::never;

  /// A booking of tokens made by `reserve`. Move-only. Keeping it (or dropping
  /// it) means the tokens are used; `cancel()` before `ready_at()` gives them
  /// back. The bucket must outlive the reservation.
  class Reservation {
   public:
    Reservation() = default;
    /// A moved-from reservation is empty: not ok, no tokens, cancels nothing.
    Reservation(Reservation&& other) noexcept
        : bucket_(std::exchange(other.bucket_, nullptr)), tokens_(std::exchange(other.tokens_, 0)),
          ready_at_(other.ready_at_), ok_(std::exchange(other.ok_, false)) {}
    /// The booking held before is kept (its tokens count as used).
    Reservation& operator=(Reservation&& other) noexcept {
      if (this == &other) return *this;
      bucket_ = std::exchange(other.bucket_, nullptr);
      tokens_ = std::exchange(other.tokens_, 0);
      ready_at_ = other.ready_at_;
      ok_ = std::exchange(other.ok_, false);
      return *this;
    }

    /// False when the request can never be served (zero rate or more tokens
    /// than the burst); such a reservation took nothing.
    bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    std::uint32_t tokens() const noexcept { return tokens_; }
    /// When the booked tokens are there: act at this time.
    time_point ready_at() const noexcept { return ready_at_; }
    /// How long from now until `ready_at()` (zero if already due). Read on
    /// the bucket's clock, it may be up to the clock's lag longer than on a
    /// steady timer; the bucket charged that lag when it booked the tokens.
    duration delay() const {
      if (!ok_) return never;
      const std::int64_t now = bucket_ ? bucket_->read().now : detail::to_ns(ready_at_);
      return std::max(duration{0}, duration{detail::to_ns(ready_at_) - now});
    }

    /// Gives the tokens back if called no later than `ready_at()`; returns true
    /// when it did. A late cancel, or a second one, gives back nothing.
    bool cancel() {
      auto* bucket = std::exchange(bucket_, nullptr);
      if (bucket == nullptr || bucket->read().now > detail::to_ns(ready_at_)) return false;
      bucket->refund(tokens_);
      return true;
    }

   private:
    friend class TokenBucket;
    Reservation(TokenBucket* bucket, std::uint32_t tokens, time_point ready_at, bool ok)
        : bucket_(bucket), tokens_(tokens), ready_at_(ready_at), ok_(ok) {}

    TokenBucket* bucket_ = nullptr;
    std::uint32_t tokens_ = 0;
    time_point ready_at_{};
    bool ok_ = false;
  };

  /// A bucket of `burst` tokens refilling at `rate`, full at construction.
  TokenBucket(Rate rate, double burst, C clock = C{})
      : clock_(std::move(clock)), params_(detail::Gcra::make(rate, burst)), rate_(rate),
        burst_(burst) {
    store_params(params_);
    tat_.store(read().now, std::memory_order_relaxed);
  }
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  /// Takes n tokens if they are all there; otherwise takes nothing.
  bool try_acquire(std::uint32_t n = 1) { return check(n).admitted; }

  /// Like try_acquire, but a refusal also says how long until n tokens would
  /// be there (`LimitDecision::never` when they never will).
  LimitDecision check(std::uint32_t n = 1) { return check_at(read(), n); }

  /// How long until n tokens are available (zero if they are now; `never` if
  /// they never will be). Takes nothing.
  duration time_until(std::uint32_t n = 1) const { return time_until_at(read(), n); }

  /// Books n tokens, waiting in line behind earlier bookings: the tokens are
  /// taken now and the reservation says when they are actually there.
  Reservation reserve(std::uint32_t n = 1) {
    const detail::Reading at = read();
    for (;;) {
      const auto [params, tat] = snapshot();
      if (n > 0 && (params.zero_rate() || n > params.capacity())) return {};
      const auto booking = params.book(tat, at, n);
      std::int64_t expected = tat;
      if (tat_.compare_exchange_weak(expected, booking.new_tat, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        return {this, n, time_point{std::chrono::duration_cast<typename C::duration>(
                              std::chrono::nanoseconds{booking.ready})},
                true};
      }
    }
  }

  /// Gives back n tokens taken by try_acquire that were not used (LimitSet
  /// does this when another limit refuses). Never fills beyond the burst.
  void refund(std::uint32_t n = 1) { refund_at(read().now, n); }

  /// Tokens available now (fractional; negative while reservations are due).
  double available() const {
    const auto [params, tat] = snapshot();
    return params.available(tat, read().now);
  }

  void set_rate(Rate rate) { reconfigure(rate, std::nullopt); }
  void set_burst(double burst) { reconfigure(std::nullopt, burst); }
  Rate rate() const {
    std::lock_guard lock(writer_);
    return rate_;
  }
  double burst() const {
    std::lock_guard lock(writer_);
    return burst_;
  }
  const C& clock() const noexcept { return clock_.clock(); }
  /// Whether checks read the clock's fast time (CoarseClock's coarse one,
  /// charged its lag) rather than its precise one; true for a clock without
  /// lag. See the header comment.
  bool reads_fast() const noexcept { return clock_.lag_absorbed_by(tolerance_.load(std::memory_order_relaxed)); }

 private:
  template <class, Clock>
  friend class LimitSet;  // reads the clock once for all its limits

  LimitDecision check_at(detail::Reading at, std::uint32_t n) {
    for (;;) {
      const auto [params, tat] = snapshot();
      const auto verdict = params.check(tat, at, n);
      if (!verdict.admitted) return {false, detail::wait_duration(verdict.wait)};
      std::int64_t expected = tat;
      if (tat_.compare_exchange_weak(expected, verdict.new_tat, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        return {true};
      }
    }
  }

  duration time_until_at(detail::Reading at, std::uint32_t n) const {
    const auto [params, tat] = snapshot();
    return detail::wait_duration(params.check(tat, at, n).wait);
  }

  void refund_at(std::int64_t now, std::uint32_t n) {
    for (;;) {
      const auto [params, tat] = snapshot();
      std::int64_t expected = tat;
      if (tat_.compare_exchange_weak(expected, params.refund(tat, now, n), std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
        return;
      }
    }
  }

  struct Snapshot {
    detail::Gcra params;
    std::int64_t tat;
  };

  // The fast reading where the current tolerance absorbs the clock's lag,
  // else the precise one (core/detail/limiter_clock.hpp).
  detail::Reading read() const { return clock_.read(tolerance_.load(std::memory_order_relaxed)); }

  // The parameters are guarded by a sequence lock: readers retry when a writer
  // ran in between, so they never combine one setting's interval with the
  // other's tolerance. The state itself (tat_) stays a single atomic word.
  Snapshot snapshot() const {
    for (;;) {
      const std::uint32_t before = version_.load(std::memory_order_acquire);
      if (before & 1U) continue;  // a writer is converting the state right now
      const detail::Gcra params{interval_.load(std::memory_order_relaxed),
                                tolerance_.load(std::memory_order_relaxed)};
      const std::int64_t tat = tat_.load(std::memory_order_acquire);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (version_.load(std::memory_order_relaxed) == before) return {params, tat};
    }
  }

  void store_params(const detail::Gcra& params) {
    interval_.store(params.interval, std::memory_order_relaxed);
    tolerance_.store(params.tolerance, std::memory_order_relaxed);
  }

  void reconfigure(std::optional<Rate> rate, std::optional<double> burst) {
    std::lock_guard lock(writer_);
    const Rate new_rate = rate.value_or(rate_);
    const double new_burst = burst.value_or(burst_);
    const detail::Gcra next = detail::Gcra::make(new_rate, new_burst);  // may throw: nothing changed yet

    const std::uint32_t version = version_.load(std::memory_order_relaxed);
    version_.store(version + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    const std::int64_t now = clock_.read(true).now;
    std::int64_t tat = tat_.load(std::memory_order_acquire);
    while (!tat_.compare_exchange_weak(tat, detail::Gcra::convert(params_, next, tat, now),
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
    }
    store_params(next);
    version_.store(version + 2, std::memory_order_release);
    params_ = next;
    rate_ = new_rate;
    burst_ = new_burst;
  }

  detail::LimiterClock<C> clock_;
  std::atomic<std::int64_t> tat_{0};  // the bucket's whole state
  std::atomic<std::uint32_t> version_{0};
  std::atomic<std::int64_t> interval_{0};
  std::atomic<std::int64_t> tolerance_{0};

  mutable std::mutex writer_;  // serialises set_rate/set_burst; never taken by takers
  detail::Gcra params_;        // writer's copy of the parameters
  Rate rate_;
  double burst_;
};

}  // namespace floodgate
