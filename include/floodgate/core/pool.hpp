// floodgate/core/pool.hpp: the credential pool.
//
// A `CredentialPool` holds several credentials for one service and hands out
// the best usable one. Work acquires a `Lease`, makes its call, and reports
// what the server said; the pool never hands out a credential whose cooldown
// has not expired, and when none is usable it says *when* one will be.
//
//   floodgate::CredentialPool<floodgate::BotToken> pool;
//   pool.add({"token-1", {floodgate::Secret(t1)}});
//   pool.add({"token-2", {floodgate::Secret(t2)}});
//
//   if (auto lease = pool.acquire(chat_id)) {  // an integer or text destination
//     auto reply = send(lease->payload().token.reveal(), chat_id, text);
//     if (reply.ok)                lease->success();
//     else if (reply.retry_after)  lease->flood_wait(std::chrono::seconds(*reply.retry_after));
//     else                         lease->report(floodgate::Outcome<>::maybe_applied(reply.description));
//   } else if (lease.error() == floodgate::errc::all_credentials_cooling) {
//     tell_user_to_wait(lease.retry_after());  // how long until the earliest one is usable
//   }
//
// Cooldowns are either for the whole credential (`FLOOD_WAIT_900`) or for one
// destination (Telegram's per-chat limit: a token cooling for chat A still
// serves chat B). After `EjectionPolicy::consecutive_failures` failures in a
// row a credential rests for a growing time, as Envoy's outlier detection
// does. A credential whose auth fails is disabled. What each reported outcome
// does is core/outcome.hpp's table. With `persist_to(sink)` cooldowns and
// disabled flags survive a restart (core/cooldown_sink.hpp).
//
// Time comes from `CoarseClock` by default (core/clock.hpp): a few ns a read
// instead of ~30 on a VM. Every cooldown end (flood waits, ejections, stored
// cooldowns) adds the clock's lag bound, so a cooldown never ends early (a
// `Lease::defer` pause is a local limiter's hint and is not padded); the price is that cooldowns last up to that bound
// (8 ms at HZ=250) longer, and latencies the pool measures itself (`report`
// without a latency) have the clock's resolution. Pass `SteadyClock` for
// exact latencies. An acquire reads the clock once, and so does a report,
// except a success with a caller-measured latency, which reads none (see
// `Lease::report`).
//
// Thread-safe: one mutex guards all state; every operation is O(log n) in the
// number of credentials (see strategy.hpp), so the lock is held briefly.
// The pool must outlive its leases.
#pragma once

#include "floodgate/core/clock.hpp"
#include "floodgate/core/cooldown_sink.hpp"
#include "floodgate/core/credential.hpp"
#include "floodgate/core/detail/indexed_heap.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/health.hpp"
#include "floodgate/core/outcome.hpp"
#include "floodgate/core/strategy.hpp"

#include <algorithm>
#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace floodgate {

namespace detail {
/// Integers a user holds as destinations (chat ids, instrument tokens); not bool or characters.
template <class T>
concept IntegerDestination = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
                             !std::same_as<T, char8_t> && !std::same_as<T, char16_t> && !std::same_as<T, char32_t> &&
                             !std::same_as<T, wchar_t>;
/// An integer destination's key: its decimal text.
template <IntegerDestination T>
std::string destination_text(T destination) {
  return std::to_string(destination);
}
}  // namespace detail

/// When a failing credential is taken out of rotation, and for how long.
struct EjectionPolicy {
  std::uint32_t consecutive_failures = 5;        ///< failures in a row that eject; 0 = never eject
  std::chrono::nanoseconds base_rest = std::chrono::seconds(30);  ///< first rest; the n-th is n × base
  std::chrono::nanoseconds max_rest = std::chrono::minutes(5);
  std::uint32_t successes_to_forgive = 10;       ///< a streak this long lowers the multiplier by one
};

struct PoolOptions {
  EjectionPolicy ejection{};
  double latency_smoothing = 0.2;  ///< weight of the newest sample in the latency EWMA
};

namespace detail {
struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
}  // namespace detail

template <class Payload, Strategy StrategyT = BestHealth, Clock ClockT = CoarseClock>
class CredentialPool {
 public:
  using payload_type = Payload;
  using clock_type = ClockT;
  using time_point = typename ClockT::time_point;
  using duration = typename ClockT::duration;
  using credential_type = Credential<Payload>;

  class Lease;
  class AcquireResult;

