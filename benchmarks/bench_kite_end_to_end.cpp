// bench_kite_end_to_end: ticks per second and tick latency from the Kite
// ticker simulator, through real WebSockets on loopback, to a consumer.
//
// Two readers on the same socket load (same simulator settings, same
// instruments, same connections):
//
// - `--reader manager` (default): MultiKeyTickerManager, the consumer
//   reading the unified channel with co_await and draining the buffer with
//   try_receive after each wake-up. By default manager and consumer share one
//   thread, the topology docs/kite-ticker.md recommends; `--io-threads N`
//   runs the io_context on N threads, `--consumer-thread` moves the consumer
//   to an io_context and thread of its own (both measured for comparison).
// - `--reader plain`: one thread per connection, a blocking Beast WebSocket
//   read loop that decodes every packet and consumes it in place: the floor
//   any delivery mechanism is measured against.
//
// The simulator stamps every packet with the steady clock just before it
// writes the frame (KiteTickerServerOptions::stamp_send_time); the consumer's
// tick latency is its own clock at delivery minus that stamp. Everything runs
// in this process, so on a small machine simulator and client share the
// cores: the figures are for the whole loop.
//
// Allocations are counted by a replaced global operator new on the client's
// threads only (the manager's I/O threads and the consumer, or the plain
// readers), not the simulator's, during the measured window.
//
//   bench_kite_end_to_end [--reader manager|plain] [--instruments 9000] [--keys 1] [--rate 10]
//                         [--seconds 10] [--mode quote] [--tls] [--io-threads 1] [--consumer-thread]
//
// --rate is frames per second per connection; a rate above what the loop can
// carry saturates it (the simulator then skips frames for a slow client).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "floodgate/kite/messages.hpp"
#include "floodgate/kite/multi_api_manager.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/kite_ticker_server.hpp"
#include "floodgate/sim/test_certificates.hpp"

namespace {

// ---- allocation counting -------------------------------------------------------

std::atomic<bool> measuring{false};
std::atomic<std::uint64_t> allocations{0};
thread_local bool client_thread = false;  // set on the threads whose allocations count

void note_allocation() noexcept {
  if (client_thread && measuring.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

// noinline: GCC otherwise sees the inlined malloc and free and warns about a
// mismatch that is not one. The aligned forms are left to the library (the
// client allocates nothing over-aligned).
[[gnu::noinline]] void* operator new(std::size_t size) {
  note_allocation();
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) { return operator new(size); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace kite = floodgate::kite;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  bool plain_reader = false;
  std::size_t instruments = 9000;
  std::size_t keys = 1;
  double rate = 10;
  std::chrono::seconds seconds{10};
  kite::Mode mode = kite::Mode::quote;
  bool tls = false;
  int io_threads = 1;  ///< the manager's io_context threads (docs/kite-ticker.md, "Threads")
  bool consumer_thread = false;  ///< the consumer on an io_context and thread of its own
};

double number(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw floodgate::Error(fmt::format("not a number: '{}'", text));
  }
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--tls") {
      o.tls = true;
      continue;
    }
    if (flag == "--consumer-thread") {
      o.consumer_thread = true;
      continue;
    }
    if (i + 1 >= argc) throw floodgate::Error(fmt::format("{} needs a value", flag));
    const std::string_view value = argv[++i];
    if (flag == "--reader") {
      if (value != "manager" && value != "plain") throw floodgate::Error("--reader is manager or plain");
      o.plain_reader = value == "plain";
    } else if (flag == "--instruments") o.instruments = static_cast<std::size_t>(number(value));
    else if (flag == "--io-threads") o.io_threads = static_cast<int>(number(value));
    else if (flag == "--keys") o.keys = static_cast<std::size_t>(number(value));
    else if (flag == "--rate") o.rate = number(value);
    else if (flag == "--seconds") o.seconds = std::chrono::seconds(static_cast<long>(number(value)));
    else if (flag == "--mode") {
      const auto mode = kite::parse_mode(value);
      if (!mode || *mode == kite::Mode::ltp) throw floodgate::Error("--mode is quote or full (ltp carries no stamp)");
      o.mode = *mode;
    } else {
      throw floodgate::Error(fmt::format("unknown option '{}'", flag));
    }
  }
  if (o.plain_reader && o.tls) throw floodgate::Error("--reader plain reads ws:// only");
  if (o.plain_reader && o.consumer_thread) throw floodgate::Error("--consumer-thread is for --reader manager");
  return o;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Tick latencies in 1 µs buckets up to 1 s (the last bucket takes the rest).
// Allocated once, before the window; one per consuming thread.
class Latencies {
 public:
  Latencies() : buckets_(1'000'001, 0) {}

