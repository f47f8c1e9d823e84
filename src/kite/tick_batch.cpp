#include <floodgate/kite/tick_batch.hpp>

namespace floodgate::kite::detail {

TickBatchPool::~TickBatchPool() {
  // Only idle blocks are left: a published one holds the pool alive.
  for (TickBatch::Block* block : idle_) delete block;
}

std::vector<Tick>& TickBatchPool::Filling::ticks() noexcept { return block_->ticks; }

TickBatchPool::Filling TickBatchPool::take() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      TickBatch::Block* block = idle_.back();
      idle_.pop_back();
      return Filling(block);
    }
  }
  return Filling(new TickBatch::Block);  // the pool grows only while more frames are in flight than ever before
}

TickBatch TickBatchPool::publish(Filling filled) noexcept {
  filled.block_->pool = shared_from_this();
  filled.block_->references.store(1, std::memory_order_relaxed);
  return TickBatch(filled.block_);
}

void TickBatchPool::discard(Filling filled) noexcept { give_back(filled.block_); }

std::size_t TickBatchPool::idle() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

void TickBatchPool::give_back(TickBatch::Block* block) noexcept {
  block->ticks.clear();  // Tick is trivially destructible: the capacity stays, nothing is freed
  {
    std::lock_guard lock(mutex_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(block);  // reserved in the constructor: never allocates
      return;
    }
  }
  delete block;
}

}  // namespace floodgate::kite::detail
