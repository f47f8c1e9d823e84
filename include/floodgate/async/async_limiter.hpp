// floodgate/async/async_limiter.hpp: wait for rate-limit tokens with Asio.
//
//   floodgate::TokenBucket<> bucket(floodgate::Rate::per_second(30), 1);
//   floodgate::async::AsyncLimiter waiter(io.get_executor(), bucket);
//   waiter.async_acquire(1, [](std::error_code ec) { if (!ec) send(); });        // callback
//   std::error_code ec = co_await waiter.async_acquire(1, boost::asio::use_awaitable);
//   std::error_code ec = waiter.async_acquire(1, boost::asio::use_future).get();
//
//   auto limits = floodgate::telegram_bot_limits();
//   floodgate::async::AsyncLimiter chats(io.get_executor(), limits);
//   co_await chats.async_acquire(chat_id, boost::asio::use_awaitable);      // one token for chat_id
//
// `AsyncLimiter<L>` works over a TokenBucket, a KeyedLimiter or a LimitSet
// (which it references and does not own) and completes with
// void(std::error_code). Boost.Asio only turns boost::system::error_code into
// exceptions, so with use_awaitable / use_future the std::error_code is the
// result and nothing throws:
//   {}                              the tokens were taken
//   errc::cancelled                 the caller cancelled (per-operation cancellation slot,
//                                   any cancellation type); nothing was taken
//   errc::too_many_waiters          `max_waiters` were already queued; nothing was taken
//   errc::rate_limited              the request can never pass (zero rate, more tokens
//                                   than the burst): failing beats waiting forever
//   errc::shut_down                 the AsyncLimiter was destroyed while waiting
//
// Order. Waiters are served first-in first-out: a waiter is never overtaken by
// a later one competing for the same tokens. For a TokenBucket every waiter
// competes for the same tokens, so service stops at the first that must wait.
// With keys, a waiter held up only by its own key's limit holds up the later
// waiters of that key, but not those of other keys: a slow chat does not stall
// a fast one. Callers that take tokens synchronously (try_acquire on the same
// limiter) are not queued and may take tokens ahead of the waiters.
//
// Time. While waiters are queued, the limiter's refusals say when the first
// of them could pass, and one timer of the type the limiter's Clock selects
// (async/timer.hpp) wakes the queue then; with ManualClock, tests drive it in
// virtual time through async::VirtualTime.
//
// Thread-safe: async_acquire may be called from any thread. Destroying the
// AsyncLimiter ends every waiter with errc::shut_down.
#pragma once

#include <floodgate/async/detail/pending_op.hpp>
#include <floodgate/async/detail/waiter_queue.hpp>
#include <floodgate/async/timer.hpp>
#include <floodgate/core/error.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/core/limit_set.hpp>
#include <floodgate/core/rate.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <vector>

namespace floodgate::async {

struct AsyncLimiterOptions {
  /// Most operations waiting at once; a call beyond it fails with errc::too_many_waiters.
  std::size_t max_waiters = 1024;
};

namespace detail {

/// How AsyncLimiter talks to each kind of limiter.
template <class Limiter>
struct limiter_gate;

template <class C>
struct limiter_gate<TokenBucket<C>> {
  static constexpr bool keyed = false;
  struct key_type {};  // no keys: names the (disabled) keyed overloads' parameter
  struct request {
    std::uint32_t tokens;
  };
  static LimitDecision try_pass(TokenBucket<C>& bucket, const request& r) { return bucket.check(r.tokens); }
  static bool same_key(const request&, const request&) { return true; }
};

template <class Key, class C, class Hash>
struct limiter_gate<KeyedLimiter<Key, C, Hash>> {
  static constexpr bool keyed = true;
  using key_type = Key;
  struct request {
    Key key;
    std::uint32_t tokens;
  };
  static LimitDecision try_pass(KeyedLimiter<Key, C, Hash>& limiter, const request& r) {
    return limiter.try_acquire(r.key, r.tokens);
  }
  static bool same_key(const request& a, const request& b) { return a.key == b.key; }
};

template <class Key, class C>
struct limiter_gate<LimitSet<Key, C>> {
  static constexpr bool keyed = true;
  using key_type = Key;
  struct request {
    Key key;
    std::uint32_t tokens;
  };
  static LimitDecision try_pass(LimitSet<Key, C>& limits, const request& r) {
    return limits.try_acquire(r.key, r.tokens);
  }
  static bool same_key(const request& a, const request& b) { return a.key == b.key; }
};

}  // namespace detail

template <class Limiter>
class AsyncLimiter {
  using gate = detail::limiter_gate<Limiter>;
  using request = typename gate::request;

 public:
  using limiter_type = Limiter;
  using clock_type = typename Limiter::clock_type;
  using executor_type = boost::asio::any_io_executor;