  explicit CredentialPool(PoolOptions options = PoolOptions(), ClockT clock = ClockT(), StrategyT strategy = StrategyT())
      : options_(options), clock_(std::move(clock)), strategy_(std::move(strategy)) {}

  CredentialPool(const CredentialPool&) = delete;
  CredentialPool& operator=(const CredentialPool&) = delete;

  const ClockT& clock() const noexcept { return clock_; }

  // ---- membership -------------------------------------------------------

  /// Adds a credential. Throws `Error` if the id is taken or the weight is 0.
  /// When the pool persists to a store, the store's record for this id
  /// (cooldown, disabled) applies at once.
  void add(credential_type credential) {
    if (credential.weight == 0) throw Error("credential " + credential.id + ": weight must be at least 1");
    std::optional<CooldownRecord> stored;
    persist([&](CooldownSink& sink) { stored = sink.find(credential.id); });
    std::lock_guard lock(mutex_);
    if (by_id_.contains(credential.id)) {
      throw Error("credential " + credential.id + ": " + make_error_code(errc::duplicate_credential).message());
    }
    SlotId id;
    if (free_.empty()) {
      id = static_cast<SlotId>(slots_.size());
      slots_.push_back(nullptr);
    } else {
      id = free_.back();
      free_.pop_back();
    }
    slots_[id] = std::make_unique<Slot>(std::move(credential));
    by_id_.emplace(slots_[id]->credential.id, id);
    if (stored) apply_stored_locked(id, *stored);
    refresh_locked(id, clock_.now());
  }

  /// Removes a credential. Leases already out stay valid; their reports are
  /// counted nowhere. Returns false if there is no such id.
  bool remove(std::string_view id) {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return false;
    const SlotId slot = it->second;
    by_id_.erase(it);
    slots_[slot]->removed = true;
    strategy_.erase(slot);
    cooling_.erase(slot);
    release_if_unused_locked(slot);
    return true;
  }

  /// Puts a disabled credential back in rotation (its cooldown, if any, still applies).
  bool enable(std::string_view id) {
    const bool found = with_slot(id, [&](SlotId slot, Slot& s) {
      s.credential.enabled = true;
      s.disabled_reason.clear();
      refresh_locked(slot, clock_.now());
    });
    if (found) persist([&](CooldownSink& sink) { sink.set_enabled(id); });
    return found;
  }

  /// Takes a credential out of rotation until `enable`. Persisted.
  bool disable(std::string_view id, std::string_view reason = "disabled by the application") {
    const bool found = with_slot(id, [&](SlotId slot, Slot& s) { disable_locked(slot, s, reason); });
    if (found) persist([&](CooldownSink& sink) { sink.set_disabled(id, reason); });
    return found;
  }

  /// Changes a credential's weight (used by `Weighted`); takes effect at its next turn.
  bool set_weight(std::string_view id, std::uint32_t weight) {
    if (weight == 0) throw Error("credential " + std::string(id) + ": weight must be at least 1");
    return with_slot(id, [&](SlotId slot, Slot& s) {
      s.credential.weight = weight;
      strategy_.update(slot, candidate_of(s));
    });
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return by_id_.size();
  }

  // ---- cooldowns --------------------------------------------------------

  /// Cools a credential for `wait` (at most kMaxServerWait) from now. A
  /// shorter wait never shortens a longer cooldown already in force. Persisted.
  bool cooldown(std::string_view id, duration wait) {
    std::optional<time_point> until;
    with_slot(id, [&](SlotId slot, Slot& s) {
      until = cool_locked(slot, s, cooldown_end(clock_.now(), wait), Hold::flood_wait);
    });
    if (until) persist([&](CooldownSink& sink) { sink.set_cooldown(id, to_wall(*until)); });
    return until.has_value();
  }

  /// Cools a credential for one destination only (chat id, symbol).
  bool cooldown(std::string_view id, std::string_view destination, duration wait) {
    std::optional<time_point> until;
    with_slot(id, [&](SlotId, Slot& s) { until = cool_scoped_locked(s, destination, cooldown_end(clock_.now(), wait)); });
    if (until) persist([&](CooldownSink& sink) { sink.set_scoped_cooldown(id, destination, to_wall(*until)); });
    return until.has_value();
  }
  template <detail::IntegerDestination Destination>
  bool cooldown(std::string_view id, Destination destination, duration wait) {
    return cooldown(id, detail::destination_text(destination), wait);
  }

