// floodgate/core/health.hpp: a credential's health record and its snapshot.
//
// The pool keeps one `Health` per credential and updates it on every acquire
// and report. `HealthSnapshot` is the plain, copyable value that status views,
// metrics and tests read; its times are wall-clock, ready to print.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace floodgate {
namespace detail {

// 2^(-j/1024) for j in [0, 1024], computed at compile time (Taylor series of
// e^-y, y <= ln 2: 30 terms are exact to the last bit of a double).
inline constexpr std::array<double, 1025> kExp2Fractions = [] {
  std::array<double, 1025> table{};
  constexpr double kLn2 = 0.693147180559945309417232121458176568;
  for (std::size_t j = 0; j < table.size(); ++j) {
    const double y = static_cast<double>(j) * kLn2 / 1024.0;
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 30; ++k) {
      term *= -y / k;
      sum += term;
    }
    table[j] = sum;
  }
  return table;
}();

/// 2^-x for x >= 0 without a libm call: a power of two for the integer part
/// times the table, interpolated, for the fraction. Relative error below
/// 1e-7, far finer than any use of a decayed count here; the health record
/// runs it on every acquire and report, where `std::exp2` was a tenth of the
/// pool's time.
inline double exp2_negative(double x) noexcept {
  if (!(x < 1000.0)) return x >= 1000.0 ? 0.0 : 1.0;  // underflow; NaN counts as no time
  const double scaled = x * 1024.0;
  const auto steps = static_cast<std::uint64_t>(scaled);
  const std::uint64_t whole = steps >> 10, fraction = steps & 1023;
  const double t = scaled - static_cast<double>(steps);
  const double mantissa = kExp2Fractions[fraction] + t * (kExp2Fractions[fraction + 1] - kExp2Fractions[fraction]);
  return mantissa * std::bit_cast<double>((1023 - whole) << 52);  // exactly 2^-whole
}

}  // namespace detail

/// Whether a credential can be handed out now, and if not, why.
enum class CredentialState {
  ready,     ///< usable
  cooling,   ///< told to wait by the service (flood wait, 429) until `cooldown_until`
  ejected,   ///< resting after too many consecutive failures, until `cooldown_until`
  disabled,  ///< off until enabled again (by hand, or after an auth failure)
};

inline const char* to_string(CredentialState s) noexcept {
  switch (s) {
    case CredentialState::ready: return "ready";
    case CredentialState::cooling: return "cooling";
    case CredentialState::ejected: return "ejected";
    case CredentialState::disabled: return "disabled";
  }
  return "?";
}

/// The live record. `TimePoint` is the pool clock's; zero means "never".
template <class TimePoint>
struct Health {
  std::uint64_t requests = 0;      ///< leases handed out
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;      ///< not_sent, maybe_applied and auth_failed outcomes
  std::uint64_t bad_requests = 0;  ///< rejected outcomes: not held against the credential
  std::uint64_t flood_waits = 0;
  std::uint64_t abandoned = 0;     ///< leases dropped without a report
  std::uint32_t consecutive_failures = 0;
  std::uint32_t in_flight = 0;
  std::uint32_t ejections = 0;         ///< current ejection multiplier (decays with successes)
  std::uint32_t success_streak = 0;    ///< successes since the last failure
  double decayed_successes = 0;        ///< success count with exponential forgetting
  double decayed_outcomes = 0;         ///< outcome count with the same forgetting
  double latency_ewma_us = 0;          ///< smoothed latency of successful calls
  TimePoint last_used{};
  TimePoint last_success{};
  TimePoint cooldown_until{};          ///< cooling or ejected until then

  TimePoint outcomes_at{};              ///< when the decayed counts were last brought up to date

  // The smoothed success rate: successes over outcomes, where an outcome's
  // weight halves every kHalfLife, on top of a prior of kPriorWeight
  // successful outcomes. So the rate speaks of the last minutes, not of all
  // time: a failure long ago fades, and a credential failing now drops at
  // once. The optimistic prior (an untested credential ranks with the
  // flawless ones) lets healthy credentials tie and share the load instead of
  // the first lucky one taking everything; an idle credential drifts back
  // toward the prior and is tried again.
  static constexpr std::chrono::seconds kHalfLife{60};
  static constexpr double kPriorWeight = 2.0;

  /// The rate as of `now`, without changing the record.
  double smoothed_success_rate(TimePoint now) const noexcept {
    const double fade = fade_between(outcomes_at, now);
    return (decayed_successes * fade + kPriorWeight) / (decayed_outcomes * fade + kPriorWeight);
  }
  /// Counts one outcome at `now`. An outcome dated before the latest one
  /// (a success dated by its answer, reported late) counts at full weight and
  /// leaves the record's time alone.
  void record_outcome(bool success, TimePoint now) noexcept {
    const double fade = fade_between(outcomes_at, now);
    decayed_successes = decayed_successes * fade + (success ? 1.0 : 0.0);
    decayed_outcomes = decayed_outcomes * fade + 1.0;
    if (now > outcomes_at) outcomes_at = now;
  }

 private:
  static double fade_between(TimePoint then, TimePoint now) noexcept {
    if (now <= then) return 1.0;
    constexpr double kPerTick = 1.0 / static_cast<double>(std::chrono::duration_cast<typename TimePoint::duration>(
                                          std::chrono::duration<double>(kHalfLife)).count());
    return detail::exp2_negative(static_cast<double>((now - then).count()) * kPerTick);
  }
};

/// A copy of one credential's record at one instant, with wall-clock times.
struct HealthSnapshot {
  using WallTime = std::chrono::system_clock::time_point;

  std::string id;
  std::uint32_t weight = 1;
  CredentialState state = CredentialState::ready;
  std::string disabled_reason;  ///< why, when state == disabled

  std::uint64_t requests = 0;
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t bad_requests = 0;
  std::uint64_t flood_waits = 0;
  std::uint64_t abandoned = 0;
  std::uint32_t consecutive_failures = 0;
  std::uint32_t in_flight = 0;
  std::uint32_t ejections = 0;
  std::size_t scoped_cooldowns = 0;  ///< destinations this credential is cooling for

  double smoothed_success_rate = 0;  ///< what BestHealth ranks by
  std::chrono::microseconds latency_ewma{0};

  std::optional<WallTime> last_used;
  std::optional<WallTime> last_success;
  std::optional<WallTime> cooldown_until;     ///< set when cooling or ejected
  std::chrono::nanoseconds cooldown_remaining{0};

  /// Successes over all reported outcomes (what people expect "success %" to
  /// mean); 1.0 before the first report.
  double success_ratio() const noexcept {
    const auto reported = successes + failures + flood_waits;
    return reported == 0 ? 1.0 : static_cast<double>(successes) / static_cast<double>(reported);
  }
};

}  // namespace floodgate
