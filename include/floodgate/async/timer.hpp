// floodgate/async/timer.hpp: Asio timers for any floodgate Clock, including
// virtual time in tests.
//
// Everything in floodgate that waits (limiter waiters, the retry executor's
// backoff and cooldown waits) asks the pure core *when* it may proceed, then
// waits on a timer of the type its Clock selects:
//
//   auto timer = floodgate::async::make_timer(executor, clock);  // Clock from core/clock.hpp
//   timer.expires_at(earliest);                                   // a Clock::time_point
//   timer.async_wait(token);                                      // void(boost::system::error_code)
//
//   Clock          timer type                  time moves when
//   SteadyClock    boost::asio::steady_timer   the world turns
//   CoarseClock    boost::asio::steady_timer   the world turns
//   ManualClock    floodgate::async::ManualTimer  the test calls VirtualTime::advance/run_until
//
// Both types offer the same subset of the Asio timer interface:
// `get_executor()`, `expiry()`, `expires_at(t)`, `expires_after(d)` (both
// cancel pending waits, as in Asio), `cancel()`, and `async_wait(token)` with
// any completion token (callbacks, use_future, use_awaitable), per-operation
// cancellation (the wait ends with `boost::asio::error::operation_aborted`),
// and completion never inside the initiating call. Code templated on the
// Clock therefore runs unchanged in production and in virtual-time tests.
// A user-defined Clock gets timers by specialising `timer_traits`.
//
// Why not `basic_waitable_timer<ManualClock, Traits>`? Asio's timer queues
// call a *static* `Clock::now()` and block the reactor for the real duration
// until the next expiry. ManualClock's time is per instance (copies share one
// time line, different tests have different ones) and must not relate to real
// time at all: a test that waits "15 minutes" has to finish in microseconds.
// So virtual timers live in their own queue, a service of the execution
// context (`VirtualTimerQueue`), and the test moves time explicitly:
//
//   boost::asio::io_context io;
//   floodgate::ManualClock clock;
//   floodgate::async::VirtualTime time(io, clock);
//   limiter.async_acquire(1, [&](std::error_code ec) { done = true; });
//   time.advance(250ms);   // fires every due timer in deadline order, running
//                          // the handlers (and the timers they arm) at each step
//   time.run_until([&] { return done; }, 10min);   // jump from deadline to deadline
//
// VirtualTime is single-threaded: it runs the io_context with poll(). Moving
// the ManualClock directly does not fire timers until the next VirtualTime
// call. Never call io_context::run() while a virtual timer is pending: like a
// real timer it counts as work, and nothing would ever fire it.
#pragma once

#include <floodgate/async/detail/pending_op.hpp>
#include <floodgate/core/clock.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace floodgate::async {

/// The queue of pending virtual-timer waits of one execution context.
/// Thread-safe. Used through ManualTimer and VirtualTime.
class VirtualTimerQueue final : public boost::asio::execution_context::service {
 public:
  using key_type = VirtualTimerQueue;
  static inline boost::asio::execution_context::id id;
  using time_point = ManualClock::time_point;
  using Op = detail::PendingOp<boost::system::error_code>;

  explicit VirtualTimerQueue(boost::asio::execution_context& context)
      : boost::asio::execution_context::service(context) {}

  /// A new timer identity.
  std::uint64_t new_timer() {
    std::lock_guard lock(mutex_);
    return ++last_timer_;
  }

  /// Queues `op` to complete at `deadline`; returns the wait's identity.
  std::uint64_t add(std::uint64_t timer, time_point deadline, std::unique_ptr<Op> op) {
    std::lock_guard lock(mutex_);
    const std::uint64_t wait = ++last_wait_;
    waits_.emplace(Position{deadline, wait}, Wait{timer, std::move(op)});
    by_timer_[timer].push_back(Position{deadline, wait});
    return wait;
  }

  /// Completes every pending wait of `timer` with operation_aborted.
  std::size_t cancel_timer(std::uint64_t timer) {
    std::vector<std::unique_ptr<Op>> cancelled;
    {
      std::lock_guard lock(mutex_);
      const auto it = by_timer_.find(timer);
      if (it == by_timer_.end()) return 0;
      for (const Position& position : it->second) {
        cancelled.push_back(std::move(waits_.at(position).op));
        waits_.erase(position);
      }
      by_timer_.erase(it);
    }
    for (auto& op : cancelled) op->complete(boost::asio::error::operation_aborted);
    return cancelled.size();
  }

