// floodgate/kite/reconnect_backoff.hpp: when a ticker connection dials again.
//
// A connection that fails to connect, or that connects and is lost before it
// was healthy, is one failure. Failures in a row grow the pause before the
// next attempt; `policy.max_attempts` of them in a row make the connection
// give up. Only a connection that has been *healthy*, with data flowing for
// `policy.healthy_after`, resets the count: a server that accepts every
// upgrade and drops it at once is backed off like one that refuses, instead of
// being redialled (and re-sent every subscription) every few hundred ms for ever.
//
// The pause before the retry after failure number n (1-based) is drawn with
// "full jitter" above the floor, uniformly from
//
//   [floor, min(cap, floor · 2^(n−1))]
//
// so the first retry waits exactly `floor`, the range doubles with each
// failure up to `cap`, and many connections dropped together spread out
// instead of returning in the same instant. Never less than `floor`: no storm.
//
//   floodgate::kite::ReconnectBackoff<> backoff(policy);
//   backoff.opened();                    // the upgrade succeeded
//   backoff.data(now);                   // a message arrived (cheap after the first)
//   auto next = backoff.failed(now, unit_random);   // attempt failed or connection lost
//   if (next.give_up) stop(); else wait(next.delay);
//
// Pure logic over the `Clock`'s time points: tests run it in virtual time.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

namespace floodgate::kite {

/// How a connection waits between failures. The defaults follow the official
/// Kite clients (a first retry after about a second, growing to a minute;
/// pykiteconnect gives up after 50 tries).
struct ReconnectPolicy {
  /// The shortest pause, and the pause after the first failure.
  std::chrono::milliseconds floor{std::chrono::seconds(1)};
  /// The longest pause.
  std::chrono::milliseconds cap{std::chrono::seconds(60)};
  /// Data flowing on a connection for this long makes it healthy: its loss
  /// then starts the backoff over at `floor`.
  std::chrono::milliseconds healthy_after{std::chrono::seconds(30)};
  /// Failures in a row after which the connection gives up; 0 never gives up.
  std::size_t max_attempts = 50;
};

/// The pause after failure number `failures` (1-based; 0 counts as 1), with
/// `unit_random` in [0, 1] choosing where in [floor, min(cap, floor ·
/// 2^(failures−1))] it falls. Never overflows, whatever the count.
std::chrono::milliseconds backoff_delay(const ReconnectPolicy& policy, std::size_t failures, double unit_random);

template <class Clock = std::chrono::steady_clock>
class ReconnectBackoff {
 public:
  using time_point = typename Clock::time_point;

  struct Next {
    bool give_up = false;
    std::size_t failures = 0;  ///< failures in a row, this one included
    std::chrono::milliseconds delay{0};  ///< the pause before the next attempt (unless give_up)
  };

  explicit ReconnectBackoff(ReconnectPolicy policy) : policy_(policy) {}

  /// The upgrade succeeded: a connection is open, no data yet.
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

  /// A connection attempt failed, or the open connection was lost, at `now`.
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
  const ReconnectPolicy& policy() const noexcept { return policy_; }

 private:
  ReconnectPolicy policy_;
  std::size_t failures_ = 0;
  bool open_ = false;
  std::optional<time_point> data_since_;
};

}  // namespace floodgate::kite
