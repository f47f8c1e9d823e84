// floodgate/sim/kite_ticker_server.hpp: a local Kite ticker for tests and demos.
//
// `KiteTickerServer` is a real WebSocket server (Boost.Beast) on 127.0.0.1 that
// behaves like wss://ws.kite.trade as far as a client can tell:
//
// - the upgrade request must carry `api_key` and `access_token` query
//   parameters of a known, enabled key, or it is refused with HTTP 403;
// - a key may hold `max_connections_per_key` (3) connections at once; the next
//   upgrade is refused with HTTP 429;
// - `{"a":"subscribe"|"unsubscribe"|"mode",...}` requests are honoured, up to
//   `max_instruments_per_connection` (3000) instruments per connection; excess
//   tokens and invalid requests are answered with an `{"type":"error"}` text
//   frame. New subscriptions stream in quote mode, as on Kite;
// - every 1/`ticks_per_second` seconds each connection gets one binary frame
//   with one tick per subscribed instrument, in the mode asked, in the real
//   packet layouts (see kite/frame.hpp); a connection with nothing to send gets
//   a one-byte heartbeat every `heartbeat_interval`.
//
// Tests and demos inject faults: drop connections, make them go silent (open
// but sending nothing), send malformed frames, revoke a key. Counters are
// thread-safe and can be read at any time.
//
//   floodgate::sim::KiteTickerServer server({.keys = {{"kitekey1", floodgate::Secret("tok1")}}});
//   server.start();
//   connect_to(server.url() + "?api_key=kitekey1&access_token=tok1");
//   ...
//   server.drop_connections("kitekey1", 1);
//
// The server runs on its own thread with its own io_context. Every method may
// be called from any thread.
#pragma once

#include <floodgate/core/secret.hpp>
#include <floodgate/kite/frame.hpp>
#include <floodgate/kite/tick.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace floodgate::sim {

/// One API key the simulator accepts. The api_key is an identifier (it shows
/// in stats); the access token is a secret and is never logged or echoed.
struct KiteApiKey {
  std::string api_key;
  Secret access_token;
};

struct KiteTickerServerOptions {
  std::vector<KiteApiKey> keys;

  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: any free port; see KiteTickerServer::port()

  /// Tick frames per second on each connection; each frame carries one tick
  /// for every instrument the connection subscribes.
  double ticks_per_second = 10;
  /// A connection that sent nothing for this long gets a heartbeat.
  std::chrono::milliseconds heartbeat_interval{1000};

  std::size_t max_connections_per_key = 3;          ///< Kite's limit
  std::size_t max_instruments_per_connection = 3000;  ///< Kite's limit

  /// Frames waiting to be written to a slow client before new tick frames are
  /// skipped (counted in Stats::frames_skipped) instead of queued.
  std::size_t max_queued_frames = 64;

  /// For latency measurements: just before a tick frame is written, the
  /// steady clock's nanoseconds since its epoch go into every quote and full
  /// packet, the high 32 bits as total_buy_quantity and the low 32 bits as
  /// total_sell_quantity (see sent_at()). Off by default.
  bool stamp_send_time = false;

  /// Serve wss:// with this context (e.g. floodgate::net::make_server_tls_context
  /// with TestCertificates); plain ws:// when null.
  std::shared_ptr<boost::asio::ssl::context> tls;
};

