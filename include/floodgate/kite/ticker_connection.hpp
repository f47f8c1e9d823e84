// floodgate/kite/ticker_connection.hpp: one self-healing Kite ticker WebSocket.
//
// `KiteTickerConnection` keeps one connection to the Kite ticker
// (wss://ws.kite.trade?api_key=…&access_token=…, header `X-Kite-Version: 3`)
// alive for as long as it runs, and keeps its subscriptions true across
// reconnects:
//
// - Liveness: the ticker sends ticks or a one-byte heartbeat every second. When
//   no message at all arrives for `watchdog_timeout` (5 s), the connection is
//   taken for dead and replaced, even if TCP still looks open. WebSocket pings
//   go out while the server is quiet, so a dead peer is also found by TCP.
// - Reconnect: after a failure it dials again after a capped exponential
//   backoff with jitter (see `ReconnectPolicy`), and gives up after
//   `max_attempts` consecutive failures.
// - Subscriptions are the connection's *desired state*: on every (re)connect it
//   sends one subscribe message with every token and then one mode message per
//   mode, so all subscriptions come back in the mode they had.
// - A 403 on the upgrade means the key or access token is wrong or expired:
//   the connection stops (state `auth_failed`) instead of hammering the server.
//   A 429 means the key already holds all its connections; it is retried with
//   backoff and reported as errc::too_many_connections.
//
//   floodgate::kite::KiteTickerConnection connection(io.get_executor(), "API-1#0", key, {}, {
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

/// How a connection waits between failed connection attempts.
struct ReconnectPolicy {
  /// Consecutive failed attempts after which the connection gives up (state
  /// `gave_up`); 0 retries for ever.
  std::size_t max_attempts = 50;
  std::chrono::milliseconds initial_delay{500};
  std::chrono::milliseconds max_delay{std::chrono::seconds(60)};
};

/// The pause before failed attempt number `attempt` (1-based) is retried:
/// min(max_delay, initial_delay · 2^(attempt−1)), of which a random part is
/// taken off so that many connections dropped together do not all return in
/// the same instant. `unit_random` in [0, 1) picks the part: the result lies in
/// [half, full] of the capped delay. Pure, so tests need no clock.
std::chrono::milliseconds backoff_delay(const ReconnectPolicy& policy, std::size_t attempt, double unit_random);

/// Where and how to connect; everything except the credential.
struct KiteConnectionSettings {
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
  connecting,            ///< dialling or upgrading
  connected,             ///< open; subscriptions sent
  waiting_to_reconnect,  ///< lost or refused; backing off
  auth_failed,           ///< 403 on the upgrade: stopped for good
  gave_up,               ///< ReconnectPolicy::max_attempts failures in a row
  stopped,               ///< stop() was called
};

std::string_view to_string(ConnectionState state) noexcept;

/// True for the states a connection never leaves.
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
  std::uint64_t connects = 0;           ///< successful upgrades, the first one included
  std::uint64_t reconnects = 0;         ///< successful upgrades after the first
  std::uint64_t failed_attempts = 0;    ///< connection attempts that failed
  std::uint64_t watchdog_timeouts = 0;  ///< connections given up as silent
  std::error_code last_error;           ///< why the last connection or attempt ended
  int last_http_status = 0;             ///< of the last refused upgrade (403, 429, ...)
};

class KiteTickerConnection {
 public:
  struct Handlers {
    /// A binary frame with at least one readable packet (malformed frames
    /// deliver the packets before the fault and are counted and logged).
    std::function<void(const FrameView&)> on_frame;
    /// A text message from the server: order updates, errors, notices.
    std::function<void(TextMessage&&)> on_text;
    /// Every state change; `reason` says why the connection left `connected`
    /// or why an attempt failed (empty otherwise).
    std::function<void(ConnectionState, std::error_code reason)> on_state;
  };

  /// `label` names the connection in logs and must not hold a secret (e.g.
  /// "API-1#0"). Throws floodgate::Error for an unusable URL or a key or token
  /// with characters that cannot go into a URL query.
  KiteTickerConnection(boost::asio::any_io_executor executor, std::string label, KiteKey key,
                       KiteConnectionSettings settings, Handlers handlers);
  ~KiteTickerConnection();  ///< stop()
  KiteTickerConnection(const KiteTickerConnection&) = delete;
  KiteTickerConnection& operator=(const KiteTickerConnection&) = delete;

  /// Connects, and keeps reconnecting until stop() or a final state.
  void start();
  /// Closes the connection for good: no reconnect, no handler call once the
  /// strand has processed it.
  void stop();

  /// Adds `tokens` in `mode` (or moves them to `mode`): one subscribe and one
  /// mode message, sent now if connected, else on connect.
  void subscribe(std::vector<std::uint32_t> tokens, Mode mode);
  void unsubscribe(std::vector<std::uint32_t> tokens);
  /// Changes the mode of tokens already subscribed; others are ignored.
  void set_mode(std::vector<std::uint32_t> tokens, Mode mode);

  ConnectionStats stats() const;
  const std::string& label() const noexcept { return label_; }

 private:
  struct State;
  std::string label_;
  std::shared_ptr<State> state_;
};

}  // namespace floodgate::kite
