// Steady-state allocations of the Kite ticker path: a MultiKeyTickerManager
// streaming from the simulator over real WebSockets to a consumer must not
// allocate per tick once warmed up (pooled batches, recycled handler memory,
// no type-erased executor copies in the read path: the sockets read on a
// concrete io_context strand; the channel's buffer a ring allocated once when
// the channel is built, ticker_channel.hpp).
//
// Exactly zero in the window, in every mode. Before the read path was fixed
// this test counted 0.16 (ltp) and 1.4 (full) allocations per tick; with
// Asio's default std::deque as the channel's buffer, about 1 per 1000 ticks
// (a block for every few messages buffered while the consumer was busy);
// with 32 batches kept per connection, two allocations per batch whenever a
// loaded machine let the consumer fall more than 32 frames behind (CI saw it
// under ASan): the connections now keep as many as the channel can buffer,
// and the warm-up fills the channel once, so each connection's pool has served
// its share of a backlog as deep as the channel.
//
// A replaced global operator new counts allocations made on the client's
// threads (the manager's I/O threads, which also run the consumer) while a
// window is open; the simulator runs on its own threads and is not counted.
// Its own program because it replaces operator new.
#include <floodgate/core/secret.hpp>
#include <floodgate/kite/multi_api_manager.hpp>
#include <floodgate/sim/kite_ticker_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <new>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> counting{false};
std::atomic<std::uint64_t> allocations{0};
thread_local bool client_thread = false;

}  // namespace

// noinline: GCC otherwise sees the inlined malloc and free and warns about a
// mismatch that is not one.
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (client_thread && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) { return operator new(size); }
// The nothrow forms too (Asio's type-erased executors use them): under ASan,
// a form left to the sanitizer would pair its allocation with our free.
[[gnu::noinline]] void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (client_thread && counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size ? size : 1);
}
[[gnu::noinline]] void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace asio = boost::asio;
namespace kite = floodgate::kite;
using namespace std::chrono_literals;

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Receives until the channel closes. While `stalled` is set it does not
// receive, as a consumer that falls behind.
asio::awaitable<void> consume(kite::TickerChannel& channel, std::atomic<std::uint64_t>& ticks,
                              const std::atomic<bool>& stalled) {
  const auto take = [&](const kite::TickerMessage& message) {
    if (const kite::TickBatch* batch = message.ticks()) {
      std::uint64_t seen = 0;
      for (const kite::Tick& tick : *batch) seen += tick.instrument_token != 0;
      ticks.fetch_add(seen, std::memory_order_relaxed);
    }
  };
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (;;) {
    while (stalled.load()) {
      pause.expires_after(10ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    auto [ec, message] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    take(message);
    while (channel.try_receive([&](std::error_code, kite::TickerMessage next) { take(next); })) {
    }
  }
}

}  // namespace

TEST_CASE("kite manager delivers ticks with no allocation per tick in steady state", "[kite][ticker][alloc]") {
  const auto mode = GENERATE(kite::Mode::ltp, kite::Mode::quote, kite::Mode::full);
  INFO("mode " << kite::to_string(mode));
  floodgate::sim::KiteTickerServer server({.keys = {{"allockey", floodgate::Secret("alloc-token-1")}},
                                           .ticks_per_second = 50,
                                           .heartbeat_interval = 100ms});
  server.start();

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&io] {
      client_thread = true;
      io.run();
    });
  }
  {
    kite::MultiKeyTickerManager manager(
        io.get_executor(),
        {.keys = {{"API-1", {floodgate::Secret("allockey"), floodgate::Secret("alloc-token-1")}}},
         .per_key = {.max_connections = 3,
                     .max_instruments_per_connection = 100,
                     .connection = {.url = server.url(), .allow_plain_ws = true}},
         .default_mode = mode});
    std::atomic<std::uint64_t> ticks{0};
    std::atomic<bool> stalled{false};
    auto consumer = asio::co_spawn(io, consume(manager.channel(), ticks, stalled), asio::use_future);
    manager.start();
    std::vector<std::uint32_t> tokens;
    for (std::uint32_t i = 0; i < 300; ++i) tokens.push_back((5000 + i) << 8 | 1);
    manager.subscribe(tokens);

    // Warm up: every connection streams, pools and caches have grown. Then
    // the consumer stops until the channel is full and drops: the three
    // connections' pools have together served a backlog as deep as the
    // channel (each about a third), so a consumer that lags in the window (this
    // machine may be loaded) finds the batches it needs kept unless one
    // connection alone falls further behind than that.
    REQUIRE(eventually([&] { return manager.stats().connections_open == 3 && ticks.load() > 300 * 50; }, 20s));
    stalled = true;
    REQUIRE(eventually([&] { return manager.stats().messages_dropped > 0; }, 20s));
    stalled = false;
    const auto after_stall = ticks.load();
    REQUIRE(eventually([&] { return ticks.load() > after_stall + 300 * 50; }, 20s));
    std::this_thread::sleep_for(500ms);

    const auto before = ticks.load();
    counting = true;
    std::this_thread::sleep_for(1500ms);
    counting = false;
    const auto counted = ticks.load() - before;
    INFO("ticks in the window " << counted << ", allocations " << allocations.load());
    CHECK(counted > 300 * 20);  // the window saw a steady stream
    CHECK(allocations.load() == 0);
    allocations = 0;
    manager.stop();
    // The consumer reads the manager's channel on an I/O thread: it must be
    // done (woken by stop() with shut_down) before the manager is destroyed.
    REQUIRE(consumer.wait_for(20s) == std::future_status::ready);
  }
  work.reset();
  for (auto& thread : threads) thread.join();
}
