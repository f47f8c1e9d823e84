// multi_api_demo: thousands of instruments streamed over several Kite API keys,
// surviving a lost connection and a dead key.
//
// With no KITE_API_KEY_N / KITE_ACCESS_TOKEN_N in the environment it starts the
// Kite ticker simulator (wss:// with a certificate generated at run time, so
// TLS verification is real) with 3 keys, subscribes 6000 instruments spread
// over keys and connections, and then, while a live table shows each key:
//   - at 30 % of the run, drops one connection of API-1: it reconnects and
//     re-subscribes everything it had;
//   - at 50 %, revokes API-2: its upgrade is refused (403), and its
//     instruments fail over to the other keys.
// It ends after --duration seconds with a summary that checks every
// instrument is still streaming.
//
// With credentials in the environment it connects to wss://ws.kite.trade and
// subscribes the instrument tokens given with --tokens.
//
//   multi_api_demo [--duration S] [--instruments N] [--rate R] [--tokens T1,T2,...]
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "floodgate/kite/credentials.hpp"
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
  std::chrono::seconds duration{20};
  std::size_t instruments = 6000;
  double rate = 5;  // simulator tick frames per second per connection
  std::vector<std::uint32_t> tokens;
};

std::size_t parse_number(std::string_view text, std::string_view flag) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) {
    throw floodgate::Error(fmt::format("{} expects a number, not '{}'", flag, text));
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help") {
      fmt::print("usage: multi_api_demo [--duration S] [--instruments N] [--rate R] [--tokens T1,T2,...]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) throw floodgate::Error(fmt::format("{} needs a value", flag));
    const std::string_view value = argv[++i];
    if (flag == "--duration") {
      options.duration = std::chrono::seconds(parse_number(value, flag));
    } else if (flag == "--instruments") {
      options.instruments = parse_number(value, flag);
    } else if (flag == "--rate") {
      options.rate = static_cast<double>(parse_number(value, flag));
    } else if (flag == "--tokens") {
      for (std::string_view rest = value; !rest.empty();) {
        const auto comma = rest.find(',');
        options.tokens.push_back(static_cast<std::uint32_t>(parse_number(rest.substr(0, comma), flag)));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      }
    } else {
      throw floodgate::Error(fmt::format("unknown option '{}' (try --help)", flag));
    }
  }
  if (options.duration.count() == 0 || options.rate <= 0) throw floodgate::Error("--duration and --rate must be > 0");
  return options;
}

