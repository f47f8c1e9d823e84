// floodgate/kite/multi_api_manager.hpp: many Kite API keys behind one ticker.
//
// One API key streams at most 3 x 3000 instruments. `MultiApiKiteTickerManager`
// spreads instruments over several keys, merges every tick into one channel
// tagged with the key's id, and keeps the instruments flowing when a key dies:
//
//   auto manager = floodgate::kite::MultiApiKiteTickerManager::builder(io.get_executor())
//                      .add_api_key("API-1", key1, token1)
//                      .add_api_key("API-2", key2, token2)
//                      .max_connections_per_api(3)
//                      .max_symbols_per_connection(3000)
//                      .distribution_strategy(floodgate::kite::DistributionStrategy::round_robin)
//                      .default_mode(floodgate::kite::Mode::quote)
//                      .enable_health_monitoring(true)
//                      .health_check_interval(std::chrono::seconds(5))
//                      .build();
//   manager->start();
//   manager->subscribe_symbols(tokens);                    // spread over keys and connections
//   for (;;) {
//     auto [ec, msg] = co_await manager->channel().async_receive(asio::as_tuple(asio::use_awaitable));
//     if (ec) break;                                         // stop() closes the channels
//     if (auto* tick = std::get_if<floodgate::kite::Tick>(&msg.message)) on_tick(msg.api_key_id, *tick);
//   }
//
// Placement. With `round_robin`, `subscribe_symbols` places each batch on the
// keys with the most spare capacity, evenly; with `manual`, the caller names
// the key with `subscribe_symbols_to_api`, and `subscribe_symbols` is an
// error. Either way a batch that does not fit is refused whole with a
// `CapacityError`.
//
// Failover (round_robin only). When a key's access is denied, its connections
// stop trying, or it has had no live connection for `failover_after`, its
// instruments move to keys that are serving and have room; what fits nowhere
// waits (`ManagerStats::unplaced_symbols`) and is placed as soon as room
// appears. The stats count every move. An expired access token (403) calls
// `on_auth_failed(id)`; `update_access_token(id, token)` brings the key back.
//
// Channels. The unified channel carries every message; per-connection channels
// (opt in with `per_connection_channels`) carry one connection's. They are Asio
// concurrent channels: `async_receive` with a callback, a future or `co_await`.
// A slow consumer never stalls a socket: each channel buffers
// `channel_capacity` messages, and past that new messages are dropped and
// counted (`messages_dropped`) or, with `conflate_ticks`, held back as the
// latest tick per instrument until the consumer catches up (an instrument then
// skips intermediate ticks but never shows a stale price).
//
// `stop()` is final: connections close, nothing reconnects, the channels are
// closed (pending and later receives complete with
// `asio::experimental::error::channel_closed`; messages still buffered are
// discarded). Every method is thread-safe.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/system/error_code.hpp>

#include <floodgate/core/secret.hpp>
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

using TickerChannel =
    boost::asio::experimental::concurrent_channel<void(boost::system::error_code, TickerMessage)>;

enum class DistributionStrategy : std::uint8_t {
  round_robin,  ///< the manager places instruments and fails them over
  manual,       ///< the caller places instruments with subscribe_symbols_to_api
};

struct ManagerStats {
  std::size_t api_keys = 0;
  std::size_t api_keys_serving = 0;  ///< live or degraded
  std::size_t connections_open = 0;
  std::size_t symbols = 0;           ///< placed on a key
  std::size_t unplaced_symbols = 0;  ///< waiting for room after a failover
  std::uint64_t ticks = 0;           ///< decoded from the sockets
  std::uint64_t messages_delivered = 0;  ///< accepted by the unified channel's buffer (one per frame or text)
  std::uint64_t messages_dropped = 0;    ///< refused by a full channel, all channels
  std::uint64_t ticks_conflated = 0;     ///< replaced by a newer tick before delivery
  std::uint64_t unknown_packets = 0;     ///< packets of unknown length skipped, all keys
  std::uint64_t reconnects = 0;
  std::uint64_t failovers = 0;       ///< keys whose instruments were moved
  std::uint64_t symbols_moved = 0;   ///< instruments moved by failover
  std::chrono::milliseconds uptime{0};  ///< since start(); 0 before
};

