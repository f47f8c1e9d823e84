// floodgate/core/detail/tournament_tree.hpp: the best of a set of small
// integer ids whose keys change in place, for a strategy that changes its
// best entry's key on every pick.
//
// A complete binary tree with one leaf per id; each inner node holds the id
// that wins the match between its two children. Changing a key replays the
// matches on its leaf's path to the root: always log2(capacity) of them, with
// no early exit and a winner chosen without a branch on the comparison, so
// the processor predicts every branch. A binary heap does the same work in
// fewer comparisons, but where the moved entry stops is data-dependent, and
// its mispredicted branches cost Weighted (whose pick moves its top on every
// call) about half its time at 16 credentials. Ids are dense slot numbers;
// capacity doubles as they grow.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace floodgate::detail {

/// `Before(a, b)` is true when key a must be served before key b (a strict
/// weak order; of keys it does not order, any may be served first).
template <class Key, class Before>
class TournamentTree {
 public:
  using Id = std::uint32_t;

  explicit TournamentTree(Before before = {}) : before_(std::move(before)) {}

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  bool contains(Id id) const noexcept { return id < capacity() && leaf(id) == id; }
  /// The best id; the tree must not be empty.
  Id top() const noexcept { return winner_[1]; }
  /// The key of `id`, which must be present.
  const Key& key(Id id) const noexcept { return keys_[id]; }

  /// Calls `visit(id, key)` for every entry, in id order: for the rare full
  /// scans. `visit` must not change the tree.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (Id id = 0; id < capacity(); ++id) {
      if (leaf(id) == id) visit(id, keys_[id]);
    }
  }

  /// Inserts `id`, or changes its key if it is present.
  void set(Id id, Key key) {
    if (id >= capacity()) grow(id);
    size_ += leaf(id) == id ? 0 : 1;
    leaf(id) = id;
    keys_[id] = std::move(key);
    replay(id);
  }

  void erase(Id id) noexcept {
    if (!contains(id)) return;
    leaf(id) = absent();
    --size_;
    replay(id);
  }

 private:
  // An empty leaf holds the id `capacity()`, which loses every match; its key
  // (one spare element at the end of keys_) is read but never decides.
  std::size_t capacity() const noexcept { return winner_.size() / 2; }
  Id absent() const noexcept { return static_cast<Id>(capacity()); }
  Id& leaf(Id id) noexcept { return winner_[capacity() + id]; }
  Id leaf(Id id) const noexcept { return winner_[capacity() + id]; }

  // The winner of a match. Bitwise operators, not && and ||, so that the
  // choice compiles to a conditional move.
  Id winner(Id a, Id b) const noexcept {
    const Id none = absent();
    const bool b_wins = (b != none) & ((a == none) | before_(keys_[b], keys_[a]));
    return b_wins ? b : a;
  }

  void replay(Id id) noexcept {
    for (std::size_t node = (capacity() + id) / 2; node >= 1; node /= 2) {
      winner_[node] = winner(winner_[2 * node], winner_[2 * node + 1]);
    }
  }

  // Doubles the capacity until `id` fits, and plays every match again.
  void grow(Id id) {
    const std::size_t old_capacity = capacity();
    std::size_t capacity = old_capacity == 0 ? 1 : old_capacity;
    while (capacity <= id) capacity *= 2;
    std::vector<Id> winner(2 * capacity, static_cast<Id>(capacity));
    for (std::size_t leaf = 0; leaf < old_capacity; ++leaf) {
      if (winner_[old_capacity + leaf] == leaf) winner[capacity + leaf] = static_cast<Id>(leaf);
    }
    winner_ = std::move(winner);
    keys_.resize(capacity + 1);  // + the spare key of the empty leaves
    for (std::size_t node = capacity - 1; node >= 1; --node) {
      winner_[node] = this->winner(winner_[2 * node], winner_[2 * node + 1]);
    }
  }

  Before before_;
  std::vector<Key> keys_;   // by id (the leaves' keys), and one spare for the empty leaves
  std::vector<Id> winner_;  // node -> the winning id; leaves at [capacity, 2 * capacity)
  std::size_t size_ = 0;
};

}  // namespace floodgate::detail
