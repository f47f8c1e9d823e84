// floodgate/kite/multi_api_manager.hpp: many Kite API keys behind one ticker.
//
// One API key streams at most 3 x 3000 instruments. `MultiKeyTickerManager`
// spreads instruments over several keys, merges every tick into one channel
// tagged with the key's id, and keeps the instruments flowing when a key dies:
//
//   floodgate::kite::MultiKeyTickerManager manager(io.get_executor(), {
//       .keys = floodgate::kite_keys_from(floodgate::Environment::from_process()),  // or {{"API-1", {key, token}}, ...}
//       .per_key = {.max_connections = 3, .max_instruments_per_connection = 3000},
//       .default_mode = floodgate::kite::Mode::quote,
//   });
//   manager.start();
//   manager.subscribe(instruments);                      // spread over keys and connections
//   for (;;) {
//     auto [ec, msg] = co_await manager.channel().async_receive(asio::as_tuple(asio::use_awaitable));
//     if (ec) break;                                       // stop() closes the channels
//     if (const auto* ticks = msg.ticks()) for (const auto& tick : *ticks) on_tick(msg.api_key_id(), tick);
//   }
//
// Placement. With `round_robin`, `subscribe` places each batch on the
// keys with the most spare capacity, evenly; with `manual`, the caller names
// the key with `subscribe_on`, and `subscribe` is an
// error. Either way a batch that does not fit is refused whole with a
// `CapacityError`.
//
// Failover (round_robin only). When a key's access is denied, its connections
// stop trying, or it has had no live connection for `failover_after`, its
// instruments move to keys that are serving and have room; what fits nowhere
// waits (`ManagerStats::unplaced_instruments`) and is placed as soon as room
// appears. The stats count every move. An expired access token (403) calls
// `on_auth_failed(id)`; `update_access_token(id, token)` brings the key back.
//
// Keys at run time. `add_key` brings a key in (started if the manager is):
// new subscriptions and instruments waiting for room go to it; instruments on
// other keys stay where they are. `remove_key` moves the key's instruments,
// in their modes, onto the other keys that can take new ones (the same
// placement as `subscribe`), then closes the key's connections. It is all or
// nothing: when they do not fit, or it is the last key, nothing changes and
// it throws (CapacityError names the numbers), so no instrument is ever
// silently parked by a removal.
//
// Channels. The unified channel carries every message; per-connection channels
// (opt in with `per_connection_channels`) carry one connection's. They are Asio
// concurrent channels of `void(std::error_code, TickerMessage)`
// (ticker_channel.hpp): `async_receive` with a callback, a future or
// `co_await`; their buffers are allocated once, at construction.
// A slow consumer never stalls a socket: each channel buffers
// `channel_capacity` messages, and past that new messages are dropped and
// counted (`messages_dropped`) or, with `conflate_ticks`, held back as the
// latest tick per instrument until the consumer catches up (an instrument then
// skips intermediate ticks but never shows a stale price).
//
// `stop()` is final: connections close, nothing reconnects, the channels are
// closed (pending and later receives complete with `floodgate::errc::shut_down`;
// messages still buffered are discarded). As with TickerManager, a callback
// may still run briefly after `stop()` returns, and on a multi-threaded
// io_context one already running may finish after the destructor returned:
// capture what callbacks use by value or shared pointer. Every method is
// thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <floodgate/core/credential.hpp>
#include <floodgate/core/secret.hpp>
#include <floodgate/kite/credentials.hpp>
#include <floodgate/kite/ticker_channel.hpp>
#include <floodgate/kite/ticker_manager.hpp>
#include <floodgate/kite/ticker_message.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate::kite {

enum class DistributionStrategy : std::uint8_t {
  round_robin,  ///< the manager places instruments and fails them over
  manual,       ///< the caller places instruments with subscribe_on
};

struct ManagerStats {
  std::size_t keys = 0;
  std::size_t keys_serving = 0;  ///< live or degraded
  std::size_t connections_open = 0;
  std::size_t instruments = 0;       ///< placed on a key
  std::size_t unplaced_instruments = 0;  ///< waiting for room after a failover
  std::uint64_t ticks = 0;           ///< decoded from the sockets
  std::uint64_t messages_delivered = 0;  ///< accepted by the unified channel's buffer (one per frame or text)
  std::uint64_t messages_dropped = 0;    ///< refused by a full channel, all channels
  std::uint64_t ticks_conflated = 0;     ///< replaced by a newer tick before delivery
  std::uint64_t unknown_packets = 0;     ///< packets of unknown length skipped, all keys
  std::uint64_t reconnects = 0;
  std::uint64_t failovers = 0;       ///< keys whose instruments were moved
  std::uint64_t instruments_moved = 0;   ///< instruments moved by failover
  std::chrono::milliseconds uptime{0};  ///< since start(); 0 before
};