  void add(Clock::time_point now, const kite::Tick& tick) {
    if (!measuring.load(std::memory_order_relaxed)) return;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                            now - floodgate::sim::KiteTickerServer::sent_at(tick)).count();
    ++buckets_[static_cast<std::size_t>(std::clamp<std::int64_t>(micros, 0, 1'000'000))];
    ++count_;
  }
  void merge(const Latencies& other) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
  }
  std::uint64_t count() const noexcept { return count_; }
  double percentile_ms(double p) const {
    const auto wanted = static_cast<std::uint64_t>(p * static_cast<double>(count_));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen > wanted) return static_cast<double>(i) / 1000.0;
    }
    return 1000.0;
  }

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
};

struct Received {
  std::atomic<std::uint64_t> ticks{0};
  std::atomic<std::uint64_t> frames{0};
};

// ---- the manager's consumer ---------------------------------------------------

asio::awaitable<void> consume(kite::TickerChannel& channel, Received& received, Latencies& latencies) {
  client_thread = true;
  const auto take = [&](const kite::TickerMessage& message) {
    if (const kite::TickBatch* ticks = message.ticks()) {
      const auto now = Clock::now();
      for (const kite::Tick& tick : *ticks) latencies.add(now, tick);
      received.ticks.fetch_add(ticks->size(), std::memory_order_relaxed);
    }
  };
  for (;;) {
    auto [ec, message] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    take(message);
    while (channel.try_receive([&](std::error_code, kite::TickerMessage next) { take(next); })) {
    }
  }
}

// ---- the plain reader ----------------------------------------------------------

// One blocking connection: subscribe, then read and decode until the socket
// closes.
void plain_reader(const floodgate::sim::KiteTickerServer& server, std::string api_key,
                  std::vector<std::uint32_t> tokens, kite::Mode mode, Received& received, Latencies& latencies) try {
  client_thread = true;
  asio::io_context io;
  beast::websocket::stream<asio::ip::tcp::socket> ws(io);
  asio::ip::tcp::resolver resolver(io);
  asio::connect(ws.next_layer(), resolver.resolve("127.0.0.1", std::to_string(server.port())));
  const std::string url = server.url_for(api_key);
  ws.handshake(fmt::format("127.0.0.1:{}", server.port()), url.substr(url.find('/', 5)));
  ws.text(true);
  ws.write(asio::buffer(kite::subscribe_message(tokens)));
  ws.write(asio::buffer(kite::mode_message(mode, tokens)));
  beast::flat_buffer buffer;
  for (;;) {
    buffer.clear();
    ws.read(buffer);
    if (!ws.got_binary() || buffer.size() < 2) continue;
    const kite::FrameView frame(std::span(static_cast<const std::byte*>(buffer.data().data()), buffer.size()));
    std::uint64_t count = 0;
    for (const kite::PacketView packet : frame) {
      const kite::Tick tick = packet.decode();
      latencies.add(Clock::now(), tick);
      ++count;
    }
    received.frames.fetch_add(1, std::memory_order_relaxed);
    received.ticks.fetch_add(count, std::memory_order_relaxed);
  }
} catch (const std::exception&) {
  // The server closed the connection at the end of the run.
}

