// floodgate/core/rate.hpp: rates, limiter decisions and the GCRA arithmetic
// shared by every limiter.
//
// A `Rate` is "so many tokens per period":
//
//   Rate::per_second(30)      // 30 tokens each second
//   Rate::per_minute(20)      // 20 tokens each minute
//   Rate{2.5, 1s}             // fractional rates are fine
//   Rate::zero()              // never admits anything
//   Rate::parse("30/s")       // from configuration: "20/min", "100/h", "5/250ms", "1/3s", "2.5/s"
//   rate.to_string()          // "30/s": what parse reads back (also fmt::format("{}", rate))
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
//
// Limiting on a lagging clock. A limiter on CoarseClock (opt-in) reads
// a time `c` that may be up to L (`lag_bound()`) behind the true time t of
// the request: c <= t <= c + L. Judged naively on c, two requests can be up
// to L closer in true time than in readings, and a bucket lets up to L * rate
// tokens too many through a window. So every decision takes a `Reading`
// {now = c, lag = L} (lag = 0 for an exact clock), and:
//
//   a request conforms when   tat + n * interval - tolerance <= c
//   (a reservation is ready at R = max(c, tat + n * interval - tolerance))
//   and then leaves           tat' = max(tat, R + L) + n * interval
//
// with R = c for an immediate admission. That is: the request is judged at
// the earliest instant it can have happened (c, or R when it waits) and
// charged as if it happened at the latest (R + L; a reservation's holder acts
// at R by a steady timer, or by `delay()` read on the lagging clock, i.e. by
// R + L). With L = 0 it is the plain rule above.
//
// Proof that no window of true time [t_i, t_k] admits more than
// tolerance + (t_k - t_i) worth of tokens, i.e. burst + rate * (t_k - t_i):
// let requests i < k be admitted (or booked) in that order, n_j tokens each,
// request j happening at a true time in [R_j, R_j + L_j]. By the update,
// tat after j is at least max(tat before j, R_j + L_j) + n_j * interval, so
// by induction tat before k >= R_i + L_i + (n_i + ... + n_{k-1}) * interval.
// Request k conforms, so tat before k + n_k * interval - tolerance <= R_k.
// Together: (n_i + ... + n_k) * interval <= tolerance + R_k - (R_i + L_i)
// <= tolerance + t_k - t_i, because t_k >= R_k and t_i <= R_i + L_i. For
// i == k the sum is n_k <= burst. Readings may mix lags (a bucket read
// precisely one time and coarsely the next): the proof takes each request's
// own bounds. Refunds lower tat by exactly the tokens given back, as if the
// request had never been; clamping tat up to a reading only takes tokens.
// tests/core/limiter_lag_test.cpp checks it over random request times on a
// lagging virtual clock, with a control showing the naive rule fails.
//
// The price is the charge L - (tat - R) when the bucket is within L of full:
// the bucket behaves as if its burst were up to L * rate tokens smaller. A
// limiter therefore reads the lagging clock only for buckets whose tolerance
// is at least 100 L (so it loses at most 1 % of its burst; with L = 8 ms,
// buckets whose burst refills in 0.8 s or more), and reads the precise clock,
// lag 0, for the others (core/detail/limiter_clock.hpp).
#pragma once