  /// Ends every cooldown and ejection of a credential now.
  bool clear_cooldown(std::string_view id) {
    const bool found = with_slot(id, [&](SlotId slot, Slot& s) {
      s.health.cooldown_until = {};
      s.scoped.clear();
      s.hold = Hold::flood_wait;
      refresh_locked(slot, clock_.now());
    });
    if (found) persist([&](CooldownSink& sink) { sink.clear_cooldowns(id); });
    return found;
  }

  /// The earliest moment any enabled credential is usable: now if one is,
  /// nothing if none is enabled.
  std::optional<time_point> earliest_available() const {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    std::optional<time_point> earliest;
    for (const auto& [id, slot] : by_id_) {
      const Slot& s = *slots_[slot];
      if (!s.credential.enabled) continue;
      const auto usable_at = std::max(now, s.health.cooldown_until);
      earliest = earliest ? std::min(*earliest, usable_at) : usable_at;
    }
    return earliest;
  }

  // ---- acquire ----------------------------------------------------------

  /// The best usable credential, or why there is none.
  AcquireResult acquire() { return acquire_impl({}); }

  /// The best usable credential that is not cooling for `destination`.
  AcquireResult acquire(std::string_view destination) { return acquire_impl(destination); }
  /// The same for an integer destination (a Telegram chat id, an instrument
  /// token): the destination is its decimal text, as BotPool keys chats.
  template <detail::IntegerDestination Destination>
  AcquireResult acquire(Destination destination) {
    return acquire_impl(detail::destination_text(destination));
  }

  /// The credential `id` itself, for calls that must go through one given
  /// credential (an edit goes to the bot that sent the message). Counted
  /// exactly like `acquire`: its lease reports successes, flood waits, auth
  /// failures and latency into the same health record. Never hands out a
  /// credential that is not usable now; the error says why:
  ///
  ///   unknown_credential         no credential with that id
  ///   all_credentials_disabled   it is disabled
  ///   all_credentials_cooling    it is cooling (flood wait, ejection), or
  ///                              cooling for `destination`; `earliest()` says until when
  ///   rate_limited               only a `Lease::defer` pause (its local limiter
  ///                              is empty) holds it; `earliest()` says until when
  AcquireResult acquire_id(std::string_view id) { return acquire_id_impl(id, {}); }
  AcquireResult acquire_id(std::string_view id, std::string_view destination) {
    return acquire_id_impl(id, destination);
  }
  template <detail::IntegerDestination Destination>
  AcquireResult acquire_id(std::string_view id, Destination destination) {
    return acquire_id_impl(id, detail::destination_text(destination));
  }

  // ---- observation ------------------------------------------------------

  /// Every credential's record, in the order they were added.
  std::vector<HealthSnapshot> snapshot() const {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    const auto wall = clock_.wall_now();
    std::vector<HealthSnapshot> out;
    out.reserve(by_id_.size());
    for (const auto& slot : slots_) {
      if (slot && !slot->removed) out.push_back(snapshot_of(*slot, now, wall));
    }
    return out;
  }

  std::optional<HealthSnapshot> snapshot(std::string_view id) const {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return std::nullopt;
    return snapshot_of(*slots_[it->second], clock_.now(), clock_.wall_now());
  }

  // ---- persistence ------------------------------------------------------

  /// Applies the sink's records to the credentials present and keeps the
  /// sink up to date from now on (cooldowns, flood waits, disables). The
  /// sink must outlive the pool. Call it once, before the pool is shared.
  void persist_to(CooldownSink& sink) {
    std::unique_lock sink_lock(sink_mutex_);
    std::lock_guard lock(mutex_);
    for (const auto& [id, slot] : by_id_) {
      if (auto record = sink.find(id)) apply_stored_locked(slot, *record);
    }
    sink_ = &sink;
  }

  /// Stops using the sink: when this returns, no call into it is in progress
  /// and none will start. For owners that must let the sink go before the
  /// pool (leases still out may report later).
  void stop_persisting() {
    std::unique_lock sink_lock(sink_mutex_);
    sink_ = nullptr;
  }

 private:
  // Only the pool can name this, so only the pool makes leases (through
  // Lease's public constructor, which std::optional::emplace needs).
  struct LeaseKey {
    explicit LeaseKey() = default;
  };
  enum class Hold : std::uint8_t { flood_wait, ejection, pacing };

  struct Slot {
    explicit Slot(credential_type c) : credential(std::move(c)) {}
    credential_type credential;
    Health<time_point> health;
    std::string disabled_reason;
    std::unordered_map<std::string, time_point, detail::TransparentStringHash, std::equal_to<>> scoped;
    std::uint64_t last_acquired = 0;  // the pool's acquire count then: exact LRU order, even in virtual time
    double score = 0;                 // the strategy's score, as last computed (candidate_of)
    bool removed = false;
    Hold hold = Hold::flood_wait;  // what the current cooldown is for
  };

