// floodgate/kite/ticker_connection.hpp: one self-healing Kite ticker WebSocket.
//
// `TickerConnection` keeps one connection to the Kite ticker
// (wss://ws.kite.trade?api_key=…&access_token=…, header `X-Kite-Version: 3`)
// alive for as long as it runs, and keeps its subscriptions true across
// reconnects:
//
// - Liveness: the ticker sends ticks or a one-byte heartbeat every second. When
//   no message at all arrives for `watchdog_timeout` (5 s), the connection is
//   taken for dead and replaced, even if TCP still looks open. WebSocket pings
//   go out while the server is quiet, so a dead peer is also found by TCP.
// - Reconnect: after a failure it dials again after a capped exponential
//   backoff with full jitter (see reconnect_backoff.hpp), and gives up after
//   `max_attempts` failures in a row. A connection that is accepted and then
//   lost before data flowed for `healthy_after` is a failure too: a server
//   that accepts and drops is backed off, not hammered.
// - "Connected" means data flows: the state turns `connected` at the first
//   message (tick or heartbeat) after the upgrade, not at the upgrade itself.
// - Subscriptions are the connection's *desired state*: on every (re)connect it
//   sends one subscribe message with every token and then one mode message per
//   mode, so all subscriptions come back in the mode they had.
// - A 403 on the upgrade means the key or access token is wrong or expired:
//   the connection stops (state `auth_failed`) instead of hammering the server,
//   until `update_access_token` gives it a new token (Kite's tokens expire
//   daily): then it connects again with every subscription in its mode.
//   A 429 means the key already holds all its connections; it is retried with
//   backoff and reported as errc::too_many_connections.
//
//   floodgate::kite::TickerConnection connection(io.get_executor(), "API-1#0", key, {}, {
//       .on_frame = [](const floodgate::kite::FrameView& frame) { for (auto p : frame) use(p.decode()); },
//   });
//   connection.start();
//   connection.subscribe({408065, 884737}, floodgate::kite::Mode::full);
//
// Every public method is thread-safe and returns at once; the work happens on
// the connection's own strand, where the handlers are called too. Handlers may
// still run briefly after `stop()` returns: capture what they use by value or
// shared pointer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>

#include <floodgate/kite/credentials.hpp>
#include <floodgate/kite/frame.hpp>
#include <floodgate/kite/messages.hpp>
#include <floodgate/kite/reconnect_backoff.hpp>
#include <floodgate/kite/tick.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace floodgate::kite {

/// Where and how to connect; everything except the credential.
struct ConnectionSettings {
  /// The ticker's address, without query; ws:// only with `allow_plain_ws`.
  std::string url = "wss://ws.kite.trade";
  /// TLS context for wss://; null means the system CA store.
  std::shared_ptr<boost::asio::ssl::context> tls;
  bool allow_plain_ws = false;
  /// DNS + TCP + TLS + upgrade.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  /// No message (ticks or heartbeats) for this long means the connection is dead.
  std::chrono::milliseconds watchdog_timeout{std::chrono::seconds(5)};
  ReconnectPolicy reconnect;
};

enum class ConnectionState : std::uint8_t {
  idle,                  ///< not started
  connecting,            ///< dialling, upgrading, or upgraded and waiting for the first data
  connected,             ///< open and data has arrived; subscriptions sent
  waiting_to_reconnect,  ///< lost or refused; backing off
  auth_failed,           ///< 403 on the upgrade: stopped until update_access_token
  gave_up,               ///< ReconnectPolicy::max_attempts failures in a row
  stopped,               ///< stop() was called
};

std::string_view to_string(ConnectionState state) noexcept;

/// True for the states in which a connection no longer tries by itself
/// (`auth_failed` and `gave_up` are left only through update_access_token).
constexpr bool is_final(ConnectionState state) noexcept {
  return state == ConnectionState::auth_failed || state == ConnectionState::gave_up ||
         state == ConnectionState::stopped;
}

