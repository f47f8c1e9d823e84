// floodgate/core/strategy.hpp: how the pool chooses among usable credentials.
//
// A strategy that ignores `Candidate::score` declares
// `static constexpr bool uses_score = false;` and the pool skips computing it.
//
// A strategy sees only credentials that are usable right now: the pool
// `insert`s a credential when it becomes usable (added, enabled, cooldown
// over) and `erase`s it when it stops being usable (cooling, ejected,
// disabled, removed). After every acquire and every report the pool calls
// `update` with the credential's fresh `Candidate` figures. `pick(accept)`
// returns the preferred usable credential for which `accept(id)` is true
// (the pool rejects credentials cooling for the request's destination).
//
// The built-in strategies keep an index, so an acquire is O(log n) or O(1)
// whatever the pool's size:
//
//   BestHealth   highest smoothed success rate, ties to the least recently used
//   RoundRobin   each usable credential in turn
//   Weighted     smooth weighted round-robin, proportional to `weight`
//   LeastLoaded  the less busy of two random choices ("power of two choices")
//   Tiered<S>    fallback tiers: S among the lowest tier that has a usable credential
//
// A strategy of your own is a few lines on top of `ScanStrategy`, which keeps
// the list of usable credentials for you and asks only for a choice:
//
//   struct MostIdle : floodgate::ScanStrategy<MostIdle> {
//     std::size_t choose(std::span<const floodgate::ScanEntry> usable) {
//       return std::min_element(usable.begin(), usable.end(), [](auto& a, auto& b) {
//                return a.candidate.last_acquired < b.candidate.last_acquired;
//              }) - usable.begin();
//     }
//   };
#pragma once

#include "floodgate/core/detail/tournament_tree.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace floodgate {

/// A credential's index inside one pool. Dense and reused after removal.
using SlotId = std::uint32_t;

/// What a strategy may base its choice on.
struct Candidate {
  double score = 0;             ///< smoothed success rate in [0, 1]
  std::uint64_t last_acquired = 0;  ///< the pool's acquire counter at its last acquire; 0 = never
  std::uint32_t in_flight = 0;  ///< leases out now
  std::uint32_t weight = 1;     ///< the credential's configured weight (≥ 1)
  std::uint32_t tier = 0;       ///< the credential's fallback tier (`Tiered`)
};

/// The predicate type the pool passes to `pick` when every credential is acceptable.
struct AcceptAll {
  constexpr bool operator()(SlotId) const noexcept { return true; }
};

template <class S>
concept Strategy = requires(S s, SlotId id, const Candidate& c) {
  s.insert(id, c);
  s.erase(id);
  s.update(id, c);
  { s.pick(AcceptAll{}) } -> std::same_as<std::optional<SlotId>>;
};

/// Highest smoothed success rate first; among equals, the least recently used.
/// Scores are compared in steps of 0.1 % so that noise in the fourth digit does
/// not pin all traffic to one credential: equals share the load in LRU order.
///
/// Index: one list per score step (1,001 of them), each in LRU order, and a
/// two-level bitmap of the steps that have any credential. A pick is the head
/// of the highest such step (two bit scans); an acquire moves the credential
/// to the tail of its list, because the pool's acquire counter makes it the
/// most recently used of all. A credential whose step changes is placed by a
/// walk from its new list's tail, which stops at once for one acquired lately
/// (the pool's case: a score changes on a report or re-scoring shortly after
/// an acquire); only a credential left idle while many of its new equals were
/// acquired walks further.
class BestHealth {
 public:
  static constexpr bool uses_score = true;

