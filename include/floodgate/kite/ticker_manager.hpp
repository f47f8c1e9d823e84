// floodgate/kite/ticker_manager.hpp: all the ticker connections of one API key.
//
// Kite lets one API key hold 3 ticker connections of up to 3000 instruments
// each. `TickerManager` opens those connections when started, spreads
// subscriptions over them (each new batch goes to the least loaded
// connections, one subscribe message per connection), and decodes each
// received frame into one `TickBatch` (pooled storage, no allocation per
// frame in steady state) for the message handler and `callbacks.on_ticks`:
//
//   floodgate::kite::TickerManager manager(io.get_executor(), "API-1", key,
//       {.callbacks = {.on_ticks = [](const floodgate::kite::TickBatch& ticks) { ... }}});
//   manager.start();
//   manager.subscribe(tokens, floodgate::kite::Mode::full);   // throws CapacityError when full
//
// Subscribing is all or nothing: a batch that does not fit in the spare
// capacity is refused whole with a `CapacityError` that names the numbers.
// Tokens already subscribed only change mode. A connection that stops trying
// (gave up, or refused) hands its instruments to the others. A refused access
// token calls `options.on_auth_failed`; `update_access_token` brings the key back.
//
// `MultiKeyTickerManager` (multi_api_manager.hpp) puts several of these
// together; use this class directly when one key is all you have. Every method
// is thread-safe; the handlers run on the connections' strands, concurrently
// for different connections.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <floodgate/kite/credentials.hpp>
#include <floodgate/core/error.hpp>
#include <floodgate/core/health.hpp>
#include <floodgate/kite/ticker_callbacks.hpp>
#include <floodgate/kite/ticker_connection.hpp>
#include <floodgate/kite/ticker_message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate::kite {

/// Kite's limits per API key.
inline constexpr std::size_t kite_max_connections_per_key = 3;
inline constexpr std::size_t kite_max_instruments_per_connection = 3000;

struct TickerManagerOptions {
  std::size_t max_connections = kite_max_connections_per_key;                ///< 1 … 3
  std::size_t max_instruments_per_connection = kite_max_instruments_per_connection;  ///< 1 … 3000
  ConnectionSettings connection;
  /// Tick batches each connection keeps, tick storage and all, for reuse
  /// once the consumer lets them go. A backlog no deeper than one already
  /// served is then served again without allocating; past this many, extra
  /// batches are allocated and freed. Memory kept: up to this many of the
  /// connection's largest frames. MultiKeyTickerManager keeps at least its
  /// channel capacity, the deepest backlog its channel can hold.
  std::size_t batches_kept = 32;
  /// Called with the key's id when the server refuses the key's access token
  /// (HTTP 403), once until the next update_access_token: the place to run
  /// the login flow and hand the new token to update_access_token. Runs on a
  /// connection's strand, no lock held.
  std::function<void(const std::string& key_id)> on_auth_failed;
  /// The official clients' events (ticker_callbacks.hpp).
  TickerCallbacks callbacks;
};

/// A subscription refused because it does not fit. The message names the
/// numbers: "API-1 cannot take 9500 more instruments: 3 connections x 3000 =
/// 9000, 1200 subscribed, 7800 free".
class CapacityError : public Error {
 public:
  CapacityError(const std::string& message, std::size_t requested, std::size_t available)
      : Error(message), requested_(requested), available_(available) {}
  std::size_t requested() const noexcept { return requested_; }
  std::size_t available() const noexcept { return available_; }

 private:
  std::size_t requested_;
  std::size_t available_;
};

/// How an API key is doing, from its connections' states.
enum class KeyHealth : std::uint8_t {
  idle,      ///< not started
  live,      ///< every connection is connected
  degraded,  ///< some connections are connected, others are reconnecting
  down,      ///< no connection is connected; they are still trying
  failed,    ///< every connection stopped trying: access denied or attempts used up
  stopped,   ///< stop() was called
};

std::string_view to_string(KeyHealth health) noexcept;

