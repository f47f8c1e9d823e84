// floodgate/kite/latest_value_queue.hpp: a FIFO that keeps only the newest
// value per key.
//
// When a market-data consumer falls behind, queuing every tick only makes it
// fall further behind on prices that are already stale. `LatestValueQueue`
// holds at most one value per key: pushing a key that is still waiting
// replaces its value in place (the key keeps its place in line), so the
// consumer catches up with the latest price of every instrument. Values pushed
// without a key (order updates, server errors) are never merged.
//
//   LatestValueQueue<std::uint32_t, Tick> queue(10'000);
//   queue.push(tick.instrument_token, tick);   // replaces an older tick of that token
//   while (!queue.empty() && consumer_has_room()) deliver(queue.pop());
//
// Memory is bounded: a push that would add an entry beyond `max_entries` is
// refused (false); a replacement always succeeds. Pure logic, not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>

namespace floodgate::kite {

template <class Key, class Value>
class LatestValueQueue {
 public:
  enum class Pushed : std::uint8_t {
    appended,  ///< a new entry at the back
    replaced,  ///< the key was waiting; its value was replaced in place
    refused,   ///< full; nothing changed
  };

  explicit LatestValueQueue(std::size_t max_entries) : max_entries_(max_entries) {}

  /// Queues `value` under `key`, replacing the value of a waiting `key`.
  Pushed push(const Key& key, Value value) {
    if (const auto it = position_.find(key); it != position_.end()) {
      entries_[it->second - popped_].second = std::move(value);
      return Pushed::replaced;
    }
    if (entries_.size() >= max_entries_) return Pushed::refused;
    position_.emplace(key, popped_ + entries_.size());
    entries_.emplace_back(key, std::move(value));
    return Pushed::appended;
  }

  /// Queues `value` at the back, never merged with another.
  Pushed push_unkeyed(Value value) {
    if (entries_.size() >= max_entries_) return Pushed::refused;
    entries_.emplace_back(std::nullopt, std::move(value));
    return Pushed::appended;
  }

  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }

  /// The oldest entry's value. Precondition: !empty().
  Value& front() noexcept { return entries_.front().second; }

  /// Removes the oldest entry. Precondition: !empty().
  void pop() {
    if (entries_.front().first) position_.erase(*entries_.front().first);
    entries_.pop_front();
    ++popped_;
  }

 private:
  std::size_t max_entries_;
  std::deque<std::pair<std::optional<Key>, Value>> entries_;
  std::unordered_map<Key, std::size_t> position_;  // key -> absolute position (popped_ + index)
  std::size_t popped_ = 0;                         // entries popped so far
};

}  // namespace floodgate::kite
