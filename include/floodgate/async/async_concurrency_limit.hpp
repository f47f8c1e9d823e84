// floodgate/async/async_concurrency_limit.hpp: wait for a per-key concurrency
// permit with Asio.
//
//   floodgate::KeyedConcurrencyLimit<std::int64_t> per_user(3);       // 3 tasks per user
//   floodgate::async::AsyncConcurrencyLimit waiter(io.get_executor(), per_user);
//   auto [ec, permit] = co_await waiter.async_acquire(user_id,
//                           boost::asio::as_tuple(boost::asio::use_awaitable));
//   if (!ec) co_await run_task(user_id);    // permit released when it goes out of scope
//
// Completes with void(std::error_code, Permit). The error codes and their
// meaning are those of AsyncLimiter (async_limiter.hpp): {} with a permit;
// errc::cancelled, errc::too_many_waiters or errc::shut_down with an empty
// permit. Waiters of one key are served first-in first-out, each as soon as a
// permit of that key is released (the released slot goes to the first waiter;
// a concurrent synchronous try_acquire may take it first). No timer is
// involved: releases drive the queue.
//
// The AsyncConcurrencyLimit installs itself as the limit's release listener;
// one AsyncConcurrencyLimit per KeyedConcurrencyLimit. Destroying it ends
// every waiter with errc::shut_down.
#pragma once

#include <floodgate/async/async_limiter.hpp>
#include <floodgate/async/detail/pending_op.hpp>
#include <floodgate/async/detail/waiter_queue.hpp>
#include <floodgate/core/error.hpp>
#include <floodgate/core/keyed_concurrency_limit.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <system_error>

namespace floodgate::async {

template <class Key, class Hash = std::hash<Key>>
class AsyncConcurrencyLimit {
 public:
  using limit_type = KeyedConcurrencyLimit<Key, Hash>;
  using Permit = typename limit_type::Permit;
  using executor_type = boost::asio::any_io_executor;

  AsyncConcurrencyLimit(executor_type executor, limit_type& limit, AsyncLimiterOptions options = {})
      : state_(std::make_shared<State>(std::move(executor), limit, options)) {
    limit.set_release_listener([weak = std::weak_ptr<State>(state_)](const Key& key) {
      if (auto state = weak.lock()) state->on_release(key);
    });
  }
  AsyncConcurrencyLimit(const AsyncConcurrencyLimit&) = delete;
  AsyncConcurrencyLimit& operator=(const AsyncConcurrencyLimit&) = delete;
  ~AsyncConcurrencyLimit() {
    state_->limit.set_release_listener({});
    state_->close();
  }

  /// Waits for a permit for `key`. Signature void(std::error_code, Permit).
  template <class CompletionToken>
  auto async_acquire(const Key& key, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, Permit)>(
        [state = state_](auto handler, Key k) { state->start(std::move(handler), std::move(k)); }, token,
        key);
  }

  /// Operations waiting now.
  std::size_t waiting() const {
    std::lock_guard lock(state_->mutex);
    return state_->queue.size();
  }

 private:
  using Queue = detail::WaiterQueue<Key, Permit>;

  struct State : std::enable_shared_from_this<State> {
    State(executor_type ex, limit_type& l, const AsyncLimiterOptions& options)
        : executor(std::move(ex)), limit(l), queue(options.max_waiters) {}

    template <class Handler>
    void start(Handler handler, Key key) {
      auto op = detail::make_pending_op<std::error_code, Permit>(std::move(handler), executor);
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        const bool key_queued =
            std::any_of(queue.begin(), queue.end(), [&](const auto& w) { return w.request == key; });
        Permit permit = (closed || key_queued) ? Permit{} : limit.try_acquire(key);
        if (permit) {
          done.add(std::move(op), std::error_code{}, std::move(permit));
        } else if (closed || queue.full()) {
          done.add(std::move(op), make_error_code(closed ? errc::shut_down : errc::too_many_waiters),
                   Permit{});
        } else {
          queue.push(std::move(key), std::move(op), this->shared_from_this());
        }
      }
      done.run();
    }

    void on_release(const Key& key) {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        for (auto it = queue.begin(); it != queue.end() && !closed;) {
          if (!(it->request == key)) {
            ++it;
            continue;
          }
          Permit permit = limit.try_acquire(key);
          if (!permit) break;
          it = queue.grant(it, done, std::move(permit));
        }
      }
      done.run();
    }

    void cancel(std::uint64_t id) {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        queue.fail(id, done, make_error_code(errc::cancelled));
      }
      done.run();
    }

    void close() {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        closed = true;
        queue.fail_all(done, make_error_code(errc::shut_down));
      }
      done.run();
    }

    mutable std::mutex mutex;
    executor_type executor;
    limit_type& limit;
    Queue queue;
    bool closed = false;
  };

  std::shared_ptr<State> state_;
};

}  // namespace floodgate::async