class MultiApiKiteTickerManager {
 public:
  class Builder;
  static Builder builder(boost::asio::any_io_executor executor);

  ~MultiApiKiteTickerManager();  ///< stop()
  MultiApiKiteTickerManager(const MultiApiKiteTickerManager&) = delete;
  MultiApiKiteTickerManager& operator=(const MultiApiKiteTickerManager&) = delete;

  /// Opens every key's connections and starts the health checks.
  void start();
  /// Stops for good; see above.
  void stop();

  /// Subscribes in `mode` (the default mode when absent). round_robin only:
  /// throws floodgate::Error in manual mode, CapacityError when it does not fit.
  void subscribe_symbols(std::span<const std::uint32_t> tokens, std::optional<Mode> mode = {});
  /// Subscribes on the named key. Throws floodgate::Error for an unknown id or
  /// a token already on another key, CapacityError when it does not fit.
  void subscribe_symbols_to_api(std::string_view api_key_id, std::span<const std::uint32_t> tokens,
                                std::optional<Mode> mode = {});
  /// Returns how many of `tokens` were subscribed (or waiting to be placed).
  std::size_t unsubscribe_symbols(std::span<const std::uint32_t> tokens);
  /// Returns how many of `tokens` changed mode.
  std::size_t change_mode(std::span<const std::uint32_t> tokens, Mode mode);

  /// Replaces one key's access token (Kite's expire daily; see
  /// KiteTickerManager::update_access_token). A key that failed with a 403
  /// comes back, takes new and waiting instruments again, and those that
  /// moved away stay where they are. Throws floodgate::Error for an unknown
  /// id or a token that cannot go into a URL query.
  void update_access_token(std::string_view api_key_id, Secret access_token);

  /// Every message of every key.
  TickerChannel& channel() noexcept;
  /// One connection's messages. Throws floodgate::Error unless the builder
  /// enabled per-connection channels and the id and index exist.
  TickerChannel& connection_channel(std::string_view api_key_id, std::size_t connection);

  ManagerStats get_stats() const;
  /// Throws floodgate::Error for an unknown id.
  ApiStats get_api_stats(std::string_view api_key_id) const;
  std::vector<ApiStats> get_all_api_stats() const;
  /// Every key as a health snapshot (see health_snapshot): the status view
  /// and the Prometheus page of core/format.hpp, like a pool's:
  ///   floodgate::status_table(manager->snapshot());
  ///   floodgate::prometheus_text(manager->snapshot(), {.pool = "kite"});
  std::vector<HealthSnapshot> snapshot() const;
  /// The tokens each key streams, by id, sorted.
  std::map<std::string, std::vector<std::uint32_t>> get_symbol_distribution() const;

  struct Impl;

