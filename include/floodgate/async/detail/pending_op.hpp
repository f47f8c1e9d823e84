// floodgate/async/detail/pending_op.hpp: a queued asynchronous operation with
// its completion handler type-erased.
//
// Waiters (limiter queues, virtual timers) must sit in one container whatever
// completion token the caller used, so the handler is erased behind
// `PendingOp<Args...>`. Completing it follows Asio's rules:
// - the handler never runs inside the initiating function nor inside the
//   caller of complete(): it is posted to the I/O executor and then runs on
//   the handler's associated executor;
// - outstanding work is tracked on that executor while the operation waits,
//   as for any Asio I/O object;
// - the handler's cancellation slot is cleared just before the handler runs
//   (never from inside the slot's own cancellation handler).
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/post.hpp>

#include <memory>
#include <tuple>
#include <utility>

namespace floodgate::async::detail {

template <class... Args>
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  /// Schedules the handler with `args`. Call once.
  virtual void complete(Args... args) = 0;
  /// The caller's per-operation cancellation slot (may be unconnected).
  virtual boost::asio::cancellation_slot cancellation_slot() const noexcept = 0;
};

template <class Handler, class IoExecutor, class... Args>
class PendingOpImpl final : public PendingOp<Args...> {
 public:
  PendingOpImpl(Handler handler, IoExecutor io_executor)
      : handler_(std::move(handler)),
        io_executor_(std::move(io_executor)),
        io_work_(boost::asio::prefer(io_executor_, boost::asio::execution::outstanding_work.tracked)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_, io_executor_),
                                  boost::asio::execution::outstanding_work.tracked)) {}

  void complete(Args... args) override {
    auto handler_executor = work_;
    boost::asio::post(
        io_executor_,
        boost::asio::bind_executor(
            handler_executor,
            [handler = std::move(handler_), work = std::move(work_), io_work = std::move(io_work_),
             values = std::make_tuple(std::move(args)...)]() mutable {
              boost::asio::get_associated_cancellation_slot(handler).clear();
              std::apply(std::move(handler), std::move(values));
            }));
  }

  boost::asio::cancellation_slot cancellation_slot() const noexcept override {
    return boost::asio::get_associated_cancellation_slot(handler_);
  }

 private:
  Handler handler_;
  IoExecutor io_executor_;
  // Both executors track outstanding work while the operation waits, as Asio's
  // own composed operations do: the I/O executor's run() must not return while
  // the operation is pending, even when the handler's executor is another one
  // (use_future's, for instance).
  using TrackedIoExecutor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<IoExecutor>(), boost::asio::execution::outstanding_work.tracked))>;
  TrackedIoExecutor io_work_;
  // The handler's executor, tracking outstanding work while the operation
  // waits. prefer(tracked) rather than executor_work_guard: the guard does not
  // accept new-style executors wrapped in a strand.
  using TrackedExecutor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<boost::asio::associated_executor_t<Handler, IoExecutor>>(),
      boost::asio::execution::outstanding_work.tracked))>;
  TrackedExecutor work_;
};

/// Erases `handler` (a completion handler for void(Args...)).
template <class... Args, class Handler, class IoExecutor>
std::unique_ptr<PendingOp<Args...>> make_pending_op(Handler&& handler, const IoExecutor& io_executor) {
  return std::make_unique<PendingOpImpl<std::decay_t<Handler>, IoExecutor, Args...>>(
      std::forward<Handler>(handler), io_executor);
}

}  // namespace floodgate::async::detail
