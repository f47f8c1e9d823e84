// A Kite user with callbacks: a MultiKeyTickerManager over two API keys
// streams from the embedded ticker simulator (real WebSockets on 127.0.0.1)
// and counts ticks in `on_ticks` until every instrument has ticked.
#include <floodgate/kite/multi_api_manager.hpp>
#include <floodgate/sim/kite_ticker_server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

int main() {
  floodgate::sim::KiteTickerServer server({.keys = {{"key-one", floodgate::Secret("token-one")},
                                                    {"key-two", floodgate::Secret("token-two")}},
                                           .ticks_per_second = 50});
  server.start();

  std::mutex mutex;
  std::condition_variable ticked;
  std::set<std::uint32_t> seen;

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  {
    floodgate::kite::MultiKeyTickerManager manager(
        io.get_executor(),
        {.keys = {{"API-1", {floodgate::Secret("key-one"), floodgate::Secret("token-one")}},
                  {"API-2", {floodgate::Secret("key-two"), floodgate::Secret("token-two")}}},
         .per_key = {.max_connections = 1,
                     .connection = {.url = server.url(), .allow_plain_ws = true},
                     .callbacks = {.on_ticks = [&](const floodgate::kite::TickBatch& ticks) {
                       std::lock_guard lock(mutex);
                       for (const auto& tick : ticks) seen.insert(tick.instrument_token);
                       ticked.notify_all();
                     }}}});
    manager.start();
    const std::vector<std::uint32_t> instruments{256265, 260105, 408065, 738561};
    manager.subscribe(instruments);

    std::unique_lock lock(mutex);
    const bool all = ticked.wait_for(lock, std::chrono::seconds(20), [&] { return seen.size() == instruments.size(); });
    lock.unlock();
    const auto stats = manager.stats();
    manager.stop();
    fmt::print("kite consumer: {} of {} instruments ticked over {} keys ({} ticks)\n", seen.size(),
               instruments.size(), stats.keys, stats.ticks);
    if (!all) return 1;
  }
  work.reset();
  io_thread.join();
  server.stop();
  fmt::print("kite consumer: ok\n");
  return 0;
}
