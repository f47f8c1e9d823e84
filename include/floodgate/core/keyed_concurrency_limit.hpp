// floodgate/core/keyed_concurrency_limit.hpp: at most K operations in flight per key.
//
//   floodgate::KeyedConcurrencyLimit<std::int64_t> one_at_a_time(1);   // per user
//   if (auto permit = one_at_a_time.try_acquire(user_id)) {
//     handle(update);               // the permit is released when it goes out of scope
//   } else {
//     reply(user_id, "still working on your previous request");
//   }
//
// Bots use this for "one request at a time per user" or "3 tasks per user".
// A key is stored only while it has operations in flight, so idle keys take no
// memory. Thread-safe. To wait for a permit instead of being refused, use
// floodgate::async::AsyncConcurrencyLimit (async/async_concurrency_limit.hpp),
// which is told about every release through `set_release_listener`.
#pragma once

#include <floodgate/core/error.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace floodgate {

template <class Key, class Hash = std::hash<Key>>
class KeyedConcurrencyLimit {
 public:
  using key_type = Key;

  /// One slot in flight for one key; releases it when destroyed. Move-only.
  /// An empty permit (default-constructed or moved from) holds nothing. The
  /// limit must outlive its permits.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept
        : limit_(std::exchange(other.limit_, nullptr)), key_(std::move(other.key_)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        release();
        limit_ = std::exchange(other.limit_, nullptr);
        key_ = std::move(other.key_);
      }
      return *this;
    }
    ~Permit() { release(); }

    explicit operator bool() const noexcept { return limit_ != nullptr; }
    const Key& key() const noexcept { return key_; }

    /// Releases the slot now (idempotent).
    void release() {
      if (auto* limit = std::exchange(limit_, nullptr)) limit->release(key_);
    }

   private:
    friend class KeyedConcurrencyLimit;
    Permit(KeyedConcurrencyLimit* limit, Key key) : limit_(limit), key_(std::move(key)) {}

    KeyedConcurrencyLimit* limit_ = nullptr;
    Key key_{};
  };

  /// Called with the key after each release, outside the limit's lock.
  using ReleaseListener = std::function<void(const Key&)>;

  /// At most `per_key` permits out at once for each key; throws
  /// floodgate::Error when `per_key` is zero.
  explicit KeyedConcurrencyLimit(std::uint32_t per_key) : per_key_(per_key) {
    if (per_key == 0) throw Error("keyed concurrency limit: per_key must be at least 1");
  }
  KeyedConcurrencyLimit(const KeyedConcurrencyLimit&) = delete;
  KeyedConcurrencyLimit& operator=(const KeyedConcurrencyLimit&) = delete;

  /// A permit for `key`, or an empty one when `key` already has `per_key` in flight.
  Permit try_acquire(const Key& key) {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.try_emplace(key, 0).first;
    if (it->second == per_key_) return {};
    ++it->second;
    return Permit(this, key);
  }

  /// Operations in flight for `key`.
  std::uint32_t in_flight(const Key& key) const {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.find(key);
    return it == in_flight_.end() ? 0 : it->second;
  }
  /// Keys with at least one operation in flight.
  std::size_t active_keys() const {
    std::lock_guard lock(mutex_);
    return in_flight_.size();
  }
  std::uint32_t per_key() const noexcept { return per_key_; }

  /// Installs (or, with an empty function, removes) the release listener.
  void set_release_listener(ReleaseListener listener) {
    std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
  }

 private:
  void release(const Key& key) {
    ReleaseListener listener;
    {
      std::lock_guard lock(mutex_);
      const auto it = in_flight_.find(key);
      if (--it->second == 0) in_flight_.erase(it);
      listener = listener_;
    }
    if (listener) listener(key);
  }

  const std::uint32_t per_key_;
  mutable std::mutex mutex_;
  std::unordered_map<Key, std::uint32_t, Hash> in_flight_;
  ReleaseListener listener_;
};

}  // namespace floodgate
