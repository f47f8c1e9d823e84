// floodgate/async/detail/dispatch_completion.hpp: completing a handler from
// inside the completion of another operation that the handler's own operation
// started (its initiating function has returned long before), as Asio's
// composed operations do: the handler runs on its associated executor, at once
// when the current thread already runs that executor, and its cancellation
// slot is cleared just before. post_completion.hpp is for every other caller
// (an initiating function, a cancellation handler, a foreign thread): it posts.
#pragma once

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>

#include <tuple>
#include <utility>

namespace floodgate::async::detail {

template <class... Args, class Handler, class IoExecutor>
void dispatch_completion(const IoExecutor& io, Handler handler, Args... args) {
  const auto executor = boost::asio::get_associated_executor(handler, io);
  boost::asio::dispatch(executor, [handler = std::move(handler), values = std::make_tuple(std::move(args)...)]() mutable {
    boost::asio::get_associated_cancellation_slot(handler).clear();
    std::apply(std::move(handler), std::move(values));
  });
}

}  // namespace floodgate::async::detail