  /// Completes one wait with operation_aborted, if it is still pending.
  void cancel_wait(time_point deadline, std::uint64_t wait) {
    std::unique_ptr<Op> op = take(Position{deadline, wait});
    if (op) op->complete(boost::asio::error::operation_aborted);
  }

  /// The earliest pending deadline.
  std::optional<time_point> earliest() const {
    std::lock_guard lock(mutex_);
    if (waits_.empty()) return std::nullopt;
    return waits_.begin()->first.deadline;
  }

  /// Completes (successfully) every wait due at `now`, in deadline order.
  std::size_t fire_due(time_point now) {
    std::vector<std::unique_ptr<Op>> due;
    {
      std::lock_guard lock(mutex_);
      while (!waits_.empty() && waits_.begin()->first.deadline <= now) {
        const Position position = waits_.begin()->first;
        due.push_back(take_locked(position));
      }
    }
    for (auto& op : due) op->complete(boost::system::error_code{});
    return due.size();
  }

 private:
  struct Position {
    time_point deadline;
    std::uint64_t wait;  // arrival order breaks ties: equal deadlines fire FIFO
    auto operator<=>(const Position&) const = default;
  };
  struct Wait {
    std::uint64_t timer;
    std::unique_ptr<Op> op;
  };

  void shutdown() override {
    // The context is going away: destroy the handlers without running them.
    std::lock_guard lock(mutex_);
    waits_.clear();
    by_timer_.clear();
  }

  std::unique_ptr<Op> take(Position position) {
    std::lock_guard lock(mutex_);
    return take_locked(position);
  }

  std::unique_ptr<Op> take_locked(Position position) {
    const auto it = waits_.find(position);
    if (it == waits_.end()) return nullptr;
    auto& positions = by_timer_[it->second.timer];
    std::erase(positions, position);
    if (positions.empty()) by_timer_.erase(it->second.timer);
    std::unique_ptr<Op> op = std::move(it->second.op);
    waits_.erase(it);
    return op;
  }

  mutable std::mutex mutex_;
  std::map<Position, Wait> waits_;
  std::unordered_map<std::uint64_t, std::vector<Position>> by_timer_;
  std::uint64_t last_timer_ = 0;
  std::uint64_t last_wait_ = 0;
};

/// A timer on ManualClock's virtual time; the Asio timer subset described above.
class ManualTimer {
 public:
  using clock_type = ManualClock;
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;
  using executor_type = boost::asio::any_io_executor;

  ManualTimer(executor_type executor, ManualClock clock)
      : executor_(std::move(executor)),
        clock_(std::move(clock)),
        queue_(&boost::asio::use_service<VirtualTimerQueue>(
            boost::asio::query(executor_, boost::asio::execution::context))),
        id_(queue_->new_timer()) {}
  ManualTimer(ManualTimer&& other) noexcept
      : executor_(std::move(other.executor_)), clock_(std::move(other.clock_)), queue_(other.queue_),
        id_(std::exchange(other.id_, 0)), expiry_(other.expiry_) {}
  ManualTimer& operator=(ManualTimer&&) = delete;
  ManualTimer(const ManualTimer&) = delete;
  ManualTimer& operator=(const ManualTimer&) = delete;
  ~ManualTimer() { cancel(); }

  executor_type get_executor() const noexcept { return executor_; }
  time_point expiry() const noexcept { return expiry_; }

  /// Sets the expiry; pending waits end with operation_aborted. Returns how many.
  std::size_t expires_at(time_point t) {
    const std::size_t cancelled = cancel();
    expiry_ = t;
    return cancelled;
  }
  std::size_t expires_after(duration d) { return expires_at(clock_.now() + d); }

  /// Ends every pending wait with operation_aborted; returns how many.
  std::size_t cancel() { return id_ == 0 ? 0 : queue_->cancel_timer(id_); }

