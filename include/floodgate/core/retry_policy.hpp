// floodgate/core/retry_policy.hpp: how far one call may go before it
// gives up. Pure arithmetic, no waiting: the RetryExecutor (async/) waits.
//
// What each answer means is core/outcome.hpp's; this header bounds the whole
// run (attempts, how long it may wait for a cooling credential) and spaces
// its retries (exponential backoff with full jitter; an upward-only jitter on
// flood waits, so processes sharing a credential do not all come back at the
// same instant).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

#include "floodgate/core/backoff.hpp"

namespace floodgate {

struct RetryPolicy {
  /// Calls made in one run, whatever their outcomes.
  std::uint32_t max_attempts = 8;
  /// The longest the run waits for a cooling credential; longer (or past the
  /// deadline) ends it with all_credentials_cooling. 0 = never wait.
  std::chrono::nanoseconds max_wait = std::chrono::seconds(60);
  /// Transient failures: the k-th retry waits a uniform random time in
  /// [0, min(backoff_cap, backoff_base × 2^k)] ("full jitter").
  std::chrono::nanoseconds backoff_base = std::chrono::milliseconds(100);
  std::chrono::nanoseconds backoff_cap = std::chrono::seconds(10);
  /// Flood waits: the cooldown is the server's wait plus up to this fraction
  /// of it (at most flood_jitter_cap), never less, so that processes sharing a
  /// credential do not all return at the same instant.
  double flood_jitter = 0.05;
  std::chrono::nanoseconds flood_jitter_cap = std::chrono::seconds(2);
};

/// The arithmetic of one run: attempts, backoff and jitter. Deterministic for
/// a given seed, so tests know each delay.
class RetrySchedule {
 public:
  explicit RetrySchedule(const RetryPolicy& policy, std::uint64_t seed = 0x5eed) : policy_(policy), rng_{seed} {}

  bool attempts_left() const noexcept { return attempts_ < policy_.max_attempts; }
  std::uint32_t attempts() const noexcept { return attempts_; }
  void count_attempt() noexcept { ++attempts_; }

  /// The cooldown to apply for a server wait: never shorter than the server said.
  std::chrono::nanoseconds flood_cooldown(std::chrono::nanoseconds server_wait) {
    const auto extra_max = std::min<std::chrono::nanoseconds>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(server_wait * policy_.flood_jitter),
        policy_.flood_jitter_cap);
    return server_wait + uniform(extra_max);
  }

  /// The wait before the next retry after a transient failure.
  std::chrono::nanoseconds next_backoff() {
    ++transient_failures_;
    // From 0, not from a floor: a retry may go at once (min: a cap under the base caps it).
    return uniform(doubling_ceiling(std::min(policy_.backoff_base, policy_.backoff_cap), policy_.backoff_cap,
                                    transient_failures_));
  }

  /// Whether a cooling pool is worth waiting for: within max_wait and the deadline.
  template <class TimePoint>
  bool should_wait_for(TimePoint earliest, TimePoint now, std::optional<TimePoint> deadline) const {
    if (earliest - now > policy_.max_wait) return false;
    return !deadline || earliest <= *deadline;
  }

 private:
  std::chrono::nanoseconds uniform(std::chrono::nanoseconds max) {
    if (max <= std::chrono::nanoseconds::zero()) return std::chrono::nanoseconds::zero();
    return std::chrono::nanoseconds(std::uniform_int_distribution<std::int64_t>(0, max.count())(rng_));
  }

  /// SplitMix64 (Steele, Lea and Flood, 2014): eight bytes of state, seeded by
  /// a copy. Jitter needs spread, not strength; std::mt19937_64 made every run
  /// 2.5 KB larger and cost about 2.9 k instructions to seed, for every call
  /// through a RetryExecutor (docs/benchmarks.md, BotPool vs the raw client).
  /// Consecutive seeds, as the executor gives its runs, still draw unrelated
  /// numbers: each output is a full avalanche hash of the state.
  struct SplitMix64 {
    using result_type = std::uint64_t;
    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }
    result_type operator()() noexcept {
      std::uint64_t z = state += 0x9e3779b97f4a7c15;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
      z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
      return z ^ (z >> 31);
    }
    std::uint64_t state;
  };

  RetryPolicy policy_;
  SplitMix64 rng_;
  std::uint32_t attempts_ = 0;
  std::uint32_t transient_failures_ = 0;
};

}  // namespace floodgate