class KiteTickerServer {
 public:
  /// When a tick of a server with `stamp_send_time` was written, on this
  /// process's steady clock.
  static std::chrono::steady_clock::time_point sent_at(const kite::Tick& tick) noexcept {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(
        static_cast<std::int64_t>(std::uint64_t{tick.total_buy_quantity} << 32 | tick.total_sell_quantity)));
  }

  static constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

  /// Throws floodgate::Error for an empty or duplicate api_key or a
  /// non-positive rate.
  explicit KiteTickerServer(KiteTickerServerOptions options);
  ~KiteTickerServer();  ///< stops the server
  KiteTickerServer(const KiteTickerServer&) = delete;
  KiteTickerServer& operator=(const KiteTickerServer&) = delete;

  /// Binds the listening socket and starts the server thread. Throws
  /// floodgate::Error if the address cannot be bound or the server ran before.
  void start();
  /// Closes every connection and the listener and joins the thread. Idempotent.
  void stop();

  std::uint16_t port() const noexcept;
  /// "ws://127.0.0.1:PORT" (or wss://), without the query.
  std::string url() const;
  /// url() plus "?api_key=…&access_token=…" for a configured key: what a
  /// client dials. Throws floodgate::Error for an unknown key.
  std::string url_for(std::string_view api_key) const;

  // ---- counters (thread-safe) ---------------------------------------------

  struct KeyStats {
    std::size_t connections = 0;          ///< open now
    std::uint64_t connections_accepted = 0;  ///< upgrades accepted, ever
    std::uint64_t rejected_auth = 0;      ///< upgrades refused with 403
    std::uint64_t rejected_over_limit = 0;  ///< upgrades refused with 429
    std::size_t subscriptions = 0;        ///< instruments subscribed, summed over connections
  };
  /// Counters of one configured key (all zero for an unknown key).
  KeyStats key_stats(std::string_view api_key) const;

  struct Stats {
    std::size_t connections = 0;
    std::uint64_t rejected_auth = 0;  ///< includes unknown keys
    std::uint64_t rejected_over_limit = 0;
    std::uint64_t frames_sent = 0;  ///< binary tick frames
    std::uint64_t ticks_sent = 0;   ///< packets in those frames
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t text_messages_sent = 0;
    std::uint64_t malformed_frames_sent = 0;
    std::uint64_t frames_skipped = 0;  ///< tick frames not queued for a slow client
    std::uint64_t requests_received = 0;  ///< text requests, valid or not
    std::uint64_t raw_frames_sent = 0;    ///< frames sent by send_binary_frame
  };
  Stats stats() const;

  /// One open connection as the server sees it.
  struct ConnectionInfo {
    std::uint64_t id = 0;
    std::vector<std::pair<std::uint32_t, kite::Mode>> subscriptions;  ///< sorted by token
    bool silent = false;
  };
  /// The key's connections, oldest first: every accepted one, including those
  /// whose 101 reply is still on its way (the client may already have read it).
  std::vector<ConnectionInfo> connections(std::string_view api_key) const;

  // ---- faults ----------------------------------------------------------------

  /// Closes up to `count` of the key's connections abruptly (TCP close, no
  /// WebSocket close frame), newest first. Returns how many were closed.
  std::size_t drop_connections(std::string_view api_key, std::size_t count = all);

  /// Makes up to `count` of the key's connections go silent, newest first:
  /// they stay open and keep reading (and answering pings) but send no tick,
  /// heartbeat or text frame again. New connections are not affected.
  std::size_t silence_connections(std::string_view api_key, std::size_t count = all);

  /// Sends one malformed binary frame of the given kind on each of the key's
  /// connections. Returns how many connections got one.
  std::size_t send_malformed_frame(std::string_view api_key, kite::FrameError::Kind kind);

  /// Sends `frame` as one binary frame, as is, on each of the key's
  /// connections (e.g. a packet layout the client does not know). Returns how
  /// many got it.
  std::size_t send_binary_frame(std::string_view api_key, std::span<const std::byte> frame);

  /// Sends `text` as one text frame on each of the key's connections, as is
  /// (server errors, order updates, or garbage). Returns how many got it.
  std::size_t send_text_message(std::string_view api_key, std::string_view text);

  /// While on, every upgrade of the key is accepted (101) and the connection
  /// closed at once, before any data: a server that accepts and drops.
  /// Throws floodgate::Error for an unknown key.
  void set_drop_on_accept(std::string_view api_key, bool drop);

  /// Replaces the key's access token, as Kite's daily expiry does: open
  /// connections are dropped and every later upgrade with the old token gets
  /// 403. Throws floodgate::Error for an unknown key.
  void set_access_token(std::string_view api_key, Secret access_token);

  /// Disables (403 on every later upgrade, open connections dropped) or
  /// re-enables a key. Throws floodgate::Error for an unknown key.
  void set_key_enabled(std::string_view api_key, bool enabled);

  /// The bytes `send_malformed_frame` sends for `kind`: a frame the parser
  /// rejects with exactly that kind.
  static std::vector<std::byte> malformed_frame(kite::FrameError::Kind kind);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace floodgate::sim