  AsyncLimiter(executor_type executor, Limiter& limiter, AsyncLimiterOptions options = {})
      : state_(std::make_shared<State>(std::move(executor), limiter, options)) {}
  AsyncLimiter(const AsyncLimiter&) = delete;
  AsyncLimiter& operator=(const AsyncLimiter&) = delete;
  ~AsyncLimiter() { state_->close(); }

  /// Waits for `tokens` tokens of a TokenBucket. Signature void(std::error_code).
  template <class CompletionToken>
    requires(!gate::keyed)
  auto async_acquire(std::uint32_t tokens, CompletionToken&& token) {
    return initiate(request{tokens}, std::forward<CompletionToken>(token));
  }

  /// Waits for one token for `key` (KeyedLimiter, LimitSet).
  template <class CompletionToken>
    requires gate::keyed
  auto async_acquire(const typename gate::key_type& key, CompletionToken&& token) {
    return initiate(request{key, 1}, std::forward<CompletionToken>(token));
  }

  /// Waits for `tokens` tokens for `key` (KeyedLimiter, LimitSet).
  template <class CompletionToken>
    requires gate::keyed
  auto async_acquire(const typename gate::key_type& key, std::uint32_t tokens, CompletionToken&& token) {
    return initiate(request{key, tokens}, std::forward<CompletionToken>(token));
  }

  /// Operations waiting now.
  std::size_t waiting() const {
    std::lock_guard lock(state_->mutex);
    return state_->queue.size();
  }
  executor_type get_executor() const noexcept { return state_->executor; }

 private:
  using Queue = detail::WaiterQueue<request>;

  struct State : std::enable_shared_from_this<State> {
    State(executor_type ex, Limiter& l, const AsyncLimiterOptions& options)
        : executor(std::move(ex)), limiter(l), timer(make_timer(executor, l.clock())),
          queue(options.max_waiters) {}

    template <class Handler>
    void start(Handler handler, request r) {
      auto op = async::detail::make_pending_op<std::error_code>(std::move(handler), executor);
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        if (closed || queue.full()) {
          done.add(std::move(op), make_error_code(closed ? errc::shut_down : errc::too_many_waiters));
        } else {
          queue.push(std::move(r), std::move(op), this->shared_from_this());
          serve(done);
        }
      }
      done.run();
    }

    void cancel(std::uint64_t id) {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        // The cancelled waiter may have been holding up others.
        if (queue.fail(id, done, make_error_code(errc::cancelled)) && !closed) serve(done);
      }
      done.run();
    }

    void on_timer() {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        armed.reset();
        if (!closed) serve(done);
      }
      done.run();
    }

    void close() {
      typename Queue::Done done;
      {
        std::lock_guard lock(mutex);
        closed = true;
        queue.fail_all(done, make_error_code(errc::shut_down));
        timer.cancel();
      }
      done.run();
    }

    // One pass over the queue in arrival order (see "Order" above). Called
    // with the mutex held.
    void serve(typename Queue::Done& done) {
      std::vector<const request*> held_keys;
      std::chrono::nanoseconds soonest = LimitDecision::never;
      for (auto it = queue.begin(); it != queue.end();) {
        const bool key_held = std::any_of(held_keys.begin(), held_keys.end(), [&](const request* held) {
          return gate::same_key(*held, it->request);
        });
        if (key_held) {
          ++it;
          continue;
        }
        const LimitDecision decision = gate::try_pass(limiter, it->request);
        if (decision.admitted) {
          it = queue.grant(it, done);
        } else if (decision.never_admits()) {
          it = queue.fail(it, done, make_error_code(errc::rate_limited));
        } else {
          soonest = std::min(soonest, decision.retry_after);
          if (!gate::keyed || !decision.per_key) break;  // everyone behind needs the same tokens
          held_keys.push_back(&it->request);
          ++it;
        }
      }
      if (!queue.empty()) arm(soonest);
    }

    void arm(std::chrono::nanoseconds wait) {
      // From the precise time: `wait` may come from a precise reading, and a
      // lagging clock's reading plus it could lie in the past, a busy loop of
      // early wake-ups until the clock's next tick.
      const auto deadline =
          clock_precise_now(limiter.clock()) + std::chrono::ceil<typename clock_type::duration>(wait);
      if (armed && *armed <= deadline) return;  // an earlier wake-up will re-check
      armed = deadline;
      timer.expires_at(deadline);
      timer.async_wait([weak = this->weak_from_this()](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;
        if (auto self = weak.lock()) self->on_timer();
      });
    }

    mutable std::mutex mutex;
    executor_type executor;
    Limiter& limiter;
    timer_for_t<clock_type> timer;
    std::optional<typename clock_type::time_point> armed;
    Queue queue;
    bool closed = false;
  };

  template <class CompletionToken>
  auto initiate(request r, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [state = state_](auto handler, request req) { state->start(std::move(handler), std::move(req)); },
        token, std::move(r));
  }

  std::shared_ptr<State> state_;
};

}  // namespace floodgate::async
