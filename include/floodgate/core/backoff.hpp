// floodgate/core/backoff.hpp: how long to pause after failures in a row.
// The project's one backoff: the Kite ticker's and Redis client's reconnects,
// TDLib login retries and the RetryExecutor's transient-failure retries all
// draw their pauses here.
//
// The pause after failure number n (1-based) is drawn with "full jitter"
// above the floor, uniformly from
//
//   [floor, min(cap, floor · 2^(n−1))]
//
// so the first retry waits exactly `floor`, the range doubles with each
// failure up to `cap`, and many clients failing together spread out instead
// of returning in the same instant. Never less than `floor`: no storm.
// `doubling_ceiling` is the top of that range alone, for a caller that draws
// from 0 (RetrySchedule) or wants no jitter (a single login, no herd).
//
// `Backoff` keeps the count for one connection. A failed attempt, or a
// connection lost before it was *healthy* (data flowing for
// `policy.healthy_after`), is one more failure in a row; `max_attempts` of them
// make it give up. Only a healthy connection's loss starts the count over: a
// server that accepts every connection and drops it at once is backed off like
// one that refuses, instead of being redialled every few hundred ms for ever.
//
//   floodgate::Backoff<> backoff(policy);
//   backoff.opened();                    // connected
//   backoff.data(now);                   // a message arrived (cheap after the first)
//   auto next = backoff.failed(now, unit_random);   // attempt failed or connection lost
//   if (next.give_up) stop(); else wait(next.delay);
//
// Pure logic over the `Clock`'s time points: tests run it in virtual time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace floodgate {

/// How a client waits between failures. The defaults are the Kite clients'
/// (a first retry after a second, growing to a minute; pykiteconnect gives up
/// after 50 tries); the Redis client sets its own (redis/client.hpp).
struct BackoffPolicy {
  /// The shortest pause, and the pause after the first failure.
  std::chrono::milliseconds floor{std::chrono::seconds(1)};
  /// The longest pause.
  std::chrono::milliseconds cap{std::chrono::seconds(60)};
  /// Data flowing on a connection for this long makes it healthy: its loss
  /// then starts the backoff over at `floor`.
  std::chrono::milliseconds healthy_after{std::chrono::seconds(30)};
  /// Failures in a row after which the client gives up; 0 never gives up.
  std::size_t max_attempts = 50;
};

/// min(cap, floor · 2^(failures−1)) (failures 1-based; 0 counts as 1), never
/// below floor and never overflowing, whatever the count.
template <class Rep, class Period>
std::chrono::duration<Rep, Period> doubling_ceiling(std::chrono::duration<Rep, Period> floor,
                                                    std::chrono::duration<Rep, Period> cap, std::size_t failures) {
  using Duration = std::chrono::duration<Rep, Period>;
  floor = std::max(floor, Duration::zero());
  cap = std::max(cap, floor);
  // 2^62 is far past any cap, and the doubles below cannot overflow.
  const double exponent = static_cast<double>(std::min<std::size_t>(failures == 0 ? 0 : failures - 1, 62));
  const double ceiling = std::min(static_cast<double>(cap.count()), static_cast<double>(floor.count()) * std::exp2(exponent));
  return Duration(static_cast<Rep>(ceiling));
}

/// The pause after failure number `failures` (1-based; 0 counts as 1), with
/// `unit_random` in [0, 1] choosing where in [floor, doubling_ceiling] it falls.
inline std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, std::size_t failures, double unit_random) {
  const auto floor = std::max(policy.floor, std::chrono::milliseconds::zero());
  const auto ceiling = doubling_ceiling(floor, policy.cap, failures);
  const double spread = static_cast<double>((ceiling - floor).count()) * std::clamp(unit_random, 0.0, 1.0);
  return floor + std::chrono::milliseconds(static_cast<std::int64_t>(spread));
}

template <class Clock = std::chrono::steady_clock>
class Backoff {
 public:
  using time_point = typename Clock::time_point;

  struct Next {
    bool give_up = false;
    std::size_t failures = 0;  ///< failures in a row, this one included
    std::chrono::milliseconds delay{0};  ///< the pause before the next attempt (unless give_up)
  };

  explicit Backoff(BackoffPolicy policy) : policy_(policy) {}

  /// A connection is open, no data yet.
  void opened() {
    open_ = true;
    data_since_.reset();
  }

  /// A message arrived at `now` on the open connection.
  void data(time_point now) {
    if (open_ && !data_since_) data_since_ = now;
  }

  /// True once the open connection has carried data for healthy_after.
  bool healthy(time_point now) const {
    return open_ && data_since_ && now - *data_since_ >= policy_.healthy_after;
  }

  /// An attempt failed, or the open connection was lost, at `now`.
  /// A loss after the connection was healthy starts the count over.
  Next failed(time_point now, double unit_random) {
    if (healthy(now)) failures_ = 0;
    open_ = false;
    data_since_.reset();
    ++failures_;
    if (policy_.max_attempts != 0 && failures_ >= policy_.max_attempts) return {true, failures_, {}};
    return {false, failures_, backoff_delay(policy_, failures_, unit_random)};
  }

  /// Forgets every failure (a new access token, an explicit restart).
  void reset() {
    failures_ = 0;
    open_ = false;
    data_since_.reset();
  }

  std::size_t failures_in_a_row() const noexcept { return failures_; }
  const BackoffPolicy& policy() const noexcept { return policy_; }

 private:
  BackoffPolicy policy_;
  std::size_t failures_ = 0;
  bool open_ = false;
  std::optional<time_point> data_since_;
};

}  // namespace floodgate