  struct TickBefore {
    bool operator()(typename duration::rep a, typename duration::rep b) const noexcept { return a < b; }
  };

  // Strategies that never look at the score spare the pool computing it.
  static constexpr bool kStrategyUsesScore = [] {
    if constexpr (requires { StrategyT::uses_score; }) return StrategyT::uses_score;
    return true;
  }();

  Candidate candidate_of(Slot& s) { return candidate_of(s, clock_.now()); }
  Candidate candidate_of(Slot& s, time_point now) {
    if (kStrategyUsesScore) s.score = s.health.smoothed_success_rate(now);
    return candidate_with_score(s);
  }
  // The slot as the strategy ranks it, with the score it last computed.
  static Candidate candidate_with_score(const Slot& s) {
    return {s.score, s.last_acquired, s.health.in_flight, s.credential.weight, s.credential.tier};
  }

  // Scores fade with time even for credentials nobody touches; each acquire
  // re-scores one more credential, so every score is at most n acquires stale
  // at O(log n) cost, instead of re-scoring all n.
  void rescore_one_locked(time_point now) {
    if (!kStrategyUsesScore || slots_.empty()) return;
    rescore_cursor_ = (rescore_cursor_ + 1) % slots_.size();
    Slot* s = slots_[rescore_cursor_].get();
    if (s && !s->removed) strategy_.update(static_cast<SlotId>(rescore_cursor_), candidate_of(*s, now));
  }

  template <class Fn>
  bool with_slot(std::string_view id, Fn&& fn) {
    std::lock_guard lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return false;
    fn(it->second, *slots_[it->second]);
    return true;
  }

  // Puts a slot where its state says it belongs: in the strategy (usable), in
  // the cooling queue (waiting for a time), or in neither (disabled, removed).
  void refresh_locked(SlotId slot, time_point now) {
    Slot& s = *slots_[slot];
    if (s.removed || !s.credential.enabled) {
      strategy_.erase(slot);
      cooling_.erase(slot);
    } else if (s.health.cooldown_until > now) {
      strategy_.erase(slot);
      cooling_.set(slot, s.health.cooldown_until.time_since_epoch().count());
    } else {
      cooling_.erase(slot);
      s.hold = Hold::flood_wait;
      strategy_.insert(slot, candidate_of(s));
    }
  }

  // Moves every credential whose cooldown is over back into the strategy.
  void promote_expired_locked(time_point now) {
    while (!cooling_.empty() && cooling_.key(cooling_.top()) <= now.time_since_epoch().count()) {
      refresh_locked(cooling_.top(), now);
    }
  }

  time_point cool_locked(SlotId slot, Slot& s, time_point until, Hold hold) {
    if (until > s.health.cooldown_until) {
      s.health.cooldown_until = until;
      s.hold = hold;
    }
    refresh_locked(slot, clock_.now());
    return s.health.cooldown_until;
  }

  time_point cool_scoped_locked(Slot& s, std::string_view destination, time_point until) {
    auto it = s.scoped.find(destination);
    if (it == s.scoped.end()) return s.scoped.emplace(std::string(destination), until).first->second;
    it->second = std::max(it->second, until);
    return it->second;
  }

  void disable_locked(SlotId slot, Slot& s, std::string_view reason) {
    s.credential.enabled = false;
    s.disabled_reason = std::string(reason);
    refresh_locked(slot, clock_.now());
  }

  void apply_stored_locked(SlotId slot, const CooldownRecord& entry) {
    Slot& s = *slots_[slot];
    const auto now = clock_.now();
    const auto wall = clock_.wall_now();
    auto to_local = [&](CooldownRecord::WallTime until) {
      // A record far in the future (or past) saturates instead of overflowing.
      const auto ahead = std::clamp<CooldownRecord::WallTime::duration>(until - wall, -kMaxServerWait, kMaxServerWait);
      return cooldown_end(now, std::chrono::duration_cast<duration>(ahead));
    };
    if (entry.cooldown_until) {
      s.health.cooldown_until = std::max(s.health.cooldown_until, to_local(*entry.cooldown_until));
    }
    for (const auto& [destination, until] : entry.scoped) cool_scoped_locked(s, destination, to_local(until));
    if (entry.disabled) {
      s.credential.enabled = false;
      s.disabled_reason = entry.disabled_reason;
    }
    refresh_locked(slot, now);
  }

