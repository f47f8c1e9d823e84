// floodgate/core/rate.hpp: rates, limiter decisions and the GCRA arithmetic
// shared by every limiter.
//
// A `Rate` is "so many tokens per period":
//
//   Rate::per_second(30)      // 30 tokens each second
//   Rate::per_minute(20)      // 20 tokens each minute
//   Rate{2.5, 1s}             // fractional rates are fine
//   Rate::zero()              // never admits anything
//
// Every limiter in floodgate (TokenBucket, KeyedLimiter, LimitSet) works with
// the Generic Cell Rate Algorithm, the token bucket written as a single time
// value, the way Rust's `governor` and folly's TokenBucket do. One token takes
// `interval` = period / tokens to refill (rounded *up* to whole nanoseconds, so
// a limiter never admits more than its rate), the bucket holds at most
// `burst` tokens, and the whole state of a bucket is one number:
//
//   tat  ("theoretical arrival time"): the instant at which the bucket will be
//        full again. tat <= now means the bucket is full.
//
// Taking n tokens at `now` moves tat to max(tat, now) + n * interval, and is
// allowed when the result is at most `burst * interval` ahead of now. Taking
// max(tat, now) is what clamps elapsed time at zero: a bucket never fills past
// its burst however long it sits idle, and a clock read that is earlier than a
// previous one cannot mint tokens. Because a full bucket is `tat <= now`, a
// full bucket carries no information; that is what lets KeyedLimiter forget
// idle keys.
#pragma once

#include <floodgate/core/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <system_error>

namespace floodgate {

/// A number of tokens per period. Immutable value type.
class Rate {
 public:
  /// `tokens` per `period`; throws floodgate::Error for a negative or
  /// non-finite token count or a period that is not positive.
  Rate(double tokens, std::chrono::nanoseconds period) : tokens_(tokens), period_(period) {
    if (!std::isfinite(tokens) || tokens < 0) {
      throw Error(fmt::format("rate: token count must be a finite number >= 0 (got {})", tokens));
    }
    if (period.count() <= 0) {
      throw Error(fmt::format("rate: period must be positive (got {} ns)", period.count()));
    }
  }

  static Rate per_second(double tokens) { return Rate(tokens, std::chrono::seconds{1}); }
  static Rate per_minute(double tokens) { return Rate(tokens, std::chrono::minutes{1}); }
  static Rate per_hour(double tokens) { return Rate(tokens, std::chrono::hours{1}); }
  static Rate zero() { return Rate(0, std::chrono::seconds{1}); }

  double tokens() const noexcept { return tokens_; }
  std::chrono::nanoseconds period() const noexcept { return period_; }
  bool is_zero() const noexcept { return tokens_ == 0; }

  /// The time one token takes to refill, rounded up to a whole nanosecond
  /// (at least 1 ns, so the fastest representable rate is 1e9 tokens/s).
  /// Zero for a zero rate.
  std::chrono::nanoseconds interval() const noexcept {
    if (is_zero()) return std::chrono::nanoseconds{0};
    const double ns = std::ceil(static_cast<double>(period_.count()) / tokens_);
    constexpr double max_ns = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 4);
    return std::chrono::nanoseconds{static_cast<std::int64_t>(std::clamp(ns, 1.0, max_ns))};
  }

 private:
  double tokens_;
  std::chrono::nanoseconds period_;
};

/// What a limiter said about one request. Converts to `true` when admitted.
struct LimitDecision {
  /// `retry_after` of a request that no waiting can admit (zero rate, or more
  /// tokens than the burst).
  static constexpr std::chrono::nanoseconds never = std::chrono::nanoseconds::max();

  bool admitted = false;
  /// Zero when admitted; otherwise how long until the same request could pass
  /// if nothing else took tokens meanwhile (or `never`).
  std::chrono::nanoseconds retry_after{0};
  /// Name of the limit that refused (LimitSet), empty otherwise.
  std::string_view limit{};
  /// The refusing limit is per key: it does not hold up requests for other keys.
  bool per_key = false;
  /// Refused because a KeyedLimiter is at its key cap, not because of the rate.
  bool at_capacity = false;

