// floodgate/async/channel.hpp: Asio concurrent channels that speak
// std::error_code, for the channels floodgate hands out (the Kite managers'
// tick channels, UpdatePoller's update channel).
//
//   floodgate::async::Channel<void(std::error_code, Update)> channel(executor, capacity);
//   auto [ec, update] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
//   if (ec == floodgate::errc::shut_down) co_return;   // closed
//
// A receive on a closed channel completes with `floodgate::errc::shut_down`,
// one cancelled (`channel.cancel()`, or a cancellation slot) with
// `floodgate::errc::cancelled` (== std::errc::operation_canceled); the other
// arguments are then default-constructed. Asio's default channel traits speak
// only `boost::system::error_code` (`experimental::error::channel_closed`) and
// keep the buffer in a std::deque, which allocates a block every few messages
// as it fills and frees it as it drains; `ChannelTraits` keeps it in a
// `RecyclingRing`, whose storage grows to the largest backlog seen and is then
// reused (fill the channel once to its capacity and delivering never
// allocates).
#pragma once

#include <floodgate/core/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace floodgate::async {

/// A FIFO queue on a ring of slots that never gives its storage back: it
/// grows (doubling) when a push finds it full and keeps that size; a pop
/// destroys the element at once (a buffered Kite TickBatch goes back to its
/// pool) but keeps the slot. The operations Asio's channel asks of a container.
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
struct ChannelTraits {
  template <typename... NewSignatures>
  struct rebind {
    using other = ChannelTraits<NewSignatures...>;
  };
};

template <typename R, typename... Args>
struct ChannelTraits<R(std::error_code, Args...)> {
  template <typename... NewSignatures>
  struct rebind {
    using other = ChannelTraits<NewSignatures...>;
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

/// A concurrent channel of the given signatures (each `void(std::error_code, ...)`)
/// with floodgate's ChannelTraits.
template <typename... Signatures>
using Channel =
    boost::asio::experimental::basic_concurrent_channel<boost::asio::any_io_executor, ChannelTraits<>, Signatures...>;

}  // namespace floodgate::async
