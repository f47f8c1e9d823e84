// Private to floodgate_kite: one output channel of a ticker manager, with the
// policy for a consumer that does not keep up.
//
// The sockets must never wait for a consumer, so `push` never blocks: it
// `try_send`s into the channel's buffer, and when that is full the message is
// either dropped and counted, or (conflation on) held in a LatestValueQueue
// that keeps the newest tick per instrument. Held messages go out first,
// before newer ones, as soon as there is room: at the next push or at the
// latest after `flush_interval`.
#pragma once

#include <floodgate/kite/latest_value_queue.hpp>
#include <floodgate/kite/multi_api_manager.hpp>

#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace floodgate::kite::detail {

class ChannelFeed : public std::enable_shared_from_this<ChannelFeed> {
 public:
  static constexpr std::chrono::milliseconds flush_interval{2};

  ChannelFeed(const boost::asio::any_io_executor& executor, std::size_t capacity, bool conflate)
      : channel_(executor, capacity), held_(capacity), conflate_(conflate), flush_timer_(executor) {}

  TickerChannel& channel() noexcept { return channel_; }

  void push(TickerMessage&& message) {
    if (!conflate_) {
      count(channel_.try_send(boost::system::error_code{}, std::move(message)) ? delivered_ : dropped_);
      return;
    }
    std::lock_guard lock(mutex_);
    if (held_.empty() && channel_.try_send(boost::system::error_code{}, std::move(message))) {
      count(delivered_);
      return;
    }
    const auto* tick = std::get_if<Tick>(&message.message);
    const auto pushed = tick ? held_.push(tick->instrument_token, std::move(message))
                             : held_.push_unkeyed(std::move(message));
    if (pushed == Held::Pushed::replaced) count(conflated_);
    if (pushed == Held::Pushed::refused) count(dropped_);
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
  using Held = LatestValueQueue<std::uint32_t, TickerMessage>;

  static void count(std::atomic<std::uint64_t>& counter) { counter.fetch_add(1, std::memory_order_relaxed); }

  void flush_locked() {
    while (!held_.empty() && channel_.try_send(boost::system::error_code{}, std::move(held_.front()))) {
      held_.pop();
      count(delivered_);
    }
    if (held_.empty() || timer_armed_ || closed_) return;
    timer_armed_ = true;
    flush_timer_.expires_after(flush_interval);
    flush_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      std::lock_guard lock(self->mutex_);
      self->timer_armed_ = false;
      if (!ec) self->flush_locked();
    });
  }

  TickerChannel channel_;
  std::mutex mutex_;  // held_ and the timer (conflation only)
  Held held_;
  const bool conflate_;
  boost::asio::steady_timer flush_timer_;
  bool timer_armed_ = false;
  bool closed_ = false;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> conflated_{0};
};

}  // namespace floodgate::kite::detail
