// floodgate/async/detail/associations.hpp: keeping a completion handler's
// associated executor and cancellation slot when it is wrapped.
//
// A lambda that captures a handler hides both: the wrapped operation would
// then run the handler on the wrong executor and ignore the caller's
// per-operation cancellation. Read them before the handler is moved into the
// lambda, then bind them to the lambda:
//
//   const auto associated = associations_of(handler, io);
//   next_step(associated.wrap([handler = std::move(handler)](std::error_code ec, R r) mutable { … }));
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>

#include <utility>

namespace floodgate::async::detail {

template <class Executor, class Slot>
struct Associations {
  Executor executor;
  Slot slot;

  /// `fn` with the handler's executor and cancellation slot.
  template <class Fn>
  auto wrap(Fn&& fn) const {
    return boost::asio::bind_cancellation_slot(slot, boost::asio::bind_executor(executor, std::forward<Fn>(fn)));
  }
};

template <class Handler, class IoExecutor>
auto associations_of(const Handler& handler, const IoExecutor& io) {
  return Associations<boost::asio::associated_executor_t<Handler, IoExecutor>,
                      boost::asio::associated_cancellation_slot_t<Handler>>{
      boost::asio::get_associated_executor(handler, io), boost::asio::get_associated_cancellation_slot(handler)};
}

}  // namespace floodgate::async::detail