  /// Waits until the virtual clock reaches `expiry()`. Signature
  /// void(boost::system::error_code).
  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
        [this](auto handler) { start_wait(std::move(handler)); }, token);
  }

 private:
  template <class Handler>
  void start_wait(Handler handler) {
    auto op = detail::make_pending_op<boost::system::error_code>(std::move(handler), executor_);
    if (expiry_ <= clock_.now()) {
      op->complete(boost::system::error_code{});
      return;
    }
    auto slot = op->cancellation_slot();
    const time_point deadline = expiry_;
    const std::uint64_t wait = queue_->add(id_, deadline, std::move(op));
    if (slot.is_connected()) {
      slot.assign([queue = queue_, deadline, wait](boost::asio::cancellation_type type) {
        if (type != boost::asio::cancellation_type::none) queue->cancel_wait(deadline, wait);
      });
    }
  }

  executor_type executor_;
  ManualClock clock_;
  VirtualTimerQueue* queue_;
  std::uint64_t id_;
  time_point expiry_{};
};

/// Which timer waits on a Clock's time. Specialise for your own Clock.
template <class C>
struct timer_traits {
  static_assert(sizeof(C) == 0,
                "floodgate::async::timer_traits: no timer type for this Clock; specialise "
                "timer_traits<YourClock> with `using type` and a static `make(executor, clock)`");
};

template <>
struct timer_traits<SteadyClock> {
  using type = boost::asio::steady_timer;
  static type make(const boost::asio::any_io_executor& executor, const SteadyClock&) {
    return type(executor);
  }
};

// CoarseClock's times are steady_clock's (a reading is at most its lag bound
// behind), so a steady_timer waits on them; it never fires early.
template <>
struct timer_traits<CoarseClock> {
  using type = boost::asio::steady_timer;
  static type make(const boost::asio::any_io_executor& executor, const CoarseClock&) {
    return type(executor);
  }
};

template <>
struct timer_traits<ManualClock> {
  using type = ManualTimer;
  static type make(const boost::asio::any_io_executor& executor, const ManualClock& clock) {
    return ManualTimer(executor, clock);
  }
};

template <class C>
using timer_for_t = typename timer_traits<C>::type;

/// A timer on `clock`'s time that runs its handlers through `executor`.
template <Clock C>
timer_for_t<C> make_timer(const boost::asio::any_io_executor& executor, const C& clock) {
  return timer_traits<C>::make(executor, clock);
}

/// Drives virtual time for one io_context in tests and simulations.
class VirtualTime {
 public:
  using duration = ManualClock::duration;
  using time_point = ManualClock::time_point;

  VirtualTime(boost::asio::io_context& io, ManualClock clock)
      : io_(io), clock_(std::move(clock)), queue_(boost::asio::use_service<VirtualTimerQueue>(io)) {}

  const ManualClock& clock() const noexcept { return clock_; }
  time_point now() const noexcept { return clock_.now(); }

  /// Runs the handlers that are ready, without moving time.
  std::size_t poll() {
    if (io_.stopped()) io_.restart();
    return io_.poll();
  }

  /// Moves time to `target`, stopping at every timer deadline on the way to
  /// fire it and run what it triggers, in deadline order.
  void advance_to(time_point target) {
    for (;;) {
      poll();
      const auto next = queue_.earliest();
      if (!next || *next > target) break;
      step_to(*next);
    }
    clock_.advance_to(target);
    queue_.fire_due(clock_.now());
    poll();
  }
  void advance(duration step) { advance_to(clock_.now() + step); }

  /// Jumps from deadline to deadline until `done()` holds or `limit` of
  /// virtual time has passed; returns done(). Time stops at the deadline that
  /// made `done()` true, so the test can check *when* something happened.
  template <class Predicate>
  bool run_until(Predicate done, duration limit) {
    const time_point end = clock_.now() + limit;
    for (;;) {
      poll();
      if (done()) return true;
      const auto next = queue_.earliest();
      if (!next || *next > end) return false;
      step_to(*next);
    }
  }

  /// The earliest pending virtual deadline.
  std::optional<time_point> next_deadline() const { return queue_.earliest(); }

 private:
  void step_to(time_point t) {
    clock_.advance_to(t);
    queue_.fire_due(clock_.now());
  }

  boost::asio::io_context& io_;
  ManualClock clock_;
  VirtualTimerQueue& queue_;
};

}  // namespace floodgate::async
