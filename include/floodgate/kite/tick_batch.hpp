// floodgate/kite/tick_batch.hpp: the ticks of one received frame, delivered
// as one value (the ecosystem's on_ticks(ticks)).
//
// The ticker sends one binary frame per connection and interval with a
// packet per instrument; a manager decodes the whole frame into one
// `TickBatch` and hands that over once, so a consumer pays for one handoff
// per frame, not per tick:
//
//   void on_ticks(const floodgate::kite::TickBatch& ticks) {
//     for (const floodgate::kite::Tick& tick : ticks) book.update(ticks.api_key_id(), tick);
//   }
//
// A `TickBatch` is a shared, read-only handle: copying it copies a pointer
// and bumps a reference count, never the ticks. The storage comes from a pool
// owned by the connection and goes back to it when the last handle is gone,
// so in steady state decoding a frame allocates nothing. Holding batches is
// safe for as long as you like (even past the manager's destruction), but
// every batch held keeps its storage out of the pool: hand ticks on and let
// the batch go.
//
// The key id is interned: all batches of a connection share one string.
#pragma once

#include <floodgate/kite/tick.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace floodgate::kite {

namespace detail {
class TickBatchPool;
}  // namespace detail

/// Where messages come from: the id given to the API key ("API-1", never the
/// key itself) and the index of the connection within that key.
struct MessageSource {
  std::string api_key_id;
  std::size_t connection = 0;
};

class TickBatch {
 public:
  TickBatch() noexcept = default;
  TickBatch(const TickBatch& other) noexcept : block_(other.block_) { retain(); }
  TickBatch(TickBatch&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  TickBatch& operator=(TickBatch other) noexcept {
    std::swap(block_, other.block_);
    return *this;
  }
  ~TickBatch() { release(); }

  /// The frame's ticks, in the order of its packets.
  std::span<const Tick> ticks() const noexcept;
  const Tick* begin() const noexcept { return ticks().data(); }
  const Tick* end() const noexcept { return begin() + size(); }
  std::size_t size() const noexcept { return ticks().size(); }
  bool empty() const noexcept { return size() == 0; }
  const Tick& operator[](std::size_t i) const noexcept { return ticks()[i]; }

  const MessageSource& source() const noexcept;
  const std::string& api_key_id() const noexcept { return source().api_key_id; }
  std::size_t connection() const noexcept { return source().connection; }

  /// False for a default-constructed or moved-from batch.
  explicit operator bool() const noexcept { return block_ != nullptr; }

 private:
  friend class detail::TickBatchPool;
  struct Block;
  explicit TickBatch(Block* block) noexcept : block_(block) {}
  void retain() const noexcept;
  void release() noexcept;

  Block* block_ = nullptr;
};

namespace detail {

/// Storage for one connection's batches. The producer (the connection's
/// strand) takes a block, fills it and publishes it as a TickBatch; the last
/// handle gives the block back, from any thread. Idle blocks keep their
/// capacity; at most `max_idle` are kept.
class TickBatchPool : public std::enable_shared_from_this<TickBatchPool> {
 public:
  TickBatchPool(MessageSource source, std::size_t max_idle)
      : source_(std::make_shared<const MessageSource>(std::move(source))), max_idle_(max_idle) {
    idle_.reserve(max_idle_);
  }
  ~TickBatchPool();
  TickBatchPool(const TickBatchPool&) = delete;
  TickBatchPool& operator=(const TickBatchPool&) = delete;

  const MessageSource& source() const noexcept { return *source_; }
  /// The source as shared by every message of the connection.
  const std::shared_ptr<const MessageSource>& shared_source() const noexcept { return source_; }
  /// The pool a published batch came from (conflation rebuilds batches in it).
  static const std::shared_ptr<TickBatchPool>& of(const TickBatch& batch) noexcept;

  /// An empty tick vector with the capacity of a previous frame, to fill and
  /// then publish().
  class Filling {
   public:
    std::vector<Tick>& ticks() noexcept;

   private:
    friend class TickBatchPool;
    explicit Filling(TickBatch::Block* block) noexcept : block_(block) {}
    TickBatch::Block* block_;
  };
  Filling take();
  /// The filled block as a batch (reference count 1).
  TickBatch publish(Filling filled) noexcept;
  /// Hands a block that will not be published back (nothing was decoded).
  void discard(Filling filled) noexcept;

  std::size_t idle() const;

 private:
  friend class kite::TickBatch;
  void give_back(TickBatch::Block* block) noexcept;

  const std::shared_ptr<const MessageSource> source_;
  const std::size_t max_idle_;
  mutable std::mutex mutex_;  // idle_; taken once per frame by each side, rarely contended
  std::vector<TickBatch::Block*> idle_;
};

}  // namespace detail

static_assert(std::is_trivially_destructible_v<Tick>, "a pooled batch clears its ticks without freeing");

struct TickBatch::Block {
  std::atomic<std::size_t> references{0};
  std::vector<Tick> ticks;
  // Set while published: keeps the pool (and the source) alive for as long as
  // any handle is.
  std::shared_ptr<detail::TickBatchPool> pool;
};

inline const std::shared_ptr<detail::TickBatchPool>& detail::TickBatchPool::of(const TickBatch& batch) noexcept {
  return batch.block_->pool;
}

inline std::span<const Tick> TickBatch::ticks() const noexcept {
  return block_ ? std::span<const Tick>(block_->ticks) : std::span<const Tick>();
}

inline const MessageSource& TickBatch::source() const noexcept {
  static const MessageSource none;
  return block_ ? block_->pool->source() : none;
}

inline void TickBatch::retain() const noexcept {
  if (block_) block_->references.fetch_add(1, std::memory_order_relaxed);
}

inline void TickBatch::release() noexcept {
  if (!block_) return;
  if (block_->references.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last handle: the block goes home. The local keeps the pool alive
    // through give_back, and may be its last owner.
    const auto pool = std::move(block_->pool);
    pool->give_back(block_);
  }
  block_ = nullptr;
}

}  // namespace floodgate::kite
