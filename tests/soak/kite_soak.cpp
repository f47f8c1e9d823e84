// A fault soak of the Kite managers against the Kite ticker simulator: a
// MultiKeyTickerManager over four keys (two connections each, so eight
// TickerManager connections) streams 120 instruments in mixed modes while
// faults are injected at random from a fixed seed, one every 250 ms on
// average: connections dropped, connections gone silent (open, sending
// nothing), malformed binary frames, odd text messages (server errors,
// garbage, deeply nested JSON), and keys that flap (every upgrade accepted and
// dropped at once, for 0.5 to 4 s). Between the faults the soak changes modes
// and unsubscribes and resubscribes instruments, as a user would. One key dies
// (403 on every upgrade) for the middle third of the run and is brought back
// with update_access_token.
//
//   kite_soak [--seconds N] [--seed S]      (defaults: 120 s, seed 1)
//
// It fails (exit 1, with the reason) unless, once the faults stop and the
// connections have had up to 30 s to settle:
//   - every subscription is back in its mode: the simulator's view of all
//     connections (every key's) holds each instrument asked for exactly once,
//     in the mode last asked for, and nothing else; no connection is left
//     silent; the manager has no instrument waiting for a place;
//   - ticks flow again: within 3 s every instrument gets ticks, all in its
//     mode, and instruments no longer subscribed get none;
//   - there was no reconnect storm: every pause a connection announced
//     (on_reconnect) is within the policy's [floor, cap], and the upgrades the
//     simulator saw are at most what the floor allows (each connection dialling
//     once per floor for the whole run, plus the first dials);
//   - outside the sanitizers (soak_common.hpp says why), resident memory grew
//     by at most 32 MiB from the end of the warm-up (a fifth of the run) to
//     the end. Leaks are LeakSanitizer's job in the ASan build.
// It prints one line of figures either way.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "floodgate/core/log.hpp"
#include "floodgate/kite/multi_api_manager.hpp"
#include "floodgate/sim/kite_ticker_server.hpp"

#include "soak_common.hpp"

namespace asio = boost::asio;
namespace kite = floodgate::kite;
using namespace std::chrono_literals;
using floodgate::Secret;
using floodgate::sim::KiteTickerServer;
using Clock = std::chrono::steady_clock;

namespace {

using floodgate::soak::kRssChecked;
using floodgate::soak::resident_bytes;

constexpr std::size_t kKeys = 4;
constexpr std::size_t kConnectionsPerKey = 2;
constexpr std::size_t kUniverse = 160;  // instruments the soak picks from
constexpr std::size_t kSubscribed = 120;  // subscribed at the start
constexpr std::size_t kDyingKey = 3;
constexpr kite::ReconnectPolicy kReconnect{.floor = 100ms, .cap = 1s, .healthy_after = 1s, .max_attempts = 0};

std::string key_id(std::size_t i) { return fmt::format("K{}", i); }
std::string api_key(std::size_t i) { return fmt::format("soakkey{}", i); }
Secret access_token(std::size_t i) { return Secret(fmt::format("soak-token-{}", i * 7919)); }

/// NSE equity tokens (segment 1): every mode has its own packet layout.
std::uint32_t instrument(std::size_t i) { return static_cast<std::uint32_t>((100000 + i) << 8 | 1); }

constexpr std::array<kite::Mode, 3> kModes = {kite::Mode::ltp, kite::Mode::quote, kite::Mode::full};

/// What the soak saw arrive, and how the connections paced their redials.
class Observed {
 public:
  void ticks(const kite::TickBatch& batch) {
    std::lock_guard lock(mutex_);
    for (const auto& tick : batch) {
      auto& seen = by_token_[tick.instrument_token];
      ++seen.count;
      seen.modes |= 1u << static_cast<unsigned>(tick.mode());
    }
  }
  void reconnect(std::chrono::milliseconds delay) {
    std::lock_guard lock(mutex_);
    ++reconnects_;
    shortest_pause_ = std::min(shortest_pause_, delay);
    longest_pause_ = std::max(longest_pause_, delay);
  }

