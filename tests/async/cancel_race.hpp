// Per-operation cancellation in tests: an operation raced with a timer by
// `||` (awaitable_operators; Boost 1.81 has no asio::cancel_after). The
// operation is an awaitable of a tuple whose first element is its
// std::error_code (as_tuple(use_awaitable)).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <system_error>
#include <utility>

namespace floodgate::test {

struct Race {
  std::error_code ec;  ///< the raced operation's, when it won
  bool timer_won = false;
  std::chrono::steady_clock::duration took{};
};

template <class Operation>
boost::asio::awaitable<Race> race(Operation operation, std::chrono::milliseconds after) {
  using namespace boost::asio::experimental::awaitable_operators;
  const auto start = std::chrono::steady_clock::now();
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, after);
  auto wait = timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  const auto winner = co_await (std::move(operation) || std::move(wait));
  Race result;
  result.took = std::chrono::steady_clock::now() - start;
  result.timer_won = winner.index() == 1;
  if (winner.index() == 0) result.ec = std::get<0>(std::get<0>(winner));
  co_return result;
}

/// Runs the race on `executor` and waits for it on this (non-I/O) thread.
template <class Operation>
Race run_race(boost::asio::any_io_executor executor, Operation operation, std::chrono::milliseconds after) {
  return boost::asio::co_spawn(executor, race(std::move(operation), after), boost::asio::use_future).get();
}

}  // namespace floodgate::test