  // Sinks do I/O: always called outside the pool's lock, under a shared lock
  // that stop_persisting() waits for.
  template <class Write>
  void persist(Write&& write) {
    std::shared_lock sink_lock(sink_mutex_);
    if (sink_) write(*sink_);
  }
  CooldownRecord::WallTime to_wall(time_point t) const {
    return clock_.wall_now() + std::chrono::duration_cast<CooldownRecord::WallTime::duration>(t - clock_.now());
  }
  static duration bounded(duration wait) {
    return std::min(wait, std::chrono::duration_cast<duration>(kMaxServerWait));
  }
  // When a wait of `wait` that starts at the reading `now` is over for sure:
  // a clock that lags true time (CoarseClock) adds its lag bound, so that the
  // wait cannot end early by the clock's resolution.
  time_point cooldown_end(time_point now, duration wait) const {
    return now + bounded(wait) + clock_lag_bound(clock_);
  }

  AcquireResult acquire_impl(std::string_view destination) {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    promote_expired_locked(now);

    std::optional<SlotId> chosen;
    if (destination.empty()) {
      chosen = strategy_.pick(AcceptAll{});
    } else {
      chosen = strategy_.pick([&](SlotId slot) { return !scoped_cooling_locked(*slots_[slot], destination, now); });
    }
    if (!chosen) return unavailable_locked(destination, now);
    return lease_locked(*chosen, now, destination);
  }

  AcquireResult acquire_id_impl(std::string_view id, std::string_view destination) {
    std::lock_guard lock(mutex_);
    const auto it = by_id_.find(id);
    if (it == by_id_.end()) return AcquireResult(errc::unknown_credential, std::nullopt);
    const SlotId slot = it->second;
    Slot& s = *slots_[slot];
    if (!s.credential.enabled) return AcquireResult(errc::all_credentials_disabled, std::nullopt);

    const auto now = clock_.now();
    promote_expired_locked(now);  // a cooldown that has just ended puts it back in the strategy
    std::optional<time_point> until;  // when it is usable for this call, if not now
    bool only_paced = false;          // and whether only a limiter pause holds it
    if (s.health.cooldown_until > now) {
      until = s.health.cooldown_until;
      only_paced = s.hold == Hold::pacing;
    }
    if (!destination.empty()) {
      if (const auto scoped = scoped_until_locked(s, destination, now)) {
        until = until ? std::max(*until, *scoped) : *scoped;
        only_paced = false;  // a flood wait for this destination
      }
    }
    if (until) {
      const auto why = only_paced ? errc::rate_limited : errc::all_credentials_cooling;
      return AcquireResult(why, std::pair{*until, now});
    }
    return lease_locked(slot, now, destination);
  }

  // Counts a usable slot as acquired and hands out its lease.
  AcquireResult lease_locked(SlotId slot, time_point now, std::string_view destination) {
    Slot& s = *slots_[slot];
    ++s.health.requests;
    ++s.health.in_flight;
    s.health.last_used = now;
    s.last_acquired = ++acquires_;
    // The score is not recomputed here: the report that ends this lease does
    // it (a division and a decay saved on every acquire).
    strategy_.update(slot, candidate_with_score(s));
    rescore_one_locked(now);
    return AcquireResult(LeaseKey{}, this, slot, &s, now, destination);
  }

  bool scoped_cooling_locked(Slot& s, std::string_view destination, time_point now) {
    return scoped_until_locked(s, destination, now).has_value();
  }

  // When `s` stops cooling for `destination`, if it still is; forgets an expired entry.
  std::optional<time_point> scoped_until_locked(Slot& s, std::string_view destination, time_point now) {
    if (s.scoped.empty()) return std::nullopt;
    auto it = s.scoped.find(destination);
    if (it == s.scoped.end()) return std::nullopt;
    if (it->second > now) return it->second;
    s.scoped.erase(it);
    return std::nullopt;
  }