  struct Seen {
    std::uint64_t count = 0;
    unsigned modes = 0;  ///< bit per Mode seen
  };
  /// Forgets the ticks so far (the reconnect figures stay).
  void clear_ticks() {
    std::lock_guard lock(mutex_);
    by_token_.clear();
  }
  std::map<std::uint32_t, Seen> ticks_seen() const {
    std::lock_guard lock(mutex_);
    return by_token_;
  }
  std::uint64_t reconnects() const {
    std::lock_guard lock(mutex_);
    return reconnects_;
  }
  std::chrono::milliseconds shortest_pause() const {
    std::lock_guard lock(mutex_);
    return shortest_pause_;
  }
  std::chrono::milliseconds longest_pause() const {
    std::lock_guard lock(mutex_);
    return longest_pause_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uint32_t, Seen> by_token_;
  std::uint64_t reconnects_ = 0;
  std::chrono::milliseconds shortest_pause_ = std::chrono::milliseconds::max();
  std::chrono::milliseconds longest_pause_{0};
};

/// The server's view of every key's connections: instrument -> modes it is
/// subscribed in (one entry per connection that holds it).
std::map<std::uint32_t, std::vector<kite::Mode>> server_view(const KiteTickerServer& server, std::size_t& silent) {
  std::map<std::uint32_t, std::vector<kite::Mode>> view;
  silent = 0;
  for (std::size_t k = 0; k < kKeys; ++k) {
    for (const auto& connection : server.connections(api_key(k))) {
      if (connection.silent) ++silent;
      for (const auto& [token, mode] : connection.subscriptions) view[token].push_back(mode);
    }
  }
  return view;
}

/// Why the server's view is not yet what was asked (empty: it is).
std::string settle_gap(const KiteTickerServer& server, const kite::MultiKeyTickerManager& manager,
                       const std::map<std::uint32_t, kite::Mode>& wanted) {
  std::size_t silent = 0;
  const auto view = server_view(server, silent);
  if (silent != 0) return fmt::format("{} connections still silent", silent);
  if (const auto unplaced = manager.stats().unplaced_instruments; unplaced != 0) {
    return fmt::format("{} instruments waiting for a place", unplaced);
  }
  for (const auto& [token, mode] : wanted) {
    const auto it = view.find(token);
    if (it == view.end()) return fmt::format("instrument {} is on no connection", token);
    if (it->second.size() != 1) return fmt::format("instrument {} is on {} connections", token, it->second.size());
    if (it->second.front() != mode) {
      return fmt::format("instrument {} streams in {} instead of {}", token, kite::to_string(it->second.front()),
                         kite::to_string(mode));
    }
  }
  for (const auto& [token, modes] : view) {
    if (!wanted.contains(token)) return fmt::format("instrument {} is subscribed but was not asked for", token);
  }
  return {};
}

/// The soak's side: what it asked the manager for, and the user actions.
class User {
 public:
  User(kite::MultiKeyTickerManager& manager, std::mt19937_64& rng) : manager_(manager), rng_(rng) {}

  void subscribe_initial() {
    std::map<kite::Mode, std::vector<std::uint32_t>> by_mode;
    for (std::size_t i = 0; i < kSubscribed; ++i) by_mode[kModes[i % kModes.size()]].push_back(instrument(i));
    for (const auto& [mode, tokens] : by_mode) subscribe(tokens, mode);
  }

  /// One random action: change the mode of a few instruments, or drop a few
  /// and subscribe a few (maybe the same ones again).
  void act() {
    const auto mode = kModes[std::uniform_int_distribution<std::size_t>(0, kModes.size() - 1)(rng_)];
    if (std::uniform_int_distribution<int>(0, 1)(rng_) == 0 && !wanted_.empty()) {
      const auto tokens = pick_subscribed(3);
      manager_.change_mode(tokens, mode);
      for (const auto token : tokens) wanted_[token] = mode;
      ++mode_changes_;
      return;
    }
    const auto gone = pick_subscribed(4);
    manager_.unsubscribe(gone);
    for (const auto token : gone) wanted_.erase(token);
    std::vector<std::uint32_t> fresh;
    for (int tries = 0; tries < 20 && fresh.size() < 4; ++tries) {
      const auto token = instrument(std::uniform_int_distribution<std::size_t>(0, kUniverse - 1)(rng_));
      if (!wanted_.contains(token) && std::find(fresh.begin(), fresh.end(), token) == fresh.end()) {
        fresh.push_back(token);
      }
    }
    subscribe(fresh, mode);
    ++resubscribes_;
  }

