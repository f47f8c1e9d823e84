// floodgate/core/health.hpp: a credential's health record and its snapshot.
//
// The pool keeps one `Health` per credential and updates it on every acquire
// and report. `HealthSnapshot` is the plain, copyable value that status views,
// metrics and tests read; its times are wall-clock, ready to print.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace floodgate {

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
  void record_outcome(bool success, TimePoint now) noexcept {
    const double fade = fade_between(outcomes_at, now);
    decayed_successes = decayed_successes * fade + (success ? 1.0 : 0.0);
    decayed_outcomes = decayed_outcomes * fade + 1.0;
    outcomes_at = now;
  }

 private:
  static double fade_between(TimePoint then, TimePoint now) noexcept {
    if (now <= then) return 1.0;
    return std::exp2(-std::chrono::duration<double>(now - then).count() /
                     std::chrono::duration<double>(kHalfLife).count());
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
