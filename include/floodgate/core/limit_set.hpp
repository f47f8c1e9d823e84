// floodgate/core/limit_set.hpp: several rate limits that a request must all pass.
//
//   floodgate::LimitSet<std::int64_t> limits;
//   limits.add("bot", floodgate::Rate::per_second(30), 1)               // one bucket for everything
//         .add_per_key("private_chat", floodgate::Rate::per_second(1), 3,
//                      [](std::int64_t chat) { return chat > 0; })     // one bucket per matching key
//         .add_per_key("group_chat", floodgate::Rate::per_minute(20), 1,
//                      [](std::int64_t chat) { return chat < 0; });
//
//   if (auto d = limits.try_acquire(chat_id)) send(chat_id);
//   else reply_later(d.retry_after, d.limit);   // e.g. 2.9 s, "group_chat"
//
// (`telegram_bot_limits()` in telegram/limits.hpp builds exactly this set.)
//
// A request passes only when every limit that applies to its key admits it.
// When one refuses, the tokens already taken from the limits before it are
// given back, so a refused request costs nothing anywhere. The refusal names
// the limit that refused and carries `retry_after`: the longest wait among all
// the applicable limits, i.e. the earliest moment the request could pass if
// nobody else took tokens meanwhile.
//
// Per-key limits are checked before shared ones (each group in the order they
// were added). So a refusal names the most specific limit that refuses, and a
// refusal by a shared limit (`per_key == false`) means the key's own limits
// would have let the request through: its `retry_after` is the shared limit's
// wait. AsyncLimiter relies on this to keep one busy chat from holding up the
// others. Configure the set before sharing it between threads; acquiring is
// thread-safe.
//
// The set reads its clock once per request for all its limits: the fast
// reading of CoarseClock (the default) when every limit absorbs the clock's
// lag, else steady_clock's (rate.hpp, "Limiting on a lagging clock"). With
// telegram_bot_limits() the 30/s bot limit with a burst of 1 does not, so
// that set reads steady_clock.
#pragma once

#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/core/rate.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace floodgate {

template <class Key, Clock C = SteadyClock>
class LimitSet {
 public:
  using key_type = Key;
  using clock_type = C;
  using duration = std::chrono::nanoseconds;
  /// Which keys a per-key limit applies to; an empty function means all.
  using Scope = std::function<bool(const Key&)>;

  explicit LimitSet(C clock = C{}) : clock_(std::move(clock)) {}

  /// Adds one bucket shared by every request.
  LimitSet& add(std::string name, Rate rate, double burst) {
    limits_.push_back(Limit{std::move(name), {},
                            std::make_unique<TokenBucket<C>>(rate, burst, clock_.clock()), nullptr});
    fast_ = fast_ && limits_.back().shared->reads_fast();
    return *this;
  }

  /// Adds one bucket per key for the keys `applies_to` accepts.
  LimitSet& add_per_key(std::string name, Rate rate, double burst, Scope applies_to = {},
                        KeyedLimiterOptions options = {}) {
    const auto first_shared = std::find_if(limits_.begin(), limits_.end(),
                                           [](const Limit& limit) { return limit.keyed == nullptr; });
    const auto added = limits_.insert(
        first_shared, Limit{std::move(name), std::move(applies_to), nullptr,
                            std::make_unique<KeyedLimiter<Key, C>>(rate, burst, options, clock_.clock())});
    fast_ = fast_ && added->keyed->reads_fast();
    return *this;
  }

  /// Takes n tokens from every limit that applies to `key`, or from none.
  LimitDecision try_acquire(const Key& key, std::uint32_t n = 1) {
    const detail::Reading now = read();  // one clock read: every limit judges the same instant
    for (std::size_t i = 0; i < limits_.size(); ++i) {
      Limit& limit = limits_[i];
      if (!limit.applies(key)) continue;
      LimitDecision refused = limit.try_acquire(key, n, now);
      if (refused) continue;
      for (std::size_t j = 0; j < i; ++j) {
        if (limits_[j].applies(key)) limits_[j].refund(key, n, now.now);
      }
      refused.limit = limit.name;
      refused.per_key = limit.keyed != nullptr;
      if (!refused.never_admits()) refused.retry_after = std::max(refused.retry_after, time_until_at(key, n, now));
      return refused;
    }
    return {true};
  }

  /// How long until a request for `key` could pass (zero if it could now;
  /// `LimitDecision::never` if it never can). Takes nothing.
  duration time_until(const Key& key, std::uint32_t n = 1) const { return time_until_at(key, n, read()); }

  /// Gives back n tokens for `key` to every limit that applies (a request that
  /// passed but was not sent after all).
  void refund(const Key& key, std::uint32_t n = 1) {
    const std::int64_t now = read().now;
    for (Limit& limit : limits_) {
      if (limit.applies(key)) limit.refund(key, n, now);
    }
  }

  std::size_t size() const noexcept { return limits_.size(); }
  /// Bytes held by the per-key limits (see KeyedLimiter::memory_bytes).
  std::size_t memory_bytes() const {
    std::size_t total = sizeof(*this);
    for (const Limit& limit : limits_) {
      total += sizeof(Limit) + (limit.keyed ? limit.keyed->memory_bytes() : sizeof(TokenBucket<C>));
    }
    return total;
  }
  const C& clock() const noexcept { return clock_.clock(); }
  /// Whether a request reads the clock's fast time (every limit absorbs its
  /// lag) rather than its precise one.
  bool reads_fast() const noexcept { return fast_; }

 private:
  struct Limit {
    std::string name;
    Scope scope;
    std::unique_ptr<TokenBucket<C>> shared;    // exactly one of these two is set
    std::unique_ptr<KeyedLimiter<Key, C>> keyed;

    bool applies(const Key& key) const { return !scope || scope(key); }
    LimitDecision try_acquire(const Key& key, std::uint32_t n, detail::Reading now) {
      return keyed ? keyed->try_acquire_at(key, n, now) : shared->check_at(now, n);
    }
    duration time_until(const Key& key, std::uint32_t n, detail::Reading now) const {
      return keyed ? keyed->time_until_at(key, n, now) : shared->time_until_at(now, n);
    }
    void refund(const Key& key, std::uint32_t n, std::int64_t now) {
      if (keyed) keyed->refund_at(key, n, now);
      else shared->refund_at(now, n);
    }
  };

  detail::Reading read() const { return clock_.read(fast_); }

  duration time_until_at(const Key& key, std::uint32_t n, detail::Reading now) const {
    duration longest{0};
    for (const Limit& limit : limits_) {
      if (limit.applies(key)) longest = std::max(longest, limit.time_until(key, n, now));
    }
    return longest;
  }

  detail::LimiterClock<C> clock_;
  bool fast_ = true;  // every limit absorbs the clock's lag: read it fast
  std::vector<Limit> limits_;
};

}  // namespace floodgate