  void insert(SlotId id, const Candidate& c) {
    if (id >= nodes_.size()) nodes_.resize(id + 1);
    place(id, key_of(c));
  }
  void erase(SlotId id) {
    if (!contains(id)) return;
    unlink(id);
    nodes_[id].present = false;
    --size_;
  }
  void update(SlotId id, const Candidate& c) {
    if (!contains(id)) return;
    place(id, key_of(c));
  }

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) const {
    if (size_ == 0) return std::nullopt;
    const int top = highest_step();
    if (accept(head_[top])) return head_[top];
    // Rare path (the best one is cooling for this destination): walk the
    // lists in order; the first accepted is the best accepted.
    for (int step = top; step >= 0; --step) {
      for (SlotId id = head_[step]; id != none; id = nodes_[id].next) {
        if (accept(id)) return id;
      }
    }
    return std::nullopt;
  }

 private:
  static constexpr SlotId none = std::numeric_limits<SlotId>::max();
  static constexpr int kSteps = 1001;  // score permille 0..1000
  static constexpr int kWords = (kSteps + 63) / 64;

  struct Key {
    std::int32_t step = 0;  // the score in permille
    std::uint64_t last_acquired = 0;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Node {
    Key key;
    SlotId prev = none, next = none;
    bool present = false;
  };

  static Key key_of(const Candidate& c) {
    // Scores are in [0, 1]: adding one half and truncating rounds to nearest.
    const auto step = static_cast<std::int32_t>(c.score * 1000.0 + 0.5);  // NOLINT(bugprone-incorrect-roundings): never negative
    return {std::clamp(step, 0, kSteps - 1), c.last_acquired};
  }
  // Within a step: least recently acquired first, then the lower id.
  bool before(SlotId a, const Key& ka, SlotId b) const noexcept {
    const Key& kb = nodes_[b].key;
    return ka.last_acquired != kb.last_acquired ? ka.last_acquired < kb.last_acquired : a < b;
  }

  bool contains(SlotId id) const noexcept { return id < nodes_.size() && nodes_[id].present; }

  int highest_step() const noexcept {
    const int word = std::bit_width(summary_) - 1;
    return word * 64 + std::bit_width(nonempty_[word]) - 1;  // NOLINT(bugprone-implicit-widening-of-multiplication-result): word < kWords, the product is small
  }

  // Puts `id` (present or not) at its place for `key`; a key whose order
  // cannot have changed leaves it where it is.
  void place(SlotId id, const Key& key) {
    Node& node = nodes_[id];
    if (node.present) {
      if (node.key == key) return;
      unlink(id);
    } else {
      node.present = true;
      ++size_;
    }
    node.key = key;
    SlotId after = tail_[key.step];
    while (after != none && before(id, key, after)) after = nodes_[after].prev;
    link_after(id, key.step, after);
  }

  void link_after(SlotId id, int step, SlotId after) {
    Node& node = nodes_[id];
    node.prev = after;
    node.next = after == none ? head_[step] : nodes_[after].next;
    (node.prev == none ? head_[step] : nodes_[node.prev].next) = id;
    (node.next == none ? tail_[step] : nodes_[node.next].prev) = id;
    nonempty_[step / 64] |= std::uint64_t{1} << (step % 64);
    summary_ |= 1U << (step / 64);
  }

  void unlink(SlotId id) {
    const Node& node = nodes_[id];
    const int step = node.key.step;
    (node.prev == none ? head_[step] : nodes_[node.prev].next) = node.next;
    (node.next == none ? tail_[step] : nodes_[node.next].prev) = node.prev;
    if (head_[step] == none) {
      nonempty_[step / 64] &= ~(std::uint64_t{1} << (step % 64));
      if (nonempty_[step / 64] == 0) summary_ &= ~(1U << (step / 64));
    }
  }

  std::vector<Node> nodes_;  // by slot
  std::array<SlotId, kSteps> head_ = filled(), tail_ = filled();
  std::array<std::uint64_t, kWords> nonempty_{};  // steps with a credential
  std::uint32_t summary_ = 0;                      // words of nonempty_ that are not zero
  std::size_t size_ = 0;

  static constexpr std::array<SlotId, kSteps> filled() {
    std::array<SlotId, kSteps> all{};
    all.fill(none);
    return all;
  }
};

/// Every usable credential in turn. A credential that comes back from a
/// cooldown joins at the end of the current round.
class RoundRobin {
 public:
  static constexpr bool uses_score = false;  // the pool may skip computing Candidate::score

  void insert(SlotId id, const Candidate&) {
    if (id >= next_.size()) {
      next_.resize(id + 1, none);
      prev_.resize(id + 1, none);
    }
    if (next_[id] != none) return;
    if (cursor_ == none) {
      next_[id] = prev_[id] = cursor_ = id;
    } else {  // link in just before the cursor: served last in this round
      const SlotId before = prev_[cursor_];
      next_[before] = id;
      prev_[id] = before;
      next_[id] = cursor_;
      prev_[cursor_] = id;
    }
    ++size_;
  }

  void erase(SlotId id) {
    if (id >= next_.size() || next_[id] == none) return;
    if (--size_ == 0) {
      cursor_ = none;
    } else {
      next_[prev_[id]] = next_[id];
      prev_[next_[id]] = prev_[id];
      if (cursor_ == id) cursor_ = next_[id];
    }
    next_[id] = prev_[id] = none;
  }

  void update(SlotId, const Candidate&) noexcept {}

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) {
    SlotId at = cursor_;
    for (std::size_t step = 0; step < size_; ++step, at = next_[at]) {
      if (accept(at)) {
        cursor_ = next_[at];
        return at;
      }
    }
    return std::nullopt;
  }

 private:
  static constexpr SlotId none = std::numeric_limits<SlotId>::max();
  std::vector<SlotId> next_, prev_;  // a ring through the usable slots
  SlotId cursor_ = none;             // the next one to serve
  std::size_t size_ = 0;
};