struct ConnectionStats {
  ConnectionState state = ConnectionState::idle;
  std::size_t subscriptions = 0;        ///< instruments in the desired state
  std::uint64_t ticks = 0;              ///< packets received
  std::uint64_t frames = 0;             ///< binary tick frames received
  std::uint64_t heartbeats = 0;
  std::uint64_t text_messages = 0;
  std::uint64_t malformed_frames = 0;   ///< binary or text messages that failed to parse
  std::uint64_t unknown_packets = 0;    ///< packets of unknown length, skipped (the rest of their frame delivered)
  std::uint64_t connects = 0;           ///< successful upgrades, the first one included
  std::uint64_t reconnects = 0;         ///< successful upgrades after the first
  std::uint64_t failed_attempts = 0;    ///< connection attempts that failed
  std::uint64_t watchdog_timeouts = 0;  ///< connections given up as silent
  std::size_t failures_in_a_row = 0;    ///< failed attempts and unhealthy losses since the last healthy connection
  std::error_code last_error;           ///< why the last connection or attempt ended
  /// The HTTP status of the last failed attempt's reply (403, 429, ...); 0
  /// when it got no HTTP reply at all (refused, reset, timed out, bad TLS).
  int last_http_status = 0;
  /// How long the current connection has been up (since its first data); 0
  /// unless connected.
  std::chrono::milliseconds uptime{0};
};

class TickerConnection {
 public:
  struct Handlers {
    /// A binary frame with at least one readable packet (malformed frames
    /// deliver the packets before the fault and are counted and logged;
    /// packets of unknown length are skipped and counted).
    std::function<void(const FrameView&)> on_frame;
    /// A text message from the server: order updates, errors, notices.
    std::function<void(TextMessage&&)> on_text;
    /// Every state change; `reason` says why the connection left `connected`
    /// or why an attempt failed (empty otherwise).
    std::function<void(ConnectionState, std::error_code reason)> on_state;
    /// Before each pause: the failures in a row so far and the pause before
    /// the next attempt (gokiteconnect's OnReconnect(attempt, delay)).
    std::function<void(std::size_t failures, std::chrono::milliseconds delay)> on_reconnect;
  };

  /// `label` names the connection in logs and must not hold a secret (e.g.
  /// "API-1#0"). Throws floodgate::Error for an unusable URL or a key or token
  /// with characters that cannot go into a URL query.
  TickerConnection(boost::asio::any_io_executor executor, std::string label, KiteKey key,
                       ConnectionSettings settings, Handlers handlers);
  ~TickerConnection();  ///< stop()
  TickerConnection(const TickerConnection&) = delete;
  TickerConnection& operator=(const TickerConnection&) = delete;

  /// Connects, and keeps reconnecting until stop() or a final state.
  void start();
  /// Closes the connection for good: no reconnect, no handler call once the
  /// strand has processed it.
  void stop();

  /// Adds `tokens` in `mode` (or moves them to `mode`): one subscribe and one
  /// mode message, sent now if connected, else on connect (also kept while
  /// the connection has stopped trying, for when a new token revives it).
  void subscribe(std::vector<std::uint32_t> tokens, Mode mode);
  void unsubscribe(std::vector<std::uint32_t> tokens);
  /// Changes the mode of tokens already subscribed; others are ignored.
  void set_mode(std::vector<std::uint32_t> tokens, Mode mode);

  /// Replaces the access token (Kite's expire daily; gokiteconnect's
  /// SetAccessToken). It is read at each upgrade: an open connection keeps
  /// streaming, one waiting to reconnect dials now, and one that stopped
  /// trying (auth_failed, gave_up) starts again with its failures forgotten
  /// and every subscription in its mode. Throws floodgate::Error for a token
  /// that cannot go into a URL query.
  void update_access_token(Secret access_token);

  ConnectionStats stats() const;
  const std::string& label() const noexcept { return label_; }

 private:
  struct State;
  std::string label_;
  std::shared_ptr<State> state_;
};

}  // namespace floodgate::kite
