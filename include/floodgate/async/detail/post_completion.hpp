// floodgate/async/detail/post_completion.hpp: completing a handler from any
// thread (a receive thread, a timer, a destructor) as Asio's own operations
// do: posted to the I/O executor, run on the handler's associated executor,
// never inside the caller. One mechanism: a PendingOp completed at once.
#pragma once

#include "floodgate/async/detail/pending_op.hpp"

#include <utility>

namespace floodgate::async::detail {

template <class... Args, class Handler, class IoExecutor>
void post_completion(const IoExecutor& io, Handler&& handler, Args... args) {
  make_pending_op<Args...>(std::forward<Handler>(handler), io)->complete(std::move(args)...);
}

}  // namespace floodgate::async::detail