/// Smooth weighted round-robin: over any run of W = Σ weights picks each
/// credential is chosen exactly `weight` times, spread evenly rather than in
/// bursts. Implemented as stride scheduling (each pick advances the chosen
/// credential's "pass" by 1/weight; the lowest pass goes next), which yields
/// the same proportions and smoothness as nginx's algorithm but costs
/// O(log n) per pick instead of nginx's O(n) scan. Weights may change at any
/// time; the change applies from the credential's next turn.
class Weighted {
 public:
  static constexpr bool uses_score = false;  // the pool may skip computing Candidate::score

  void insert(SlotId id, const Candidate& c) {
    // Joins at the current virtual time, half a stride in, like a fresh start.
    tree_.set(id, {now_ + 0.5 / weight_of(c), weight_of(c), id});
  }
  void erase(SlotId id) { tree_.erase(id); }
  void update(SlotId id, const Candidate& c) {
    if (!tree_.contains(id)) return;
    Key key = tree_.key(id);
    if (key.weight == weight_of(c)) return;
    // Rescale what is left of the current turn to the new weight.
    const double left = std::max(0.0, key.pass - now_);
    key.pass = now_ + left * key.weight / weight_of(c);
    key.weight = weight_of(c);
    tree_.set(id, key);
  }

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) {
    if (tree_.empty()) return std::nullopt;
    std::optional<SlotId> chosen;
    if (accept(tree_.top())) {
      chosen = tree_.top();
    } else {  // rare path: the first in line is cooling for this destination
      const Key* best = nullptr;
      tree_.for_each([&](SlotId id, const Key& key) {
        if ((best == nullptr || Before{}(key, *best)) && accept(id)) {
          chosen = id;
          best = &key;
        }
      });
      if (!chosen) return std::nullopt;
    }
    Key key = tree_.key(*chosen);
    now_ = std::max(now_, key.pass);
    key.pass += 1.0 / key.weight;
    tree_.set(*chosen, key);
    return chosen;
  }

 private:
  struct Key {
    double pass;
    std::uint32_t weight;
    SlotId id;
  };
  struct Before {
    bool operator()(const Key& a, const Key& b) const noexcept {
      if (a.pass != b.pass) return a.pass < b.pass;
      return a.id < b.id;
    }
  };
  static std::uint32_t weight_of(const Candidate& c) { return c.weight == 0 ? 1 : c.weight; }

  detail::TournamentTree<Key, Before> tree_;
  double now_ = 0;  // virtual time: the pass of the latest pick
};

/// The less loaded (fewer leases in flight) of two usable credentials drawn at
/// random: near-optimal balance at O(1), and no herd on a single "best" one.
class LeastLoaded {
 public:
  static constexpr bool uses_score = false;  // the pool may skip computing Candidate::score

  explicit LeastLoaded(std::uint64_t seed = 0x9E3779B97F4A7C15ull) : rng_(seed | 1) {}

  void insert(SlotId id, const Candidate& c) {
    if (id >= pos_.size()) {
      pos_.resize(id + 1, none);
      in_flight_.resize(id + 1, 0);
    }
    in_flight_[id] = c.in_flight;
    if (pos_[id] != none) return;
    pos_[id] = static_cast<SlotId>(members_.size());
    members_.push_back(id);
  }
  void erase(SlotId id) {
    if (id >= pos_.size() || pos_[id] == none) return;
    const SlotId moved = members_.back();
    members_[pos_[id]] = moved;
    pos_[moved] = pos_[id];
    members_.pop_back();
    pos_[id] = none;
  }
  void update(SlotId id, const Candidate& c) {
    if (id < in_flight_.size()) in_flight_[id] = c.in_flight;
  }

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) {
    const std::size_t n = members_.size();
    if (n == 0) return std::nullopt;
    const std::size_t i = next_random() % n;
    std::size_t j = i;
    if (n > 1) {  // a second, distinct draw
      j = next_random() % (n - 1);
      if (j >= i) ++j;
    }
    const SlotId a = members_[i], b = members_[j];
    const bool ok_a = accept(a), ok_b = accept(b);
    if (ok_a && ok_b) return in_flight_[b] < in_flight_[a] ? b : a;
    if (ok_a) return a;
    if (ok_b) return b;
    std::optional<SlotId> best;  // rare path: both draws cooling for this destination
    for (SlotId id : members_) {
      if (accept(id) && (!best || in_flight_[id] < in_flight_[*best])) best = id;
    }
    return best;
  }

 private:
  static constexpr SlotId none = std::numeric_limits<SlotId>::max();
  std::uint64_t next_random() noexcept {  // xorshift64*: fast, good enough to spread load
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1Dull;
  }

  std::vector<SlotId> members_;  // the usable slots, dense
  std::vector<SlotId> pos_;      // slot -> index in members_
  std::vector<std::uint32_t> in_flight_;
  std::uint64_t rng_;
};

