// bench_kite_end_to_end: ticks per second from the Kite ticker simulator,
// through real WebSockets on loopback and MultiApiKiteTickerManager, to a
// consumer reading the unified channel with co_await.
//
// The simulator streams one frame per connection every 1/rate seconds, each
// with one packet per subscribed instrument; the manager decodes every packet
// into a Tick and the consumer receives every message. Both run in this
// process, so on a small machine they share the cores: the figures are for
// the whole loop, simulator included.
//
//   bench_kite_end_to_end [--instruments 9000] [--keys 1] [--rate 10] [--seconds 10] [--mode quote] [--tls]
//
// Prints what the simulator sent, what the consumer received, drops and CPU
// time, per run.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "floodgate/kite/multi_api_manager.hpp"
#include "floodgate/sim/test_certificates.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/kite_ticker_server.hpp"

namespace asio = boost::asio;
namespace kite = floodgate::kite;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::size_t instruments = 9000;
  std::size_t keys = 1;
  double rate = 10;
  std::chrono::seconds seconds{10};
  kite::Mode mode = kite::Mode::quote;
  bool tls = false;
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
    if (i + 1 >= argc) throw floodgate::Error(fmt::format("{} needs a value", flag));
    const std::string_view value = argv[++i];
    if (flag == "--instruments") o.instruments = static_cast<std::size_t>(number(value));
    else if (flag == "--keys") o.keys = static_cast<std::size_t>(number(value));
    else if (flag == "--rate") o.rate = number(value);
    else if (flag == "--seconds") o.seconds = std::chrono::seconds(static_cast<long>(number(value)));
    else if (flag == "--mode") {
      const auto mode = kite::parse_mode(value);
      if (!mode) throw floodgate::Error("--mode is ltp, quote or full");
      o.mode = *mode;
    } else {
      throw floodgate::Error(fmt::format("unknown option '{}'", flag));
    }
  }
  return o;
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Waits for one message, then takes whatever else is already buffered without
// waiting: one wake-up per burst instead of one per tick.
asio::awaitable<void> consume(kite::TickerChannel& channel, std::atomic<std::uint64_t>& ticks) {
  const auto count = [&ticks](const kite::TickerMessage& message) {
    if (std::holds_alternative<kite::Tick>(message.message)) ticks.fetch_add(1, std::memory_order_relaxed);
  };
  for (;;) {
    auto [ec, message] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    count(message);
    while (channel.try_receive([&](boost::system::error_code, kite::TickerMessage next) { count(next); })) {
    }
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse(argc, argv);

  floodgate::sim::KiteTickerServerOptions sim{.ticks_per_second = options.rate, .heartbeat_interval = 1s};
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

  asio::io_context io;
  auto builder = kite::MultiApiKiteTickerManager::builder(io.get_executor());
  builder.url(server.url()).allow_plain_ws(!options.tls).default_mode(options.mode);
  if (certificates) builder.tls_context(floodgate::net::make_client_tls_context({.ca_pem = certificates->ca_pem}));
  for (std::size_t n = 1; n <= options.keys; ++n) {
    builder.add_api_key(fmt::format("API-{}", n), floodgate::Secret(fmt::format("benchkey{}", n)),
                        floodgate::Secret(fmt::format("bench-token-{}", n)));
  }
  auto manager = builder.build();
  std::atomic<std::uint64_t> received{0};
  asio::co_spawn(io, consume(manager->channel(), received), asio::detached);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&io] { io.run(); });

  std::vector<std::uint32_t> tokens;
  for (std::uint32_t i = 0; i < options.instruments; ++i) tokens.push_back((100'000 + i) << 8 | 1);
  manager->start();
  manager->subscribe_symbols(tokens);

  // Warm up until every instrument streams, then measure.
  const auto ready_by = Clock::now() + 20s;
  while (server.stats().ticks_sent < options.instruments * 2 && Clock::now() < ready_by) std::this_thread::sleep_for(50ms);
  const auto sent_before = server.stats().ticks_sent;
  const auto received_before = received.load();
  const auto dropped_before = manager->get_stats().messages_dropped;
  const double cpu_before = cpu_seconds();
  const auto start = Clock::now();
  std::this_thread::sleep_for(options.seconds);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpu_seconds() - cpu_before;
  const auto sent = server.stats().ticks_sent - sent_before;
  const auto got = received.load() - received_before;
  const auto stats = manager->get_stats();

  manager->stop();
  for (auto& thread : io_threads) thread.join();
  server.stop();

  fmt::print("instruments {} over {} key(s), {} connections, mode {}, {}, offered {} frames/s per connection\n",
             options.instruments, options.keys, stats.connections_open, kite::to_string(options.mode),
             options.tls ? "wss" : "ws", options.rate);
  fmt::print("  simulator sent   {:>12.0f} ticks/s\n", sent / wall);
  fmt::print("  consumer got     {:>12.0f} ticks/s ({:.1f} % of sent)\n", got / wall,
             sent ? 100.0 * static_cast<double>(got) / static_cast<double>(sent) : 0.0);
  fmt::print("  dropped          {:>12}\n", stats.messages_dropped - dropped_before);
  fmt::print("  process CPU      {:>12.2f} cores (simulator + client), {:.0f} ns CPU per tick\n", cpu / wall,
             got ? cpu * 1e9 / static_cast<double>(got) : 0.0);
  return 0;
} catch (const std::exception& error) {
  fmt::print(stderr, "bench_kite_end_to_end: {}\n", error.what());
  return 2;
}
