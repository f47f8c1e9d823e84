// An io_context running on background threads for the duration of a test.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace floodgate::test {

class IoRunner {
 public:
  explicit IoRunner(int threads = 1) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  IoRunner(const IoRunner&) = delete;
  IoRunner& operator=(const IoRunner&) = delete;
  /// Lets the queued work finish, then joins: a leaked operation hangs here.
  ~IoRunner() {
    guard_.reset();
    for (auto& t : threads_) t.join();
  }

  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  /// Polls `done` until it holds; false after `limit`.
  template <class Predicate>
  bool wait_until(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  /// Returns once the handlers queued so far have run (one thread only).
  void drain() {
    std::promise<void> ran;
    boost::asio::post(io_, [&] { ran.set_value(); });
    ran.get_future().get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{io_.get_executor()};
  std::vector<std::thread> threads_;
};

}  // namespace floodgate::test