  AcquireResult unavailable_locked(std::string_view destination, time_point now) const {
    if (by_id_.empty()) return AcquireResult(errc::no_credentials, std::nullopt);
    std::optional<time_point> earliest;
    if (!cooling_.empty()) earliest = time_point(duration(cooling_.key(cooling_.top())));
    if (!destination.empty()) {
      // Rare path: usable credentials exist but all cool for this destination.
      for (const auto& [id, slot] : by_id_) {
        const Slot& s = *slots_[slot];
        if (!s.credential.enabled || cooling_.contains(slot)) continue;
        if (auto it = s.scoped.find(destination); it != s.scoped.end() && it->second > now) {
          earliest = earliest ? std::min(*earliest, it->second) : it->second;
        }
      }
    }
    if (!earliest) return AcquireResult(errc::all_credentials_disabled, std::nullopt);
    return AcquireResult(errc::all_credentials_cooling, std::pair{*earliest, now});
  }

  // ---- reports (called by Lease) ----------------------------------------

  // What the caller reported; abandoned and deferred leases report no outcome.
  enum class Ending : std::uint8_t { reported, abandoned, deferred };

  // `at` is the report's time when the lease already knows it; otherwise
  // the clock is read here.
  void report(const Lease& lease, Ending ending, const Outcome<>* outcome, duration value,
              std::optional<time_point> at = std::nullopt) {
    // What must be persisted, copied under the lock: once it is released a
    // concurrent remove() may free the slot (and its id) at any moment.
    std::string id;
    std::optional<time_point> cooled_until;
    bool scoped = false;
    std::string disabled_reason;
    {
      std::lock_guard lock(mutex_);
      const auto now = at ? *at : clock_.now();
      Slot& s = *lease.slot_;
      Health<time_point>& h = s.health;
      --h.in_flight;
      if (ending == Ending::abandoned) {
        ++h.abandoned;
      } else if (ending == Ending::deferred) {  // handed back unused: as if never acquired, then paused
        --h.requests;
        // Not padded by the clock's lag: a pause that ends a little early only
        // means the limiter is asked again, while padding would slow every paced
        // credential by up to a tick per request.
        if (!s.removed && value > duration::zero()) cool_locked(lease.slot_id_, s, now + value, Hold::pacing);
      } else if (outcome->kind() == OutcomeKind::success) {
        record_success_locked(h, value, now);
      } else {
        const OutcomeTraits traits = outcome->traits();
        if (traits.counts_as_failure) {
          ++h.failures;
          h.success_streak = 0;
          h.record_outcome(false, now);
        } else if (!traits.cools) {
          ++h.bad_requests;  // rejected: says nothing about the credential
        }
        if (traits.cools) {
          ++h.flood_waits;
          h.record_outcome(false, now);
          if (!s.removed) {
            const auto until = cooldown_end(now, std::chrono::duration_cast<duration>(outcome->wait()));
            scoped = outcome->scope() == CooldownScope::destination && !lease.destination_.empty();
            cooled_until = scoped ? cool_scoped_locked(s, lease.destination_, until)
                                  : cool_locked(lease.slot_id_, s, until, Hold::flood_wait);
          }
        } else if (traits.disables) {
          if (!s.removed) {
            disabled_reason = outcome->description().empty() ? "authentication failed" : outcome->description();
            disable_locked(lease.slot_id_, s, disabled_reason);
          }
        } else if (traits.counts_as_failure) {
          eject_if_failing_locked(lease.slot_id_, s, now);
        }
      }
      if (s.removed) {
        release_if_unused_locked(lease.slot_id_);
        return;  // the slot may be gone now; nothing to persist for a removed credential
      }
      strategy_.update(lease.slot_id_, candidate_of(s, now));
      if (cooled_until || !disabled_reason.empty()) id = s.credential.id;
    }
    if (cooled_until) {
      persist([&](CooldownSink& sink) {
        scoped ? sink.set_scoped_cooldown(id, lease.destination_, to_wall(*cooled_until))
               : sink.set_cooldown(id, to_wall(*cooled_until));
      });
    }
    if (!disabled_reason.empty()) persist([&](CooldownSink& sink) { sink.set_disabled(id, disabled_reason); });
  }

  void record_success_locked(Health<time_point>& h, duration latency, time_point now) {
    ++h.successes;
    h.consecutive_failures = 0;
    h.record_outcome(true, now);
    h.last_success = now;
    const double us = std::chrono::duration<double, std::micro>(latency).count();
    h.latency_ewma_us = h.successes == 1 ? us : h.latency_ewma_us + options_.latency_smoothing * (us - h.latency_ewma_us);
    if (++h.success_streak >= options_.ejection.successes_to_forgive && h.ejections > 0) {
      --h.ejections;
      h.success_streak = 0;
    }
  }