/// Everything the manager needs; designated initializers read well:
///   {.keys = {{"API-1", {key, token}}}, .per_key = {.connection = {.url = url}}, .conflate_ticks = true}
struct MultiKeyTickerManagerOptions {
  /// The keys: `id` names a key everywhere (stats, logs, messages); the API
  /// key and access token are secrets and never shown. `weight` and
  /// `enabled` are not used (every key streams). kite_keys_from() reads them
  /// from the environment.
  std::vector<Credential<KiteKey>> keys;
  /// For every key: connections (1 … 3), instruments per connection (1 …
  /// 3000), the connection settings (url, TLS, timeouts, reconnect policy),
  /// on_auth_failed and the official clients' callbacks (ticker_callbacks.hpp),
  /// which run beside the channels.
  TickerManagerOptions per_key;
  DistributionStrategy distribution = DistributionStrategy::round_robin;
  /// The mode of subscriptions that name none.
  Mode default_mode = Mode::quote;
  /// Periodic checks that fail over keys down for longer than failover_after
  /// and place waiting instruments. Without them only access denial and
  /// exhausted reconnects trigger a failover.
  bool health_monitoring = true;
  std::chrono::milliseconds health_check_interval{std::chrono::seconds(5)};
  /// How long a key may have no live connection before its instruments move.
  std::chrono::milliseconds failover_after{std::chrono::seconds(30)};
  /// Messages (frames or text messages) buffered per channel. A buffered
  /// frame holds its ticks: at most capacity x the largest frame (3000 ticks
  /// of about 400 bytes) per channel. The buffer's slots themselves are
  /// allocated when the manager is built, so delivery never allocates.
  std::size_t channel_capacity = 256;
  /// Keep the latest tick per instrument instead of dropping when a channel
  /// is full.
  bool conflate_ticks = false;
  /// One more channel per connection.
  bool per_connection_channels = false;
};

class MultiKeyTickerManager {
 public:
  /// Throws floodgate::Error for no keys, empty or duplicate ids, limits
  /// outside Kite's, or a key or token that cannot go into a URL query.
  MultiKeyTickerManager(boost::asio::any_io_executor executor, const MultiKeyTickerManagerOptions& options);

  ~MultiKeyTickerManager();  ///< stop()
  MultiKeyTickerManager(const MultiKeyTickerManager&) = delete;
  MultiKeyTickerManager& operator=(const MultiKeyTickerManager&) = delete;

  /// Opens every key's connections and starts the health checks.
  void start();
  /// Stops for good; see above.
  void stop();

  /// Subscribes in `mode` (the default mode when absent). round_robin only:
  /// throws floodgate::Error in manual mode, CapacityError when it does not fit.
  void subscribe(std::span<const std::uint32_t> tokens, std::optional<Mode> mode = {});
  /// Subscribes on the named key. Throws floodgate::Error for an unknown id or
  /// a token already on another key, CapacityError when it does not fit.
  void subscribe_on(std::string_view api_key_id, std::span<const std::uint32_t> tokens,
                                std::optional<Mode> mode = {});
  /// Returns how many of `tokens` were subscribed (or waiting to be placed).
  std::size_t unsubscribe(std::span<const std::uint32_t> tokens);
  /// Returns how many of `tokens` changed mode.
  std::size_t change_mode(std::span<const std::uint32_t> tokens, Mode mode);

  /// Adds a key (started when the manager is). Throws floodgate::Error for an
  /// empty or duplicate id, a key or token that cannot go into a URL query,
  /// or after stop().
  void add_key(Credential<KiteKey> credential);
  /// Removes a key: its instruments move to the other keys with their modes,
  /// then its connections close (messages it decoded just before may still
  /// arrive). Throws floodgate::Error for an unknown id, the last key, or
  /// after stop(); CapacityError when the other keys cannot take its
  /// instruments. Either way nothing changed.
  void remove_key(std::string_view api_key_id);

  /// Replaces one key's access token (Kite's expire daily; see
  /// TickerManager::update_access_token). A key that failed with a 403
  /// comes back, takes new and waiting instruments again, and those that
  /// moved away stay where they are. Throws floodgate::Error for an unknown
  /// id or a token that cannot go into a URL query.
  void update_access_token(std::string_view api_key_id, const Secret& access_token);

  /// Every message of every key.
  TickerChannel& channel() noexcept;
  /// One connection's messages. Throws floodgate::Error unless the options
  /// enable per-connection channels and the id and index exist.
  TickerChannel& connection_channel(std::string_view api_key_id, std::size_t connection);

  ManagerStats stats() const;
  /// Throws floodgate::Error for an unknown id.
  KeyStats key_stats(std::string_view api_key_id) const;
  std::vector<KeyStats> all_key_stats() const;
  /// Every key as a health snapshot (see health_snapshot): the status view
  /// and the Prometheus page of core/format.hpp, like a pool's:
  ///   floodgate::status_table(manager->snapshot());
  ///   floodgate::prometheus_text(manager->snapshot(), {.pool = "kite"});
  std::vector<HealthSnapshot> snapshot() const;
  /// The tokens each key streams, by id, sorted.
  std::map<std::string, std::vector<std::uint32_t>> distribution() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::kite