// What the consumer saw: ticks per key, and when each instrument last ticked.
class Consumer {
 public:
  void on_tick(const std::string& key_id, std::uint32_t token) {
    std::lock_guard lock(mutex_);
    ++ticks_by_key_[key_id];
    last_tick_[token] = Clock::now();
  }
  std::map<std::string, std::uint64_t> ticks_by_key() const {
    std::lock_guard lock(mutex_);
    return ticks_by_key_;
  }
  // How many of `tokens` ticked within the last `window`.
  std::size_t streaming(const std::vector<std::uint32_t>& tokens, Clock::duration window) const {
    std::lock_guard lock(mutex_);
    const auto since = Clock::now() - window;
    std::size_t count = 0;
    for (const auto token : tokens) {
      if (const auto it = last_tick_.find(token); it != last_tick_.end() && it->second >= since) ++count;
    }
    return count;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> ticks_by_key_;
  std::unordered_map<std::uint32_t, Clock::time_point> last_tick_;
};

asio::awaitable<void> consume(kite::TickerChannel& channel, Consumer& consumer) {
  for (;;) {
    auto [ec, message] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // floodgate::errc::shut_down: closed by stop()
    if (const auto* ticks = message.ticks()) {
      for (const kite::Tick& tick : *ticks) consumer.on_tick(message.api_key_id(), tick.instrument_token);
    }
  }
}

void print_table(const kite::MultiKeyTickerManager& manager, std::map<std::string, std::uint64_t>& last_ticks,
                 double seconds, double elapsed) {
  fmt::print("\n t={:5.1f}s  {:<7} {:<9} {:>5} {:>11} {:>9} {:>10} {:>9} {:>9}\n", elapsed, "key", "health", "conns",
             "instruments", "ticks/s", "reconnects", "moved in", "moved out");
  for (const auto& api : manager.all_key_stats()) {
    const auto open = std::count_if(api.connections.begin(), api.connections.end(), [](const auto& c) {
      return c.state == kite::ConnectionState::connected;
    });
    const double rate = static_cast<double>(api.ticks - last_ticks[api.id]) / seconds;
    last_ticks[api.id] = api.ticks;
    fmt::print("           {:<7} {:<9} {:>2}/{:<2} {:>11} {:>9.0f} {:>10} {:>9} {:>9}\n", api.id,
               kite::to_string(api.health), open, api.connections.size(), api.instruments, rate, api.reconnects,
               api.instruments_moved_in, api.instruments_moved_out);
  }
  const auto stats = manager.stats();
  fmt::print("           unplaced {}  dropped {}  failovers {}  moved {}\n", stats.unplaced_instruments,
             stats.messages_dropped, stats.failovers, stats.instruments_moved);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options options = parse_options(argc, argv);
  const auto real_keys = floodgate::kite_keys_from(floodgate::Environment::from_process());
  const bool simulated = real_keys.empty();

  asio::io_context io(1);
  kite::MultiKeyTickerManagerOptions manager_options{
      .keys = real_keys,
      .per_key = {.max_connections = 3, .max_instruments_per_connection = 3000},
      .default_mode = kite::Mode::quote,
  };

  std::optional<floodgate::sim::KiteTickerServer> server;
  std::vector<std::uint32_t> tokens = options.tokens;
  std::vector<std::string> sim_keys;
  if (simulated) {
    const auto certificates = floodgate::sim::TestCertificates::generate();
    floodgate::sim::KiteTickerServerOptions sim{
        .ticks_per_second = options.rate,
        .heartbeat_interval = 1s,
        .tls = floodgate::net::make_server_tls_context(certificates.server_chain_pem, certificates.server_key_pem)};
    for (int n = 1; n <= 3; ++n) {
      sim_keys.push_back(fmt::format("demokey{}", n));
      sim.keys.push_back({sim_keys.back(), floodgate::Secret(fmt::format("demo-access-token-{}", n))});
    }
    server.emplace(std::move(sim));
    server->start();
    manager_options.per_key.connection = {
        .url = server->url(),
        .tls = floodgate::net::make_client_tls_context({.ca_pem = certificates.ca_pem}),
        .reconnect = {.floor = 200ms, .cap = 2s, .max_attempts = 20},
    };
    manager_options.health_check_interval = 500ms;
    manager_options.failover_after = 3s;
    for (int n = 1; n <= 3; ++n) {
      manager_options.keys.push_back({fmt::format("API-{}", n),
                                      {floodgate::Secret(sim_keys[n - 1]),
                                       floodgate::Secret(fmt::format("demo-access-token-{}", n))}});
    }
    if (tokens.empty()) {
      for (std::uint32_t i = 0; i < options.instruments; ++i) tokens.push_back((100'000 + i) << 8 | 1);  // NSE tokens
    }
    fmt::print("simulator: {} with 3 API keys, {} tick frames/s per connection\n", server->url(), options.rate);
  } else {
    if (tokens.empty()) throw floodgate::Error("with real credentials, name the instruments: --tokens T1,T2,...");
    fmt::print("connecting {} API keys to wss://ws.kite.trade\n", real_keys.size());
  }

  auto manager = std::make_unique<kite::MultiKeyTickerManager>(io.get_executor(), std::move(manager_options));
  Consumer consumer;
  asio::co_spawn(io, consume(manager->channel(), consumer), asio::detached);
  // One thread for the sockets and the consumer, as docs/kite-ticker.md
  // recommends: a second one would only add handoffs between the two.
  std::thread io_thread([&io] { io.run(); });

  manager->start();
  manager->subscribe(tokens);
  fmt::print("subscribed {} instruments; distribution:", tokens.size());
  for (const auto& [id, on_key] : manager->distribution()) fmt::print(" {} {}", id, on_key.size());
  fmt::print("\n");

  const auto start = Clock::now();
  const auto end = start + options.duration;
  bool dropped = false, revoked = false;
  std::map<std::string, std::uint64_t> last_ticks;
  auto last_print = start;
  while (Clock::now() < end) {
    std::this_thread::sleep_for(1s);
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (simulated && !dropped && now >= start + options.duration * 3 / 10) {
      dropped = true;
      server->drop_connections(sim_keys[0], 1);
      fmt::print("\n>>> dropped one connection of API-1 (it reconnects and re-subscribes)\n");
    }
    if (simulated && !revoked && now >= start + options.duration / 2) {
      revoked = true;
      server->set_key_enabled(sim_keys[1], false);
      fmt::print("\n>>> revoked API-2 (403 on reconnect; its instruments fail over)\n");
    }
    print_table(*manager, last_ticks, std::chrono::duration<double>(now - last_print).count(), elapsed);
    last_print = now;
  }

  const std::size_t streaming = consumer.streaming(tokens, 3s);
  const auto stats = manager->stats();
  manager->stop();
  io_thread.join();
  if (server) server->stop();

  fmt::print("\nsummary after {} s\n", options.duration.count());
  std::uint64_t total = 0;
  const auto by_key = consumer.ticks_by_key();
  for (const auto& [id, ticks] : by_key) total += ticks;
  for (const auto& [id, ticks] : by_key) {
    fmt::print("  {:<6} {:>10} ticks ({:4.1f} %)\n", id, ticks, total ? 100.0 * static_cast<double>(ticks) / total : 0);
  }
  fmt::print("  ticks received {}, dropped {}, reconnects {}, failovers {}, instruments moved {}, unplaced {}\n",
             total, stats.messages_dropped, stats.reconnects, stats.failovers, stats.instruments_moved,
             stats.unplaced_instruments);
  fmt::print("  instruments streaming in the last 3 s: {} of {}{}\n", streaming, tokens.size(),
             streaming == tokens.size() ? " (all)" : "  <-- some instruments stopped streaming");
  return streaming == tokens.size() ? 0 : 1;
} catch (const std::exception& error) {
  fmt::print(stderr, "multi_api_demo: {}\n", error.what());
  return 2;
}