#include <floodgate/core/detail/limiter_clock.hpp>
#include <floodgate/core/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

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

  /// "<count>/<period>": a count (an integer or a decimal, >= 0) per a period
  /// that is a unit (ms, s, min, h; also sec, second, m, minute, hour) with an
  /// optional whole multiplier ("250ms", "3s"). Throws floodgate::Error naming
  /// the text and what was expected.
  static Rate parse(std::string_view text) {
    const auto invalid = [&](std::string_view why) {
      return Error(fmt::format("invalid rate '{}': {}; expected <count>/<period>, e.g. 30/s, 20/min, 5/250ms",
                               text, why));
    };
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) throw invalid("no '/'");
    const auto count_text = text.substr(0, slash);
    double count = 0;
    const auto [count_end, count_error] =
        std::from_chars(count_text.data(), count_text.data() + count_text.size(), count, std::chars_format::fixed);
    if (count_text.empty() || count_error != std::errc{} || count_end != count_text.data() + count_text.size() ||
        !std::isfinite(count) || count < 0) {
      throw invalid("the count is not a number >= 0");
    }
    auto unit = text.substr(slash + 1);
    std::int64_t multiplier = 1;
    if (!unit.empty() && unit.front() >= '0' && unit.front() <= '9') {
      const auto [end, error] = std::from_chars(unit.data(), unit.data() + unit.size(), multiplier);
      if (error != std::errc{} || multiplier < 1 || multiplier > 1'000'000'000) throw invalid("bad period multiplier");
      unit.remove_prefix(static_cast<std::size_t>(end - unit.data()));
    }
    using namespace std::chrono;
    nanoseconds base{0};
    if (unit == "ns") base = nanoseconds(1);
    else if (unit == "ms") base = milliseconds(1);
    else if (unit == "s" || unit == "sec" || unit == "second") base = seconds(1);
    else if (unit == "m" || unit == "min" || unit == "minute") base = minutes(1);
    else if (unit == "h" || unit == "hour") base = hours(1);
    else throw invalid("unknown period unit (ns, ms, s, min, h)");
    return Rate(count, base * multiplier);
  }

  /// The text `parse` reads back: "30/s", "20/min", "5/250ms", "2.5/s".
  std::string to_string() const {
    struct Unit {
      std::int64_t ns;
      const char* name;
    };
    constexpr Unit units[] = {{3'600'000'000'000, "h"}, {60'000'000'000, "min"}, {1'000'000'000, "s"},
                              {1'000'000, "ms"}, {1, "ns"}};
    const auto n = period_.count();
    std::string unit;
    for (const auto& [unit_ns, name] : units) {
      if (n % unit_ns != 0) continue;
      unit = n == unit_ns ? std::string(name) : fmt::format("{}{}", n / unit_ns, name);
      break;
    }
    return fmt::format("{}/{}", tokens_, unit);
  }

  friend bool operator==(const Rate&, const Rate&) = default;

  double tokens() const noexcept { return tokens_; }
  std::chrono::nanoseconds period() const noexcept { return period_; }
  bool is_zero() const noexcept { return tokens_ == 0; }

  /// The time one token takes to refill, rounded up to a whole nanosecond
  /// (at least 1 ns, so the fastest representable rate is 1e9 tokens/s).
  /// Zero for a zero rate.
  std::chrono::nanoseconds interval() const noexcept {
    if (is_zero()) return std::chrono::nanoseconds{0};
    const double ns = std::ceil(static_cast<double>(period_.count()) / tokens_);
    constexpr double max_ns = static_cast<double>(std::numeric_limits<std::int64_t>::max() / 4);  // NOLINT(bugprone-integer-division): an integer bound, then converted
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
    if (tolerance > static_cast<double>(std::numeric_limits<std::int64_t>::max() / 4)) {  // NOLINT(bugprone-integer-division): an integer bound, then converted
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

  /// Whether n tokens can be taken at `at` from a bucket in state `tat`
  /// (see "Limiting on a lagging clock" above for the lag).
  Verdict check(std::int64_t tat, Reading at, std::uint32_t n) const noexcept {
    if (n == 0) return {true, tat, 0};
    if (zero_rate() || n > capacity()) return {false, tat, never};
    const std::int64_t cost = static_cast<std::int64_t>(n) * interval;
    const std::int64_t conforms_at = std::max(tat, at.now) + cost - tolerance;
    if (conforms_at <= at.now) return {true, std::max(tat, at.now + at.lag) + cost, 0};
    return {false, tat, conforms_at - at.now};
  }

  struct Booking {
    std::int64_t new_tat;  ///< the state after booking the tokens
    std::int64_t ready;    ///< when the booked tokens are there
  };
  /// Books n tokens at `at` (n <= capacity(), positive rate): they are there
  /// at `ready`, and charged as if used at the latest instant that may be.
  Booking book(std::int64_t tat, Reading at, std::uint32_t n) const noexcept {
    const std::int64_t cost = static_cast<std::int64_t>(n) * interval;
    const std::int64_t ready = std::max(at.now, tat + cost - tolerance);
    return {std::max(tat, ready + at.lag) + cost, ready};
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

/// "30/s": `Rate::to_string()`.
template <>
struct fmt::formatter<floodgate::Rate> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const floodgate::Rate& rate, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(rate.to_string(), ctx);
  }
};