/// True when ticks can flow: at least one connection is up.
constexpr bool is_serving(KeyHealth health) noexcept {
  return health == KeyHealth::live || health == KeyHealth::degraded;
}

struct KeyStats {
  std::string id;
  KeyHealth health = KeyHealth::idle;
  std::size_t instruments = 0;
  std::size_t capacity = 0;  ///< connections x instruments per connection
  std::uint64_t ticks = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t malformed_frames = 0;
  std::uint64_t unknown_packets = 0;  ///< packets of unknown length skipped
  std::uint64_t failed_attempts = 0;
  std::uint64_t watchdog_timeouts = 0;
  std::uint64_t instruments_moved_out = 0;  ///< taken away by failover (multi-API manager)
  std::uint64_t instruments_moved_in = 0;   ///< received from a failed key (multi-API manager)
  std::chrono::milliseconds uptime{0};  ///< since start(); 0 before
  /// Per connection: its state, instruments (the distribution), uptime and counters.
  std::vector<ConnectionStats> connections;
};

/// A key's stats as a credential's health snapshot, so Kite keys show in
/// floodgate::status_table and floodgate::prometheus_text like any pool's
/// credentials (core/format.hpp): live and degraded keys are ready, a key
/// that stopped trying is disabled with the reason, a key that is down (all
/// its connections reconnecting) is resting until now. Requests count
/// connection attempts, successes the upgrades, failures the failed attempts.
HealthSnapshot health_snapshot(const KeyStats& stats);

class TickerManager {
 public:
  /// One message per received frame (a TickBatch) or server text message.
  using MessageHandler = std::function<void(TickerMessage&&)>;
  using HealthHandler = std::function<void(KeyHealth)>;

  /// Throws floodgate::Error for limits outside Kite's (see the options) and
  /// for what TickerConnection refuses. `id` names the key in stats and
  /// logs and must not be the key itself.
  TickerManager(const boost::asio::any_io_executor& executor, std::string id, const KiteKey& key,
                    TickerManagerOptions options, MessageHandler on_message = {}, HealthHandler on_health = {});
  ~TickerManager();  ///< stop()
  TickerManager(const TickerManager&) = delete;
  TickerManager& operator=(const TickerManager&) = delete;

  /// Opens every connection.
  void start();
  /// Stops every connection for good. The connections stop on their strands:
  /// a callback (message handler, health handler, `callbacks.*`) may still
  /// run briefly after `stop()` returns, and on a multi-threaded io_context
  /// one already running may finish after the destructor has returned (none
  /// starts after it). Capture what callbacks use by value or shared pointer.
  void stop();

  /// Subscribes `tokens` in `mode`, all or nothing; throws CapacityError when
  /// the new ones do not fit, or floodgate::Error after stop().
  void subscribe(std::span<const std::uint32_t> tokens, Mode mode);
  /// Returns how many of `tokens` were subscribed (and now are not).
  std::size_t unsubscribe(std::span<const std::uint32_t> tokens);
  /// Returns how many of `tokens` were subscribed (and changed mode).
  std::size_t change_mode(std::span<const std::uint32_t> tokens, Mode mode);
  /// Replaces the key's access token on every connection (Kite's expire
  /// daily). Open connections keep streaming; the others connect again with
  /// the new token, a key that was `failed` by a 403 included, with every
  /// subscription in its mode. Throws floodgate::Error for a token that
  /// cannot go into a URL query.
  void update_access_token(const Secret& access_token);

  /// Unsubscribes everything and returns what was subscribed, with modes:
  /// how a failed key's instruments are handed to another key.
  std::vector<std::pair<std::uint32_t, Mode>> release_all();

  bool is_subscribed(std::uint32_t token) const;
  std::size_t instrument_count() const;
  std::size_t capacity() const noexcept;
  std::size_t spare_capacity() const { return capacity() - instrument_count(); }
  KeyHealth health() const;
  KeyStats stats() const;
  /// The tokens on each connection, sorted.
  std::vector<std::vector<std::uint32_t>> distribution() const;
  const std::string& id() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::kite