std::uint64_t manager_frames(const kite::MultiKeyTickerManager& manager) {
  std::uint64_t frames = 0;
  for (const auto& api : manager.all_key_stats()) {
    for (const auto& connection : api.connections) frames += connection.frames;
  }
  return frames;
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse(argc, argv);

  floodgate::sim::KiteTickerServerOptions sim{
      .ticks_per_second = options.rate, .heartbeat_interval = 1s, .stamp_send_time = true};
  std::optional<floodgate::sim::TestCertificates> certificates;
  if (options.tls) {
    certificates = floodgate::sim::TestCertificates::generate();
    sim.tls = floodgate::net::make_server_tls_context(certificates->server_chain_pem, certificates->server_key_pem);
  }
  for (std::size_t n = 1; n <= options.keys; ++n) {
    sim.keys.push_back({fmt::format("benchkey{}", n), floodgate::Secret(fmt::format("bench-token-{}", n))});
  }
  floodgate::sim::KiteTickerServer server(sim);
  server.start();

  std::vector<std::uint32_t> tokens;
  for (std::uint32_t i = 0; i < options.instruments; ++i) tokens.push_back((100'000 + i) << 8 | 1);

  Received received;
  std::vector<std::unique_ptr<Latencies>> latencies;
  std::vector<std::thread> threads;
  asio::io_context io(options.io_threads);
  asio::io_context consumer_io(1);
  std::unique_ptr<kite::MultiKeyTickerManager> manager;
  std::size_t connections = 0;

  if (options.plain_reader) {
    // The same placement as the manager's: 3000 instruments per connection,
    // 3 connections per key.
    constexpr std::size_t per_connection = 3000;
    for (std::size_t first = 0, n = 0; first < tokens.size(); first += per_connection, ++n) {
      const auto last = std::min(tokens.size(), first + per_connection);
      latencies.push_back(std::make_unique<Latencies>());
      threads.emplace_back(plain_reader, std::cref(server), fmt::format("benchkey{}", 1 + n / 3 % options.keys),
                           std::vector<std::uint32_t>(tokens.begin() + static_cast<std::ptrdiff_t>(first),
                                                      tokens.begin() + static_cast<std::ptrdiff_t>(last)),
                           options.mode, std::ref(received), std::ref(*latencies.back()));
      ++connections;
    }
  } else {
    kite::MultiKeyTickerManagerOptions manager_options{
        .per_key = {.connection = {.url = server.url(), .allow_plain_ws = !options.tls}},
        .default_mode = options.mode,
    };
    if (certificates) {
      manager_options.per_key.connection.tls =
          floodgate::net::make_client_tls_context({.ca_pem = certificates->ca_pem});
    }
    for (std::size_t n = 1; n <= options.keys; ++n) {
      manager_options.keys.push_back({fmt::format("API-{}", n),
                                      {floodgate::Secret(fmt::format("benchkey{}", n)),
                                       floodgate::Secret(fmt::format("bench-token-{}", n))}});
    }
    manager = std::make_unique<kite::MultiKeyTickerManager>(io.get_executor(), std::move(manager_options));
    latencies.push_back(std::make_unique<Latencies>());
    asio::co_spawn(options.consumer_thread ? consumer_io : io, consume(manager->channel(), received, *latencies.back()),
                   asio::detached);
    if (options.consumer_thread) {
      threads.emplace_back([&consumer_io] {
        client_thread = true;
        consumer_io.run();
      });
    }
    for (int i = 0; i < options.io_threads; ++i) {
      threads.emplace_back([&io] {
        client_thread = true;
        io.run();
      });
    }
    manager->start();
    manager->subscribe(tokens);
  }
  const auto frames_now = [&] { return manager ? manager_frames(*manager) : received.frames.load(); };

  // Warm up until every instrument streams, then measure.
  const auto ready_by = Clock::now() + 20s;
  while (server.stats().ticks_sent < options.instruments * 2 && Clock::now() < ready_by) std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);
  const auto sent_before = server.stats().ticks_sent;
  const auto skipped_before = server.stats().frames_skipped;
  const auto received_before = received.ticks.load();
  const auto frames_before = frames_now();
  const auto dropped_before = manager ? manager->stats().messages_dropped : 0;
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  measuring = true;
  std::this_thread::sleep_for(options.seconds);
  measuring = false;
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_before;
  const auto sent = server.stats().ticks_sent - sent_before;
  const auto skipped = server.stats().frames_skipped - skipped_before;
  const auto got = received.ticks.load() - received_before;
  const auto frames = frames_now() - frames_before;
  const auto dropped = manager ? manager->stats().messages_dropped - dropped_before : 0;

  if (manager) {
    connections = manager->stats().connections_open;
    manager->stop();
  }
  server.stop();  // ends the plain readers' reads too
  for (auto& thread : threads) thread.join();
  for (std::size_t i = 1; i < latencies.size(); ++i) latencies[0]->merge(*latencies[i]);
  const Latencies& latency = *latencies[0];

  fmt::print("reader {}: {} instruments over {} key(s), {} connections, mode {}, {}, offered {} frames/s per connection\n",
             options.plain_reader ? "plain"
                                 : fmt::format("manager ({} I/O threads{})", options.io_threads,
                                               options.consumer_thread ? ", consumer on its own thread" : ""), options.instruments, options.keys, connections,
             kite::to_string(options.mode), options.tls ? "wss" : "ws", options.rate);
  fmt::print("  simulator sent   {:>12.0f} ticks/s ({} frames skipped for a slow client)\n", sent / wall, skipped);
  fmt::print("  consumer got     {:>12.0f} ticks/s ({:.1f} % of sent), {:.0f} frames/s\n", got / wall,
             sent ? 100.0 * static_cast<double>(got) / static_cast<double>(sent) : 0.0, frames / wall);
  fmt::print("  dropped          {:>12}\n", dropped);
  fmt::print("  tick latency     p50 {:.3f} ms, p99 {:.3f} ms, p99.9 {:.3f} ms ({} ticks)\n", latency.percentile_ms(0.5),
             latency.percentile_ms(0.99), latency.percentile_ms(0.999), latency.count());
  fmt::print("  allocations      {:>12.7f} per tick ({} in the window, client threads)\n",
             got ? static_cast<double>(allocations.load()) / static_cast<double>(got) : 0.0, allocations.load());
  fmt::print("  frames received  {:>12} in the window (divide futex calls by this)\n", frames);
  fmt::print("  process CPU      {:>12.2f} cores (simulator + client), {:.0f} ns CPU per tick\n", cpu / wall,
             got ? cpu * 1e9 / static_cast<double>(got) : 0.0);
  return 0;
} catch (const std::exception& error) {
  fmt::print(stderr, "bench_kite_end_to_end: {}\n", error.what());
  return 2;
}
