// Private to floodgate_kite: one output channel of a ticker manager, with the
// policy for a consumer that does not keep up.
//
// The sockets must never wait for a consumer, so `push` never blocks: it
// `try_send`s into the channel's buffer, and when that is full the message is
// either dropped and counted, or (conflation on) its ticks are held in a
// LatestValueQueue that keeps the newest tick per instrument. Held ticks go
// out first, before newer messages, as soon as there is room (at the next push
// or at the latest after `flush_interval`), rebuilt into batches in the pool
// of the connection they came from.
#pragma once

#include <floodgate/kite/latest_value_queue.hpp>
#include <floodgate/kite/multi_api_manager.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>

namespace floodgate::kite::detail {

class ChannelFeed : public std::enable_shared_from_this<ChannelFeed> {
 public:
  static constexpr std::chrono::milliseconds flush_interval{2};

  ChannelFeed(const boost::asio::any_io_executor& executor, std::size_t capacity, bool conflate)
      : channel_(executor, capacity), held_(capacity), conflate_(conflate), flush_timer_(executor) {
    // Grows the channel's ring to its capacity now, so that no later burst
    // allocates: fill the buffer with empty messages, then drain it.
    for (std::size_t i = 0; i < capacity; ++i) channel_.try_send(std::error_code{}, TickerMessage{});
    while (channel_.try_receive([](std::error_code, const TickerMessage&) {})) {
    }
  }

  TickerChannel& channel() noexcept { return channel_; }

  void push(TickerMessage&& message) {
    if (!conflate_) {
      count(channel_.try_send(std::error_code{}, std::move(message)) ? delivered_ : dropped_);
      return;
    }
    std::lock_guard lock(mutex_);
    if (held_.empty() && !pending_ && channel_.try_send(std::error_code{}, std::move(message))) {
      count(delivered_);
      return;
    }
    if (const TickBatch* batch = message.ticks()) {  // NOLINT(bugprone-use-after-move): try_send moves only when it succeeds
      for (std::uint32_t i = 0; i < batch->size(); ++i) {
        tally(held_.push((*batch)[i].instrument_token, Held{*batch, i, {}}));
      }
    } else {
      tally(held_.push_unkeyed(Held{{}, 0, std::move(message)}));
    }
    flush_locked();
  }

  /// Ends the feed: the channel closes and held messages are discarded.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    flush_timer_.cancel();
    channel_.close();
  }

  std::uint64_t delivered() const noexcept { return delivered_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t conflated() const noexcept { return conflated_.load(std::memory_order_relaxed); }

 private:
  // One held tick (batch[index]) or one held text message.
  struct Held {
    TickBatch batch;
    std::uint32_t index = 0;
    TickerMessage text;
  };
  using HeldQueue = LatestValueQueue<std::uint32_t, Held>;

  static void count(std::atomic<std::uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

  void tally(HeldQueue::Pushed pushed) {
    if (pushed == HeldQueue::Pushed::replaced) count(conflated_);
    if (pushed == HeldQueue::Pushed::refused) count(dropped_);
  }

  // The next message out of held_: a text message, or the run of held ticks
  // at the front that came from one connection, as one batch.
  TickerMessage take_held() {
    Held& front = held_.front();
    if (!front.batch) {
      TickerMessage text = std::move(front.text);
      held_.pop();
      return text;
    }
    const auto pool = detail::TickBatchPool::of(front.batch);
    auto filling = pool->take();
    while (!held_.empty() && held_.front().batch && detail::TickBatchPool::of(held_.front().batch) == pool) {
      filling.ticks().push_back(held_.front().batch[held_.front().index]);
      held_.pop();
    }
    return TickerMessage{pool->shared_source(), pool->publish(filling)};
  }

  void flush_locked() {
    for (;;) {
      if (!pending_) {
        if (held_.empty()) break;
        pending_ = take_held();
      }
      if (!channel_.try_send(std::error_code{}, std::move(*pending_))) break;
      pending_.reset();
      count(delivered_);
    }
    if ((held_.empty() && !pending_) || timer_armed_ || closed_) return;
    timer_armed_ = true;
    flush_timer_.expires_after(flush_interval);
    flush_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      std::lock_guard lock(self->mutex_);
      self->timer_armed_ = false;
      if (!ec) self->flush_locked();
    });
  }

  TickerChannel channel_;
  std::mutex mutex_;  // held_, pending_ and the timer (conflation only)
  HeldQueue held_;
  std::optional<TickerMessage> pending_;  // taken from held_, refused by a full channel: goes out first
  const bool conflate_;
  boost::asio::steady_timer flush_timer_;
  bool timer_armed_ = false;
  bool closed_ = false;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> conflated_{0};
};

}  // namespace floodgate::kite::detail