  const std::map<std::uint32_t, kite::Mode>& wanted() const { return wanted_; }
  std::uint64_t mode_changes() const { return mode_changes_; }
  std::uint64_t resubscribes() const { return resubscribes_; }
  std::uint64_t refused() const { return refused_; }

 private:
  void subscribe(const std::vector<std::uint32_t>& tokens, kite::Mode mode) {
    try {
      manager_.subscribe(tokens, mode);
      for (const auto token : tokens) wanted_[token] = mode;
    } catch (const kite::CapacityError&) {
      ++refused_;  // refused whole: nothing of it is asked for
    }
  }

  std::vector<std::uint32_t> pick_subscribed(std::size_t count) {
    std::vector<std::uint32_t> all;
    for (const auto& [token, mode] : wanted_) all.push_back(token);
    std::shuffle(all.begin(), all.end(), rng_);
    all.resize(std::min(count, all.size()));
    return all;
  }

  kite::MultiKeyTickerManager& manager_;
  std::mt19937_64& rng_;
  std::map<std::uint32_t, kite::Mode> wanted_;
  std::uint64_t mode_changes_ = 0, resubscribes_ = 0, refused_ = 0;
};

/// Text messages a server might send, from plausible to hostile.
std::string odd_text(std::mt19937_64& rng) {
  switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
    case 0:
      return R"({"type":"error","data":"Invalid mode"})";
    case 1:
      return R"({"type":"order","data":{"order_id":17,"status":)";  // cut off
    case 2:
      return std::string(5000, '[');  // deep and unterminated
    case 3:
      return R"({"type":"message","data":null,"extra":[1,2,{"x":1e999}]})";
    default:
      return "\xff\xfe not json at all";
  }
}

struct Faults {
  std::uint64_t drops = 0, silences = 0, malformed = 0, texts = 0, flaps = 0, user_actions = 0;
  std::uint64_t total() const { return drops + silences + malformed + texts + flaps + user_actions; }
};

}  // namespace

