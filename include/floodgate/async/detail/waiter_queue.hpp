// floodgate/async/detail/waiter_queue.hpp: the FIFO of waiting operations
// shared by AsyncLimiter and AsyncConcurrencyLimit.
//
// The owner holds its own mutex while it touches the queue and collects the
// operations it ends into a `Completions` batch, which it runs after unlocking,
// so no handler code (nor Asio posting) happens under the owner's lock.
// Cancellation: `watch_cancellation` connects the caller's per-operation
// cancellation slot to the owner's `cancel(id)`, through a weak pointer so
// that a late cancellation after the owner is gone does nothing.
#pragma once

#include <floodgate/async/detail/pending_op.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace floodgate::async::detail {

/// Operations ended under a lock, completed once the lock is released.
template <class... Args>
class Completions {
 public:
  void add(std::unique_ptr<PendingOp<Args...>> op, Args... args) {
    ended_.emplace_back(std::move(op), std::make_tuple(std::move(args)...));
  }
  /// Completes everything collected. Call without holding the owner's lock.
  void run() {
    for (auto& [op, args] : ended_) {
      std::apply([&op](auto&&... values) { op->complete(std::move(values)...); }, std::move(args));
    }
    ended_.clear();
  }

 private:
  std::vector<std::pair<std::unique_ptr<PendingOp<Args...>>, std::tuple<Args...>>> ended_;
};

/// Waiting operations with completion signature void(std::error_code, Values...).
template <class Request, class... Values>
class WaiterQueue {
 public:
  using Op = PendingOp<std::error_code, Values...>;
  using Done = Completions<std::error_code, Values...>;
  struct Waiter {
    std::uint64_t id;
    Request request;
    std::unique_ptr<Op> op;
  };
  using iterator = typename std::list<Waiter>::iterator;

  explicit WaiterQueue(std::size_t max_waiters) : max_waiters_(max_waiters) {}

  bool full() const noexcept { return waiters_.size() >= max_waiters_; }
  bool empty() const noexcept { return waiters_.empty(); }
  std::size_t size() const noexcept { return waiters_.size(); }
  iterator begin() noexcept { return waiters_.begin(); }
  iterator end() noexcept { return waiters_.end(); }

  /// Appends a waiter and wires its cancellation slot to `owner->cancel(id)`.
  template <class Owner>
  void push(Request request, std::unique_ptr<Op> op, const std::shared_ptr<Owner>& owner) {
    const std::uint64_t id = ++last_id_;
    auto slot = op->cancellation_slot();
    if (slot.is_connected()) {
      slot.assign([weak = std::weak_ptr<Owner>(owner), id](boost::asio::cancellation_type type) {
        if (type == boost::asio::cancellation_type::none) return;
        if (auto strong = weak.lock()) strong->cancel(id);
      });
    }
    waiters_.push_back(Waiter{id, std::move(request), std::move(op)});
  }

  /// Removes the waiter; it completes successfully with `values`.
  iterator grant(iterator it, Done& done, Values... values) {
    done.add(std::move(it->op), std::error_code{}, std::move(values)...);
    return waiters_.erase(it);
  }

  /// Removes the waiter; it completes with `error` (and empty values).
  iterator fail(iterator it, Done& done, std::error_code error) {
    done.add(std::move(it->op), error, Values{}...);
    return waiters_.erase(it);
  }

  /// Fails the waiter `id`; false when it is no longer waiting.
  bool fail(std::uint64_t id, Done& done, std::error_code error) {
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->id == id) {
        fail(it, done, error);
        return true;
      }
    }
    return false;
  }

  /// Fails every waiter (shutdown).
  void fail_all(Done& done, std::error_code error) {
    for (auto it = waiters_.begin(); it != waiters_.end();) it = fail(it, done, error);
  }

 private:
  std::size_t max_waiters_;
  std::uint64_t last_id_ = 0;
  std::list<Waiter> waiters_;
};

}  // namespace floodgate::async::detail