/// Fallback tiers: the usable credentials of the lowest `Candidate::tier`
/// are chosen among by `Inner` (weighted, round robin, ...); a higher tier is
/// used only while no credential of a lower one is usable (cooling, ejected,
/// disabled, or cooling for the request's destination). Credentials return
/// to their tier's rotation when their cooldown ends, so traffic falls back
/// and comes back by itself. O(tiers × Inner's cost) per pick.
///
///   CredentialPool<ApiKey, Tiered<Weighted>> pool;   // primary keys tier 0, backups tier 1
template <Strategy Inner = RoundRobin>
class Tiered {
 public:
  static constexpr bool uses_score = [] {
    if constexpr (requires { Inner::uses_score; }) return Inner::uses_score;
    return true;
  }();

  void insert(SlotId id, const Candidate& c) {
    if (id >= tier_of_.size()) tier_of_.resize(id + 1, kAbsent);
    if (tier_of_[id] != kAbsent && tier_of_[id] != c.tier) erase(id);
    tier_of_[id] = c.tier;
    tier(c.tier).insert(id, c);
  }
  void erase(SlotId id) {
    if (id >= tier_of_.size() || tier_of_[id] == kAbsent) return;
    tier(tier_of_[id]).erase(id);
    tier_of_[id] = kAbsent;
  }
  void update(SlotId id, const Candidate& c) {
    if (id >= tier_of_.size() || tier_of_[id] == kAbsent) return;
    if (tier_of_[id] != c.tier) return insert(id, c);
    tier(c.tier).update(id, c);
  }

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) {
    for (auto& [level, inner] : tiers_) {  // ascending tier
      if (auto chosen = inner.pick(accept)) return chosen;
    }
    return std::nullopt;
  }

 private:
  static constexpr std::uint32_t kAbsent = std::numeric_limits<std::uint32_t>::max();

  Inner& tier(std::uint32_t level) {
    const auto it = std::lower_bound(tiers_.begin(), tiers_.end(), level,
                                     [](const auto& entry, std::uint32_t l) { return entry.first < l; });
    if (it != tiers_.end() && it->first == level) return it->second;
    return tiers_.insert(it, {level, Inner{}})->second;
  }

  std::vector<std::pair<std::uint32_t, Inner>> tiers_;  // sorted by tier; few entries
  std::vector<std::uint32_t> tier_of_;                  // slot -> its tier, kAbsent when not usable
};

/// One usable credential as `ScanStrategy::choose` sees it.
struct ScanEntry {
  SlotId id;
  Candidate candidate;
};

/// Base for hand-written strategies: keeps the usable credentials in a vector
/// and calls `Derived::choose(std::span<const ScanEntry>)`, which returns the
/// index of its choice. O(n) per acquire, which is fine for a few dozen
/// credentials.
template <class Derived>
class ScanStrategy {
 public:
  void insert(SlotId id, const Candidate& c) {
    if (find(id) == entries_.end()) entries_.push_back({id, c});
  }
  void erase(SlotId id) {
    if (auto it = find(id); it != entries_.end()) entries_.erase(it);
  }
  void update(SlotId id, const Candidate& c) {
    if (auto it = find(id); it != entries_.end()) it->candidate = c;
  }

  template <class Accept>
  std::optional<SlotId> pick(Accept&& accept) {
    auto& self = static_cast<Derived&>(*this);
    std::vector<ScanEntry> accepted;
    accepted.reserve(entries_.size());
    for (const auto& e : entries_) {
      if (accept(e.id)) accepted.push_back(e);
    }
    if (accepted.empty()) return std::nullopt;
    const std::size_t index = self.choose(std::span<const ScanEntry>(accepted));
    return index < accepted.size() ? std::optional<SlotId>(accepted[index].id) : std::nullopt;
  }

 private:
  auto find(SlotId id) {
    return std::find_if(entries_.begin(), entries_.end(), [id](const ScanEntry& e) { return e.id == id; });
  }
  std::vector<ScanEntry> entries_;
};

static_assert(Strategy<BestHealth>);
static_assert(Strategy<RoundRobin>);
static_assert(Strategy<Weighted>);
static_assert(Strategy<LeastLoaded>);
static_assert(Strategy<Tiered<Weighted>>);

}  // namespace floodgate