int main(int argc, char** argv) {
  const auto args = floodgate::soak::parse_args("kite_soak", argc, argv);
  floodgate::set_log_level(floodgate::LogLevel::error);  // drops and malformed frames handled as designed are not news
  std::mt19937_64 rng(args.seed);

  floodgate::sim::KiteTickerServerOptions server_options;
  for (std::size_t k = 0; k < kKeys; ++k) server_options.keys.push_back({api_key(k), access_token(k)});
  server_options.ticks_per_second = 10;
  server_options.heartbeat_interval = 200ms;
  KiteTickerServer server(std::move(server_options));
  server.start();

  Observed observed;
  kite::MultiKeyTickerManagerOptions options;
  for (std::size_t k = 0; k < kKeys; ++k) {
    options.keys.push_back({key_id(k), {Secret(api_key(k)), access_token(k)}});
  }
  options.per_key.max_connections = kConnectionsPerKey;
  options.per_key.max_instruments_per_connection = 60;
  options.per_key.connection.url = server.url();
  options.per_key.connection.allow_plain_ws = true;
  options.per_key.connection.connect_timeout = 2s;
  options.per_key.connection.watchdog_timeout = 1s;  // 5 heartbeats
  options.per_key.connection.reconnect = kReconnect;
  options.per_key.callbacks.on_ticks = [&](const kite::TickBatch& batch) { observed.ticks(batch); };
  options.per_key.callbacks.on_reconnect = [&](const kite::MessageSource&, std::size_t, std::chrono::milliseconds delay) {
    observed.reconnect(delay);
  };
  options.health_check_interval = 100ms;
  options.failover_after = 3s;

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<std::thread> io_threads;
  for (int i = 0; i < 2; ++i) io_threads.emplace_back([&] { io.run(); });

  std::vector<std::string> failures;
  Faults faults;
  std::size_t rss_warm = 0, rss_end = 0, tokens_ticking = 0;
  std::chrono::milliseconds settle_time{0};
  kite::ManagerStats manager_stats;
  std::uint64_t mode_changes = 0, resubscribes = 0, refused = 0;
  {
    kite::MultiKeyTickerManager manager(io.get_executor(), std::move(options));
    manager.start();
    User user(manager, rng);
    user.subscribe_initial();

    const auto start = Clock::now();
    const auto end = start + args.duration;
    std::array<std::optional<Clock::time_point>, kKeys> flapping_until;
    bool warm = false, key_died = false, key_back = false;
    auto next_fault = start;
    std::exponential_distribution<double> fault_gap(1.0 / 0.25);  // a fault every 250 ms on average
    for (auto now = start; now < end; now = Clock::now()) {
      const auto elapsed = now - start;
      if (!warm && elapsed >= args.duration / 5) {
        warm = true;
        rss_warm = resident_bytes();
      }
      if (!key_died && elapsed >= args.duration / 3) {
        key_died = true;
        server.set_key_enabled(api_key(kDyingKey), false);  // open connections dropped, 403 from now on
      }
      if (!key_back && elapsed >= args.duration * 2 / 3) {
        key_back = true;
        server.set_key_enabled(api_key(kDyingKey), true);
        manager.update_access_token(key_id(kDyingKey), access_token(kDyingKey));
      }
      for (std::size_t k = 0; k < kKeys; ++k) {
        if (flapping_until[k] && now >= *flapping_until[k]) {
          server.set_drop_on_accept(api_key(k), false);
          flapping_until[k].reset();
        }
      }
      if (now >= next_fault) {
        next_fault += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(fault_gap(rng)));
        const auto key = std::uniform_int_distribution<std::size_t>(0, kKeys - 1)(rng);
        const int pick = std::uniform_int_distribution<int>(0, 99)(rng);
        if (pick < 20) {
          faults.drops += server.drop_connections(api_key(key), 1) > 0;
        } else if (pick < 32) {
          faults.silences += server.silence_connections(api_key(key), 1) > 0;
        } else if (pick < 50) {
          const auto kind = static_cast<kite::FrameError::Kind>(std::uniform_int_distribution<int>(0, 3)(rng));
          faults.malformed += server.send_malformed_frame(api_key(key), kind) > 0;
        } else if (pick < 60) {
          faults.texts += server.send_text_message(api_key(key), odd_text(rng)) > 0;
        } else if (pick < 68) {
          if (!flapping_until[key]) {
            const auto length = std::uniform_int_distribution<int>(500, 4000)(rng);
            flapping_until[key] = now + std::chrono::milliseconds(length);
            server.set_drop_on_accept(api_key(key), true);
            server.drop_connections(api_key(key));  // they dial again, into the flapping
            ++faults.flaps;
          }
        } else {
          user.act();
          ++faults.user_actions;
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    for (std::size_t k = 0; k < kKeys; ++k) server.set_drop_on_accept(api_key(k), false);
    rss_end = resident_bytes();

    // Settle: the faults have stopped; every subscription must come back in
    // its mode within 30 s (a watchdog, a capped backoff pause, a failover).
    const auto settle_start = Clock::now();
    std::string gap = settle_gap(server, manager, user.wanted());
    while (!gap.empty() && Clock::now() - settle_start < 30s) {
      std::this_thread::sleep_for(50ms);
      gap = settle_gap(server, manager, user.wanted());
    }
    settle_time = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - settle_start);
    if (!gap.empty()) failures.push_back(fmt::format("not settled 30 s after the faults stopped: {}", gap));

    // Ticks flow again, each instrument in its mode, nothing unasked for.
    // Frames already on the wire before the settling may still carry the old
    // mode: wait for one tick period after the view settled, then watch.
    std::this_thread::sleep_for(300ms);
    observed.clear_ticks();
    const auto& wanted = user.wanted();
    const auto all_ticking = [&] {
      const auto seen = observed.ticks_seen();
      return std::all_of(wanted.begin(), wanted.end(), [&](const auto& entry) { return seen.contains(entry.first); });
    };
    const auto watch_start = Clock::now();
    while (!all_ticking() && Clock::now() - watch_start < 3s) std::this_thread::sleep_for(50ms);
    const auto seen = observed.ticks_seen();
    for (const auto& [token, mode] : wanted) {
      const auto it = seen.find(token);
      if (it == seen.end()) {
        failures.push_back(fmt::format("instrument {} got no tick within 3 s after settling", token));
        continue;
      }
      ++tokens_ticking;
      if (it->second.modes != 1u << static_cast<unsigned>(mode)) {
        failures.push_back(fmt::format("instrument {} ticks in modes {:#x}, asked for {}", token, it->second.modes,
                                       kite::to_string(mode)));
      }
    }
    for (const auto& [token, ticks] : seen) {
      if (!wanted.contains(token)) failures.push_back(fmt::format("instrument {} ticks but is not subscribed", token));
    }
    manager_stats = manager.stats();
    mode_changes = user.mode_changes();
    resubscribes = user.resubscribes();
    refused = user.refused();
    manager.stop();
  }
  work.reset();
  for (auto& thread : io_threads) thread.join();

  // No reconnect storm: pauses within the policy, and no more upgrades than
  // one per connection per floor over the whole run (plus the first dials).
  std::uint64_t upgrades = 0;
  for (std::size_t k = 0; k < kKeys; ++k) {
    const auto stats = server.key_stats(api_key(k));
    upgrades += stats.connections_accepted + stats.rejected_auth + stats.rejected_over_limit;
  }
  server.stop();
  const auto run = args.duration + settle_time + 4s;
  const std::uint64_t upgrade_bound =
      kKeys * kConnectionsPerKey * (static_cast<std::uint64_t>(run / kReconnect.floor) + 2);
  if (upgrades > upgrade_bound) {
    failures.push_back(fmt::format("{} upgrades: more than the backoff floor allows ({})", upgrades, upgrade_bound));
  }
  if (observed.reconnects() > 0 &&
      (observed.shortest_pause() < kReconnect.floor || observed.longest_pause() > kReconnect.cap)) {
    failures.push_back(fmt::format("reconnect pauses from {} to {} ms, outside the policy's {} to {} ms",
                                   observed.shortest_pause().count(), observed.longest_pause().count(),
                                   kReconnect.floor.count(), kReconnect.cap.count()));
  }
  constexpr std::size_t kRssSlack = 32u << 20;
  if (kRssChecked && rss_warm != 0 && rss_end > rss_warm + kRssSlack) {
    failures.push_back(fmt::format("resident memory grew from {} to {} MiB after the warm-up", rss_warm >> 20,
                                   rss_end >> 20));
  }

  fmt::print("kite_soak: seed {}, {} s: {} faults ({} drops, {} silences, {} malformed frames, {} text messages, "
             "{} flaps, {} user actions: {} mode changes, {} resubscriptions, {} refused), {} reconnects, "
             "{} upgrades (bound {}), {} failovers moving {} instruments, {} ticks; settled in {} ms, "
             "{} instruments ticking in their modes; RSS {} -> {} MiB{}\n",
             args.seed, args.duration.count(), faults.total(), faults.drops, faults.silences, faults.malformed,
             faults.texts, faults.flaps, faults.user_actions, mode_changes, resubscribes, refused,
             observed.reconnects(), upgrades, upgrade_bound, manager_stats.failovers, manager_stats.instruments_moved,
             manager_stats.ticks, settle_time.count(), tokens_ticking, rss_warm >> 20, rss_end >> 20,
             kRssChecked ? "" : " (not checked under a sanitizer)");
  for (const auto& failure : failures) fmt::print(stderr, "kite_soak: FAILED: {}\n", failure);
  if (!failures.empty()) return 1;
  fmt::print("kite_soak: passed\n");
  return 0;
}
