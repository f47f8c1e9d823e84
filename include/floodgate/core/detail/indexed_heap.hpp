// floodgate/core/detail/indexed_heap.hpp: a binary heap over small integer ids
// whose keys can change in place.
//
// The pool's strategies and its cooling queue need "give me the best one" and
// "this one's key changed" in O(log n), so that an acquire costs the same at
// 10,000 credentials as at 16 (no scan). Ids are dense slot numbers, so the
// position index is a vector, not a hash map.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
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
  Id top() const noexcept { return heap_.front(); }
  const Key& key(Id id) const noexcept { return keys_[id]; }
  /// The ids in heap order (not sorted): for the rare full scans.
  const std::vector<Id>& ids() const noexcept { return heap_; }

  /// Inserts `id`, or changes its key if it is present.
  void set(Id id, Key key) {
    if (contains(id)) {
      keys_[id] = std::move(key);
      restore(pos_[id]);
      return;
    }
    if (id >= pos_.size()) {
      pos_.resize(id + 1, npos);
      keys_.resize(id + 1);
    }
    keys_[id] = std::move(key);
    pos_[id] = static_cast<std::uint32_t>(heap_.size());
    heap_.push_back(id);
    sift_up(heap_.size() - 1);
  }

  void erase(Id id) noexcept {
    if (!contains(id)) return;
    const std::size_t at = pos_[id];
    const std::size_t last = heap_.size() - 1;
    pos_[id] = npos;
    if (at != last) {
      heap_[at] = heap_[last];
      pos_[heap_[at]] = static_cast<std::uint32_t>(at);
      heap_.pop_back();
      restore(at);
    } else {
      heap_.pop_back();
    }
  }

 private:
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

  bool before(std::size_t a, std::size_t b) const { return before_(keys_[heap_[a]], keys_[heap_[b]]); }

  void swap_at(std::size_t a, std::size_t b) noexcept {
    std::swap(heap_[a], heap_[b]);
    pos_[heap_[a]] = static_cast<std::uint32_t>(a);
    pos_[heap_[b]] = static_cast<std::uint32_t>(b);
  }

  void restore(std::size_t at) {
    if (at > 0 && before(at, (at - 1) / 2)) {
      sift_up(at);
    } else {
      sift_down(at);
    }
  }

  void sift_up(std::size_t at) {
    while (at > 0) {
      const std::size_t parent = (at - 1) / 2;
      if (!before(at, parent)) break;
      swap_at(at, parent);
      at = parent;
    }
  }

  void sift_down(std::size_t at) {
    for (;;) {
      std::size_t best = at;
      const std::size_t left = 2 * at + 1;
      const std::size_t right = left + 1;
      if (left < heap_.size() && before(left, best)) best = left;
      if (right < heap_.size() && before(right, best)) best = right;
      if (best == at) return;
      swap_at(at, best);
      at = best;
    }
  }

  Before before_;
  std::vector<Id> heap_;
  std::vector<std::uint32_t> pos_;
  std::vector<Key> keys_;
};

}  // namespace floodgate::detail