  // Envoy-style outlier ejection: after too many failures in a row the
  // credential rests, each ejection longer than the last.
  void eject_if_failing_locked(SlotId slot, Slot& s, time_point now) {
    Health<time_point>& h = s.health;
    ++h.consecutive_failures;
    if (options_.ejection.consecutive_failures == 0 || h.consecutive_failures < options_.ejection.consecutive_failures ||
        s.removed) {
      return;
    }
    ++h.ejections;
    h.consecutive_failures = 0;
    const auto rest = std::min(options_.ejection.base_rest * h.ejections, options_.ejection.max_rest);
    cool_locked(slot, s, cooldown_end(now, std::chrono::duration_cast<duration>(rest)), Hold::ejection);
  }

  void release_if_unused_locked(SlotId slot) {
    if (slots_[slot]->removed && slots_[slot]->health.in_flight == 0) {
      slots_[slot].reset();
      free_.push_back(slot);
    }
  }

  HealthSnapshot snapshot_of(const Slot& s, time_point now, HealthSnapshot::WallTime wall) const {
    const auto& h = s.health;
    auto to_wall = [&](time_point t) -> std::optional<HealthSnapshot::WallTime> {
      if (t == time_point{}) return std::nullopt;
      return wall + std::chrono::duration_cast<HealthSnapshot::WallTime::duration>(t - now);
    };
    HealthSnapshot out;
    out.id = s.credential.id;
    out.weight = s.credential.weight;
    out.requests = h.requests;
    out.successes = h.successes;
    out.failures = h.failures;
    out.bad_requests = h.bad_requests;
    out.flood_waits = h.flood_waits;
    out.abandoned = h.abandoned;
    out.consecutive_failures = h.consecutive_failures;
    out.in_flight = h.in_flight;
    out.ejections = h.ejections;
    out.smoothed_success_rate = h.smoothed_success_rate(now);
    out.latency_ewma = std::chrono::microseconds(static_cast<std::int64_t>(h.latency_ewma_us));
    out.last_used = to_wall(h.last_used);
    out.last_success = to_wall(h.last_success);
    out.scoped_cooldowns = static_cast<std::size_t>(
        std::count_if(s.scoped.begin(), s.scoped.end(), [&](const auto& kv) { return kv.second > now; }));
    if (!s.credential.enabled) {
      out.state = CredentialState::disabled;
      out.disabled_reason = s.disabled_reason;
    } else if (h.cooldown_until > now) {
      switch (s.hold) {
        case Hold::flood_wait: out.state = CredentialState::cooling; break;
        case Hold::ejection: out.state = CredentialState::ejected; break;
        case Hold::pacing: break;  // healthy, merely waiting for a local limiter's next token
      }
    }
    if (h.cooldown_until > now) {
      out.cooldown_until = to_wall(h.cooldown_until);
      out.cooldown_remaining = std::chrono::duration_cast<std::chrono::nanoseconds>(h.cooldown_until - now);
    }
    return out;
  }

  PoolOptions options_;
  ClockT clock_;
  mutable std::mutex mutex_;
  StrategyT strategy_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<SlotId> free_;
  std::unordered_map<std::string, SlotId, detail::TransparentStringHash, std::equal_to<>> by_id_;
  detail::IndexedHeap<typename duration::rep, TickBefore> cooling_;  // slot -> cooldown end, in ticks
  std::uint64_t acquires_ = 0;
  std::size_t rescore_cursor_ = 0;
  mutable std::shared_mutex sink_mutex_;  // guards sink_ and every call into it
  CooldownSink* sink_ = nullptr;

 public:
  /// The right to use one credential for one call. Report exactly one
  /// outcome; a lease destroyed without a report counts as abandoned (never
  /// as a success). Movable, not copyable.
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          slot_id_(other.slot_id_),
          slot_(other.slot_),
          acquired_at_(other.acquired_at_),
          destination_(std::move(other.destination_)) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        abandon();
        pool_ = std::exchange(other.pool_, nullptr);
        slot_id_ = other.slot_id_;
        slot_ = other.slot_;
        acquired_at_ = other.acquired_at_;
        destination_ = std::move(other.destination_);
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { abandon(); }

    const std::string& id() const noexcept { return slot_->credential.id; }
    const Payload& payload() const noexcept { return slot_->credential.payload; }
    /// The destination given to `acquire`, empty if none.
    const std::string& destination() const noexcept { return destination_; }
    time_point acquired_at() const noexcept { return acquired_at_; }
    /// True until an outcome is reported.
    bool active() const noexcept { return pool_ != nullptr; }

