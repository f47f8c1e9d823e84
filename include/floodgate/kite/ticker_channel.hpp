// floodgate/kite/ticker_channel.hpp: the channel the ticker managers deliver on.
//
// `TickerChannel` is an Asio concurrent channel of `void(std::error_code,
// TickerMessage)`: `async_receive` with a callback, a future or `co_await`,
// `try_receive` to drain what is buffered without waiting.
//
//   auto [ec, msg] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
//   if (ec == floodgate::errc::shut_down) co_return;       // the manager stopped
//   use(msg);
//   while (channel.try_receive([&](std::error_code, floodgate::kite::TickerMessage next) { use(next); })) {}
//
// A receive on a closed channel completes with `floodgate::errc::shut_down`;
// one cancelled (`channel.cancel()`, or a cancellation slot) with
// `floodgate::errc::cancelled` (== std::errc::operation_canceled). Either way
// the message is empty. Cancel with care: in Asio 1.81 a channel whose
// waiting receive was cancelled buffers nothing until the next receive starts
// (its cancel leaves the send side blocked), so the managers drop (and count
// in messages_dropped) or, with conflation, hold what arrives in between.
// Start the next receive at once.
//
// Asio's default channel traits speak only `boost::system::error_code` and
// keep the buffer in a std::deque, which allocates a block every few messages
// as the buffer fills and frees it as it drains. `TickerChannelTraits` speaks
// `std::error_code` and keeps the buffer in a `RecyclingRing`, whose storage
// grows to the largest backlog seen and is then reused: the managers make it
// as large as the channel's capacity when they build the channel, so
// delivering never allocates.
#pragma once

#include <floodgate/core/error.hpp>
#include <floodgate/kite/ticker_message.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace floodgate::kite {

/// A FIFO queue on a ring of slots that never gives its storage back: it
/// grows (doubling) when a push finds it full and keeps that size; a pop
/// destroys the element at once (a buffered TickBatch goes back to its pool)
/// but keeps the slot. The operations Asio's channel asks of a container.
template <typename T>
class RecyclingRing {
 public:
  RecyclingRing() = default;
  RecyclingRing(RecyclingRing&& other) noexcept
      : slots_(std::move(other.slots_)), head_(std::exchange(other.head_, 0)), size_(std::exchange(other.size_, 0)) {}
  RecyclingRing& operator=(RecyclingRing&& other) noexcept {
    slots_ = std::move(other.slots_);
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// Slots held, used or not.
  std::size_t capacity() const noexcept { return slots_.size(); }

  void push_back(T&& value) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) % slots_.size()].emplace(std::move(value));
    ++size_;
  }
  void push_back(const T& value) { push_back(T(value)); }

  T& front() noexcept { return *slots_[head_]; }

  void pop_front() noexcept {
    slots_[head_].reset();
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }

  void clear() noexcept {
    while (size_ != 0) pop_front();
    head_ = 0;
  }

 private:
  void grow() {
    std::vector<std::optional<T>> larger(std::max<std::size_t>(8, 2 * slots_.size()));
    for (std::size_t i = 0; i < size_; ++i) {
      auto& slot = slots_[(head_ + i) % slots_.size()];
      larger[i].emplace(std::move(*slot));
      slot.reset();
    }
    slots_ = std::move(larger);
    head_ = 0;
  }

  std::vector<std::optional<T>> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

/// Channel traits for signatures `R(std::error_code, Args...)`: closed and
/// cancelled receives complete with floodgate's codes and default-constructed
/// arguments; buffers are RecyclingRings.
template <typename... Signatures>
struct TickerChannelTraits {
  template <typename... NewSignatures>
  struct rebind {
    using other = TickerChannelTraits<NewSignatures...>;
  };
};

template <typename R, typename... Args>
struct TickerChannelTraits<R(std::error_code, Args...)> {
  template <typename... NewSignatures>
  struct rebind {
    using other = TickerChannelTraits<NewSignatures...>;
  };

  template <typename Element>
  struct container {
    using type = RecyclingRing<Element>;
  };

  using receive_cancelled_signature = R(std::error_code, Args...);
  template <typename F>
  static void invoke_receive_cancelled(F f) {
    std::move(f)(make_error_code(errc::cancelled), std::decay_t<Args>()...);
  }

  using receive_closed_signature = R(std::error_code, Args...);
  template <typename F>
  static void invoke_receive_closed(F f) {
    std::move(f)(make_error_code(errc::shut_down), std::decay_t<Args>()...);
  }
};

using TickerChannel = boost::asio::experimental::basic_concurrent_channel<
    boost::asio::any_io_executor, TickerChannelTraits<>, void(std::error_code, TickerMessage)>;

}  // namespace floodgate::kite
