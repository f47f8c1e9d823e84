// Private to floodgate_telegram: completing a type-erased Asio handler from
// any thread (the receive thread, a timer, a destructor).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace floodgate::telegram::detail {

/// Posts the call to `io`, from where Asio dispatches it to the handler's
/// associated executor, as Asio's own operations complete. Never runs the
/// handler inside the caller.
template <class Signature, class... Args>
void post_completion(const boost::asio::any_io_executor& io,
                     boost::asio::any_completion_handler<Signature> handler, Args... args) {
  auto target = boost::asio::get_associated_executor(handler, io);
  boost::asio::post(io, boost::asio::bind_executor(
                            std::move(target), [handler = std::move(handler), ... args = std::move(args)]() mutable {
                              std::move(handler)(std::move(args)...);
                            }));
}

}  // namespace floodgate::telegram::detail
