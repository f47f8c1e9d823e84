// mtproto_teardown_cycle LIBTDJSON SESSIONS_ROOT CYCLES close|destroy
//
// Run by telegram_real_tdlib_tests as a child process, so that an abort in
// TDLib at exit (its database still open during static destruction) shows
// as the child's exit status. Each cycle: a TdjsonClient and a pool of three
// user sessions on real TDLib, each brought to the phone-number prompt
// (offline TDLib gets no further), then `close` (pool.async_close, then
// destroy) or `destroy` (the destructors alone); then the process exits.
// Exit status 0 when every cycle reached the prompts, 1 otherwise.
#include "lsan_tdlib.hpp"

#include <floodgate/telegram/mtproto_pool.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace asio = boost::asio;
namespace tg = floodgate::telegram;

int main(int argc, char** argv) try {
  if (argc != 5) {
    fmt::print(stderr, "usage: mtproto_teardown_cycle LIBTDJSON SESSIONS_ROOT CYCLES close|destroy\n");
    return 2;
  }
  const auto library = tg::TdjsonLibrary::open({.path = argv[1]});
  const std::string root = argv[2];
  const int cycles = std::atoi(argv[3]);
  const bool close_first = std::string(argv[4]) == "close";

  for (int cycle = 0; cycle < cycles; ++cycle) {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    {
      tg::TdjsonClient tdjson(io.get_executor(), library);
      std::mutex mutex;
      std::condition_variable prompted;
      int prompts = 0;
      tg::MtprotoPool::Options options;
      options.session.sessions_root = root;
      options.session.prompt = [&](const tg::AuthPrompt&, tg::AuthReply) {
        std::lock_guard lock(mutex);
        ++prompts;
        prompted.notify_all();
      };
      std::vector<floodgate::Credential<floodgate::MtprotoApp>> accounts;
      for (int n = 1; n <= 3; ++n) {
        accounts.push_back({fmt::format("account{}", n), {94575 + n, floodgate::Secret("a3406de8d171bb422bb6ddf3bbd800e2")}});
      }
      tg::MtprotoPool pool(tdjson, accounts, std::move(options));
      {
        std::unique_lock lock(mutex);
        if (!prompted.wait_for(lock, std::chrono::seconds(30), [&] { return prompts == 3; })) {
          fmt::print(stderr, "cycle {}: only {} of 3 sessions reached the login prompt\n", cycle, prompts);
          return 1;
        }
      }
      if (close_first) pool.async_close(asio::use_future).get();
    }
    work.reset();
    runner.join();
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "mtproto_teardown_cycle: {}\n", e.what());
  return 1;
}