 private:
  explicit MultiApiKiteTickerManager(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

class MultiApiKiteTickerManager::Builder {
 public:
  explicit Builder(boost::asio::any_io_executor executor);

  /// `id` names the key everywhere (stats, logs, messages); the key and token
  /// are secrets and never shown.
  Builder& add_api_key(std::string id, Secret api_key, Secret access_token);
  /// Connections per key, 1 … 3 (default 3).
  Builder& max_connections_per_api(std::size_t count) { return set(options_.max_connections, count); }
  /// Instruments per connection, 1 … 3000 (default 3000).
  Builder& max_symbols_per_connection(std::size_t count) { return set(options_.max_symbols_per_connection, count); }
  /// DNS + TCP + TLS + upgrade (default 10 s).
  Builder& connection_timeout(std::chrono::milliseconds timeout) {
    return set(options_.connection.connect_timeout, timeout);
  }
  /// Default round_robin.
  Builder& distribution_strategy(DistributionStrategy strategy) { return set(strategy_, strategy); }
  /// The mode of subscriptions that name none (default quote).
  Builder& default_mode(Mode mode) { return set(default_mode_, mode); }
  /// Periodic checks that fail over keys down for longer than failover_after
  /// and place waiting instruments (default on). Without them only access
  /// denial and exhausted reconnects trigger a failover.
  Builder& enable_health_monitoring(bool enabled) { return set(health_monitoring_, enabled); }
  /// Default 5 s.
  Builder& health_check_interval(std::chrono::milliseconds interval) { return set(health_check_interval_, interval); }
  /// How long a key may have no live connection before its instruments move
  /// (default 30 s).
  Builder& failover_after(std::chrono::milliseconds down_for) { return set(failover_after_, down_for); }

  // Beyond the usual set:

  /// Default wss://ws.kite.trade.
  Builder& url(std::string ticker_url) { return set(options_.connection.url, std::move(ticker_url)); }
  /// The TLS context for wss:// (default: the system CA store).
  Builder& tls_context(std::shared_ptr<boost::asio::ssl::context> tls) {
    return set(options_.connection.tls, std::move(tls));
  }
  /// Permit ws:// URLs (local simulators).
  Builder& allow_plain_ws(bool allowed) { return set(options_.connection.allow_plain_ws, allowed); }
  /// No message for this long means a connection is dead (default 5 s).
  Builder& watchdog_timeout(std::chrono::milliseconds timeout) {
    return set(options_.connection.watchdog_timeout, timeout);
  }
  Builder& reconnect_policy(ReconnectPolicy policy) { return set(options_.connection.reconnect, policy); }
  /// Called with a key's id when its access token is refused (HTTP 403),
  /// once until that key's next update_access_token: run the login flow and
  /// pass the new token to update_access_token. Runs on a connection's
  /// strand, no lock held.
  Builder& on_auth_failed(std::function<void(const std::string& key_id)> handler) {
    return set(options_.on_auth_failed, std::move(handler));
  }
  /// The official clients' events, for every key (ticker_callbacks.hpp);
  /// they run beside the channels.
  Builder& callbacks(TickerCallbacks handlers) { return set(options_.callbacks, std::move(handlers)); }
  /// Messages (frames or text messages) buffered per channel (default 256).
  /// A buffered frame holds its ticks: at most capacity x the largest frame
  /// (3000 ticks of about 400 bytes) per channel.
  Builder& channel_capacity(std::size_t messages) { return set(channel_capacity_, messages); }
  /// Keep the latest tick per instrument instead of dropping when a channel
  /// is full (default off).
  Builder& conflate_ticks(bool enabled) { return set(conflate_, enabled); }
  /// One more channel per connection (default off).
  Builder& per_connection_channels(bool enabled) { return set(per_connection_channels_, enabled); }

  /// Throws floodgate::Error for no keys, duplicate ids, or limits outside
  /// Kite's.
  std::unique_ptr<MultiApiKiteTickerManager> build();

 private:
  struct Key {
    std::string id;
    KiteKey key;
  };
  template <class T, class V>
  Builder& set(T& member, V&& value) {
    member = std::forward<V>(value);
    return *this;
  }

  boost::asio::any_io_executor executor_;
  std::vector<Key> keys_;
  KiteTickerManagerOptions options_;
  DistributionStrategy strategy_ = DistributionStrategy::round_robin;
  Mode default_mode_ = Mode::quote;
  bool health_monitoring_ = true;
  std::chrono::milliseconds health_check_interval_{std::chrono::seconds(5)};
  std::chrono::milliseconds failover_after_{std::chrono::seconds(30)};
  std::size_t channel_capacity_ = 256;
  bool conflate_ = false;
  bool per_connection_channels_ = false;
};

}  // namespace floodgate::kite
