// floodgate/core/detail/indexed_heap.hpp: a binary heap over small integer ids
// whose keys can change in place.
//
// The pool's cooling queue needs "give me the soonest one" and "this one's
// key changed" in O(log n), so that an acquire costs the same at 10,000
// credentials as at 16 (no scan). Ids are dense slot numbers, so the
// position index is a vector, not a hash map. (Weighted, whose best entry
// changes on every pick, uses a TournamentTree instead: tournament_tree.hpp
// says why.)
//
// Each heap entry holds its key beside its id, so a comparison reads the two
// entries it compares and nothing else, and a sift moves a hole down (or up)
// and writes the moved entry once at the end instead of swapping at every
// level.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace floodgate::detail {

/// `Before(a, b)` is true when key a must be served before key b.
template <class Key, class Before>
class IndexedHeap {
 public:
  using Id = std::uint32_t;

  explicit IndexedHeap(Before before = {}) : before_(std::move(before)) {}

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  bool contains(Id id) const noexcept { return id < pos_.size() && pos_[id] != npos; }
  Id top() const noexcept { return heap_.front().id; }
  /// The key of `id`, which must be present.
  const Key& key(Id id) const noexcept { return heap_[pos_[id]].key; }

  /// Calls `visit(id, key)` for every entry, in heap order (not sorted): for
  /// the rare full scans. `visit` must not change the heap.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const Entry& entry : heap_) visit(entry.id, entry.key);
  }

  /// Inserts `id`, or changes its key if it is present.
  void set(Id id, Key key) {
    if (contains(id)) {
      const std::size_t at = pos_[id];
      heap_[at].key = std::move(key);
      restore(at);
      return;
    }
    if (id >= pos_.size()) pos_.resize(id + 1, npos);
    heap_.push_back({std::move(key), id});
    sift_up(heap_.size() - 1);
  }

  void erase(Id id) noexcept {
    if (!contains(id)) return;
    const std::size_t at = pos_[id];
    pos_[id] = npos;
    Entry last = std::move(heap_.back());
    heap_.pop_back();
    if (at == heap_.size()) return;  // it was the last entry
    heap_[at] = std::move(last);
    pos_[heap_[at].id] = static_cast<std::uint32_t>(at);
    restore(at);
  }

 private:
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

  struct Entry {
    Key key;
    Id id;
  };

  // Puts the entry at `at`, whose key just changed, where it belongs.
  void restore(std::size_t at) {
    if (at > 0 && before_(heap_[at].key, heap_[(at - 1) / 2].key)) {
      sift_up(at);
    } else {
      sift_down(at);
    }
  }

  void sift_up(std::size_t at) {
    Entry moving = std::move(heap_[at]);
    while (at > 0) {
      const std::size_t parent = (at - 1) / 2;
      if (!before_(moving.key, heap_[parent].key)) break;
      place(at, std::move(heap_[parent]));
      at = parent;
    }
    place(at, std::move(moving));
  }

  void sift_down(std::size_t at) {
    Entry moving = std::move(heap_[at]);
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t child = 2 * at + 1;
      if (child >= n) break;
      if (child + 1 < n && before_(heap_[child + 1].key, heap_[child].key)) ++child;
      if (!before_(heap_[child].key, moving.key)) break;
      place(at, std::move(heap_[child]));
      at = child;
    }
    place(at, std::move(moving));
  }

  void place(std::size_t at, Entry&& entry) {
    pos_[entry.id] = static_cast<std::uint32_t>(at);
    heap_[at] = std::move(entry);
  }

  Before before_;
  std::vector<Entry> heap_;
  std::vector<std::uint32_t> pos_;  // by id: where its entry is in heap_, or npos
};

}  // namespace floodgate::detail