    /// Tells the pool how the call ended (core/outcome.hpp): the one way to
    /// report. Latency (for successes) defaults to the time since acquire.
    /// A success with a given latency is recorded as of `acquired_at() +
    /// latency` (when the answer came) without reading the clock; every other
    /// report reads it once. Only the first report counts; later ones are ignored.
    void report(const Outcome<>& outcome) {
      if (!pool_) return;
      const time_point now = pool_->clock_.now();
      finish(Ending::reported, &outcome, now - acquired_at_, now);
    }
    void report(const Outcome<>& outcome, duration latency) {
      std::optional<time_point> answered;
      if (outcome.kind() == OutcomeKind::success) answered = acquired_at_ + std::max(latency, duration::zero());
      finish(Ending::reported, &outcome, latency, answered);
    }

    /// Shorthands for the two commonest reports.
    void success() { report(Outcome<>::success()); }
    void success(duration latency) { report(Outcome<>::success(), latency); }
    /// The service said to wait `wait` (FLOOD_WAIT_X, 429 retry_after). The
    /// credential is not handed out again before then (for this lease's
    /// destination only, with CooldownScope::destination).
    template <class Rep, class Period>
    void flood_wait(std::chrono::duration<Rep, Period> wait, CooldownScope scope = CooldownScope::credential) {
      report(Outcome<>::flood_wait(wait, scope));
    }

    /// Hands the lease back unused (it counts as no request) and keeps the
    /// credential out of rotation for `pause`: for a local limiter that says
    /// "not yet" (its bucket is empty). Not a flood wait: not counted as one,
    /// not persisted.
    void defer(duration pause) { finish(Ending::deferred, nullptr, pause); }

    /// Made by the pool only (a LeaseKey is private to it).
    Lease(LeaseKey, CredentialPool* pool, SlotId slot_id, Slot* slot, time_point acquired_at,
          std::string_view destination)
        : pool_(pool),
          slot_id_(slot_id),
          slot_(slot),
          acquired_at_(acquired_at),
          // Most acquires name no destination: no string construction for them.
          destination_(destination.empty() ? std::string() : std::string(destination)) {}

   private:
    friend class CredentialPool;

    void finish(Ending ending, const Outcome<>* outcome, duration value,
                std::optional<time_point> at = std::nullopt) {
      if (!pool_) return;  // already reported: later reports are ignored
      auto* pool = std::exchange(pool_, nullptr);
      pool->report(*this, ending, outcome, value, at);
    }
    void abandon() noexcept {
      if (!pool_) return;
      auto* pool = std::exchange(pool_, nullptr);
      try {
        pool->report(*this, Ending::abandoned, nullptr, {});
      } catch (...) {  // an abandonment allocates nothing; this cannot throw in practice
      }
    }

    CredentialPool* pool_;
    SlotId slot_id_;
    Slot* slot_;
    time_point acquired_at_;
    std::string destination_;
  };

  /// A lease, or the reason there is none (and, for all_credentials_cooling,
  /// when the earliest credential is usable again).
  class AcquireResult {
   public:
    explicit operator bool() const noexcept { return lease_.has_value(); }
    Lease& operator*() noexcept { return *lease_; }
    Lease* operator->() noexcept { return &*lease_; }
    /// Moves the lease out; only valid when the result holds one.
    Lease take() && { return std::move(*lease_); }

    std::error_code error() const noexcept { return lease_ ? std::error_code() : make_error_code(error_); }
    /// When the earliest credential becomes usable (all_credentials_cooling,
    /// and rate_limited from `acquire_id`).
    std::optional<time_point> earliest() const noexcept { return earliest_; }
    /// How long from the attempt until then: 0 when not cooling.
    duration retry_after() const noexcept { return earliest_ ? *earliest_ - attempted_at_ : duration{}; }

   private:
    friend class CredentialPool;
    // The lease is built in place: a lease is never moved on the way out of acquire.
    template <class... LeaseArgs>
    explicit AcquireResult(LeaseKey key, LeaseArgs&&... args) {
      lease_.emplace(key, std::forward<LeaseArgs>(args)...);
    }
    AcquireResult(errc error, std::optional<std::pair<time_point, time_point>> earliest_and_now)
        : error_(error) {
      if (earliest_and_now) {
        earliest_ = earliest_and_now->first;
        attempted_at_ = earliest_and_now->second;
      }
    }
    std::optional<Lease> lease_;
    errc error_{};  // not a std::error_code: building one costs a call on every acquire
    std::optional<time_point> earliest_;
    time_point attempted_at_{};
  };
};

}  // namespace floodgate