  explicit operator bool() const noexcept { return admitted; }
  bool never_admits() const noexcept { return !admitted && retry_after == never; }
  /// `{}` when admitted, else errc::capacity_exceeded or errc::rate_limited.
  std::error_code error() const noexcept {
    if (admitted) return {};
    return make_error_code(at_capacity ? errc::capacity_exceeded : errc::rate_limited);
  }
};

namespace detail {

/// GCRA parameters in nanoseconds. interval == 0 means a zero rate.
struct Gcra {
  std::int64_t interval = 0;   ///< time one token takes to refill
  std::int64_t tolerance = 0;  ///< burst * interval: how far tat may run ahead of now

  static constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

  /// Validates and converts a (rate, burst) pair. A positive rate needs a
  /// burst of at least one token, or nothing could ever pass.
  static Gcra make(const Rate& rate, double burst) {
    if (!std::isfinite(burst) || burst < 0) {
      throw Error(fmt::format("rate limiter: burst must be a finite number >= 0 (got {})", burst));
    }
    if (rate.is_zero()) return {};
    if (burst < 1) {
      throw Error(fmt::format(
          "rate limiter: burst must be at least 1 token when the rate is above zero (got {}); "
          "use Rate::zero() for a limiter that admits nothing",
          burst));
    }
    const std::int64_t interval = rate.interval().count();
    const double tolerance = std::floor(burst * static_cast<double>(interval));
    if (tolerance > static_cast<double>(std::numeric_limits<std::int64_t>::max() / 4)) {
      throw Error(fmt::format("rate limiter: burst {} at this rate spans more than 70 years", burst));
    }
    return {interval, static_cast<std::int64_t>(tolerance)};
  }

  bool zero_rate() const noexcept { return interval == 0; }
  /// Whole tokens the bucket holds when full.
  std::int64_t capacity() const noexcept { return zero_rate() ? 0 : tolerance / interval; }

  struct Verdict {
    bool admitted;
    std::int64_t new_tat;  ///< the state after taking the tokens (when admitted)
    std::int64_t wait;     ///< ns until the request conforms; `never` if it cannot
  };

  /// Whether n tokens can be taken at `now` from a bucket in state `tat`.
  Verdict check(std::int64_t tat, std::int64_t now, std::uint32_t n) const noexcept {
    if (n == 0) return {true, tat, 0};
    if (zero_rate() || n > capacity()) return {false, tat, never};
    const std::int64_t new_tat = std::max(tat, now) + static_cast<std::int64_t>(n) * interval;
    const std::int64_t conforms_at = new_tat - tolerance;
    if (conforms_at <= now) return {true, new_tat, 0};
    return {false, tat, conforms_at - now};
  }

  /// The state after giving n tokens back (never above a full bucket).
  std::int64_t refund(std::int64_t tat, std::int64_t now, std::uint32_t n) const noexcept {
    return std::max(tat - static_cast<std::int64_t>(n) * interval, now);
  }

  /// Tokens available at `now` (negative when reservations are outstanding).
  double available(std::int64_t tat, std::int64_t now) const noexcept {
    if (zero_rate()) return 0;
    return static_cast<double>(tolerance - std::max<std::int64_t>(tat - now, 0)) /
           static_cast<double>(interval);
  }

  /// Re-expresses a state under new parameters so that the number of tokens
  /// available at `now` stays the same (capped at the new burst). A bucket
  /// leaving a zero rate starts empty: a paused limiter resumes at its rate,
  /// not with a burst.
  static std::int64_t convert(const Gcra& from, const Gcra& to, std::int64_t tat,
                              std::int64_t now) noexcept {
    if (to.zero_rate()) return tat;
    if (from.zero_rate()) return now + to.tolerance;
    const double tokens = from.available(tat, now);
    const double debt = static_cast<double>(to.tolerance) - tokens * static_cast<double>(to.interval);
    return now + static_cast<std::int64_t>(std::ceil(std::max(debt, 0.0)));
  }
};

/// Nanoseconds since the clock's epoch: the unit every limiter state uses.
template <class TimePoint>
std::int64_t to_ns(TimePoint t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

/// A GCRA wait in ns as a duration, mapping `never` to LimitDecision::never.
inline std::chrono::nanoseconds wait_duration(std::int64_t wait) noexcept {
  return wait == Gcra::never ? LimitDecision::never : std::chrono::nanoseconds{wait};
}

}  // namespace detail
}  // namespace floodgate
