// TickerConnection: one coroutine per connection runs the whole life
// cycle (dial, subscribe, read, watch, back off, dial again) on a strand. The
// public methods only post to that strand, so all connection state below is
// touched by one thread at a time; the counters are atomics so that stats()
// can read them from anywhere.
#include <floodgate/kite/ticker_connection.hpp>

#include <floodgate/core/error.hpp>
#include <floodgate/core/log.hpp>
#include <floodgate/net/tls.hpp>
#include <floodgate/net/websocket.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <bitset>
#include <deque>
#include <map>
#include <mutex>
#include <random>

namespace floodgate::kite {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string_view to_string(ConnectionState state) noexcept {
  switch (state) {
    case ConnectionState::idle: return "idle";
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::connected: return "connected";
    case ConnectionState::waiting_to_reconnect: return "reconnecting";
    case ConnectionState::auth_failed: return "auth failed";
    case ConnectionState::gave_up: return "gave up";
    case ConnectionState::stopped: return "stopped";
  }
  return "?";
}

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Key and token go into the upgrade URL's query unescaped, as every Kite
// client sends them; anything that would need escaping is refused up front.
bool is_url_safe(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
  });
}

// What a log line shows of a server-sent error: a string cut to its first
// bytes, anything else only its JSON type. Outside data never goes into a log
// line whole: it could be megabytes, or nested deep enough to overflow a
// recursive dump().
std::string loggable(const nlohmann::json& data) {
  constexpr std::size_t max_bytes = 200;
  if (!data.is_string()) return fmt::format("(a JSON {}, not shown)", data.type_name());
  const auto& text = data.get_ref<const std::string&>();
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return fmt::format("{}… ({} bytes)", std::string_view(text).substr(0, cut), text.size());
}

// The context every connection without one of its own shares. Built once:
// loading the system CA store takes ~30 ms, too long to repeat on every
// (re)connect attempt on an I/O thread. (A WebSocket given no context builds
// one, for ws:// too.)
std::shared_ptr<asio::ssl::context> shared_default_tls() {
  static const auto context = net::make_client_tls_context();
  return context;
}

// The connection's strand. Over an io_context (the usual case) a concrete
// io_context strand, which net::WebSocket then reads on without allocating
// per read; over any other executor a strand of the type-erased executor.
asio::any_io_executor make_connection_strand(const asio::any_io_executor& executor) {
  if (const auto* io = executor.target<asio::io_context::executor_type>()) return asio::make_strand(*io);
  return asio::make_strand(executor);
}

}  // namespace

struct TickerConnection::State : std::enable_shared_from_this<State> {
  State(const asio::any_io_executor& executor, std::string label_text, KiteKey key_value, ConnectionSettings config,
        Handlers callbacks)
      : strand(make_connection_strand(executor)),
        label(std::move(label_text)),
        key(std::move(key_value)),
        settings(std::move(config)),
        handlers(std::move(callbacks)),
        endpoint(net::Endpoint::parse(settings.url)),
        tls(settings.tls ? settings.tls : shared_default_tls()),
        watchdog(strand),
        backoff_timer(strand),
        backoff(settings.reconnect),
        random(std::random_device{}()) {
    if (!is_url_safe(key.api_key.reveal()) || !is_url_safe(key.access_token.reveal())) {
      throw Error(fmt::format("{}: the API key and access token may hold only letters, digits and -_.~", label));
    }
  }

  // ---- everything below runs on the strand -------------------------------

  void set_state(ConnectionState next, std::error_code reason = {}) {
    if (reason) {
      std::lock_guard lock(error_mutex);
      last_error = reason;
    }
    if (next == ConnectionState::connected) {
      connected_since.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    } else {
      connected_since.store(0, std::memory_order_relaxed);
    }
    state.store(next);
    if (handlers.on_state && !stopping) handlers.on_state(next, reason);
  }

  net::RequestTarget upgrade_target() const {
    return net::RequestTarget("/?api_key=").append(key.api_key).append("&access_token=").append(key.access_token);
  }

  static net::HttpHeaders upgrade_headers() { return {{"X-Kite-Version", "3"}}; }

  // Queues one text message; the writes go out one at a time, in order.
  void send(std::string message) {
    outbox.push_back(std::move(message));
    if (outbox.size() == 1) write_next(socket);
  }

  void write_next(const std::shared_ptr<net::WebSocket>& ws) {
    if (!ws || outbox.empty()) return;
    ws->async_write_text(outbox.front(), asio::bind_executor(strand, [this, self = shared_from_this(), ws](
                                                                         std::error_code ec) {
      // A write of a connection already replaced, or one that completed after
      // stop() cleared the outbox (popping it then would pop an empty deque).
      if (ws != socket || stopping) return;
      if (ec) {
        ws->cancel();  // the read loop sees the failure and reconnects
        return;
      }
      outbox.pop_front();
      write_next(ws);
    }));
  }

  // On every connect: all tokens in one subscribe message, then one mode
  // message per mode (the server starts every new subscription in quote).
  void send_desired_state() {
    if (desired.empty()) return;
    std::vector<std::uint32_t> all;
    std::map<Mode, std::vector<std::uint32_t>> by_mode;
    all.reserve(desired.size());
    for (const auto& [token, mode] : desired) {
      all.push_back(token);
      by_mode[mode].push_back(token);
    }
    send(subscribe_message(all));
    for (const auto& [mode, tokens] : by_mode) send(mode_message(mode, tokens));
  }

  // Recorded even while the connection has stopped trying: a new access token
  // brings it back with everything it was asked to stream.
  void subscribe(std::vector<std::uint32_t> tokens, Mode mode) {
    if (tokens.empty()) return;
    for (auto token : tokens) desired[token] = mode;
    subscriptions.store(desired.size());
    if (!socket_open) return;
    send(subscribe_message(tokens));
    send(mode_message(mode, tokens));
  }

  void unsubscribe(const std::vector<std::uint32_t>& tokens) {
    std::vector<std::uint32_t> removed;
    for (auto token : tokens) {
      if (desired.erase(token) != 0) removed.push_back(token);
    }
    subscriptions.store(desired.size());
    if (!removed.empty() && socket_open) send(unsubscribe_message(removed));
  }

  void set_mode(const std::vector<std::uint32_t>& tokens, Mode mode) {
    std::vector<std::uint32_t> changed;
    for (auto token : tokens) {
      if (auto it = desired.find(token); it != desired.end()) {
        it->second = mode;
        changed.push_back(token);
      }
    }
    if (!changed.empty() && socket_open) send(mode_message(mode, changed));
  }

  void on_message(const net::WebSocketMessage& message) {
    last_message = Clock::now();
    if (!data_flowed) {
      // Up only now: an upgrade that is dropped before any data is a failure.
      data_flowed = true;
      backoff.data(last_message);
      set_state(ConnectionState::connected);
    }
    if (!message.binary) {
      ++text_messages;
      auto text = parse_text_message(message.text());
      if (!text) {
        ++malformed_frames;
        log(LogLevel::warning, "Kite connection {}: ignored a text message that is not a ticker message", label);
        return;
      }
      if (text->type == TextMessage::Type::error) {
        log(LogLevel::warning, "Kite connection {}: the server reports an error: {}", label, loggable(text->data));
      }
      if (handlers.on_text) handlers.on_text(std::move(*text));
      return;
    }
    const FrameView frame(message.data);
    if (frame.is_heartbeat()) {
      ++heartbeats;
      return;
    }
    ++frames;
    ticks += frame.size();
    if (frame.unknown_count() > 0) note_unknown_packets(frame);
    if (!frame.ok()) {
      ++malformed_frames;
      log(LogLevel::warning, "Kite connection {}: {}", label, *frame.error());
    }
    if (!frame.empty() && handlers.on_frame) handlers.on_frame(frame);
  }

  // Packets of a layout this client does not know are skipped and counted;
  // each unknown length is logged once per connection, not once per frame.
  void note_unknown_packets(const FrameView& frame) {
    unknown_packets += frame.unknown_count();
    frame.for_each_unknown_length([this](std::size_t length) {
      if (warned_lengths.test(length)) return;
      warned_lengths.set(length);
      log(LogLevel::warning,
          "Kite connection {}: skipping packets of unknown length {} (a layout this client does not know); "
          "counted in unknown_packets, not logged again",
          label, length);
    });
  }

  // Fires when no message arrived for watchdog_timeout and kills the socket;
  // the read loop then ends and the connection is replaced.
  void arm_watchdog(const std::shared_ptr<net::WebSocket>& ws) {
    watchdog.expires_at(last_message + settings.watchdog_timeout);
    watchdog.async_wait([this, self = shared_from_this(), ws](boost::system::error_code ec) {
      if (ec || ws != socket) return;
      if (Clock::now() - last_message < settings.watchdog_timeout) {
        arm_watchdog(ws);
        return;
      }
      ++watchdog_timeouts;
      watchdog_fired = true;
      ws->cancel();
    });
  }

  asio::awaitable<std::error_code> read_until_failure(std::shared_ptr<net::WebSocket> ws) {
    for (;;) {
      auto [ec, message] = co_await ws->async_read(use_tuple);
      // A read that completed just before stop() ran: no handler call after it.
      if (stopping) co_return std::error_code(net::errc::cancelled);
      if (ec) co_return watchdog_fired ? std::error_code(net::errc::timeout) : ec;
      on_message(message);
    }
  }

  asio::awaitable<void> run() {
    while (!stopping) {
      set_state(ConnectionState::connecting);
      auto ws = std::make_shared<net::WebSocket>(
          strand, net::WebSocketOptions{.tls = tls,
                                        .allow_plain_ws = settings.allow_plain_ws,
                                        .handshake_timeout = settings.connect_timeout,
                                        // The watchdog below notices a silent connection. Beast's
                                        // idle timer would be re-armed (and allocate) on every read.
                                        .idle_timeout = std::chrono::milliseconds(0)});
      socket = ws;
      const std::uint64_t dialled_with = token_generation;
      auto [ec, status] = co_await ws->async_connect(endpoint, upgrade_target(), upgrade_headers(), use_tuple);
      if (stopping) break;

      if (!ec) {
        if (connects++ > 0) ++reconnects;
        backoff.opened();
        watchdog_fired = false;
        data_flowed = false;
        last_message = Clock::now();
        outbox.clear();
        socket_open = true;
        send_desired_state();
        arm_watchdog(ws);
        ec = co_await read_until_failure(ws);
        socket_open = false;
        watchdog.cancel();
        socket.reset();
        ws->cancel();
        if (stopping) break;
        log(LogLevel::warning, "Kite connection {} lost: {}", label, ec.message());
      } else {
        socket.reset();
        ++failed_attempts;
        last_http_status.store(status);
        // A 403 for a token replaced while the dial was under way is no verdict on the new one.
        if (ec == net::errc::upgrade_rejected && status == 403 && dialled_with == token_generation) {
          log(LogLevel::error, "Kite connection {}: access denied (HTTP 403); check the API key and access token",
              label);
          set_state(ConnectionState::auth_failed, errc::auth_failed);
          co_return;
        }
        if (ec == net::errc::upgrade_rejected && status == 429) ec = errc::too_many_connections;
        log(LogLevel::warning, "Kite connection {}: connect failed: {}", label, ec.message());
      }

      const auto next = backoff.failed(Clock::now(), std::uniform_real_distribution<double>(0.0, 1.0)(random));
      failures_in_a_row.store(next.failures);
      if (next.give_up) {
        log(LogLevel::error, "Kite connection {}: gave up after {} failures in a row", label, next.failures);
        set_state(ConnectionState::gave_up, ec);
        co_return;
      }
      set_state(ConnectionState::waiting_to_reconnect, ec);
      if (handlers.on_reconnect) handlers.on_reconnect(next.failures, next.delay);
      backoff_timer.expires_after(next.delay);
      co_await backoff_timer.async_wait(use_tuple);
    }
    state.store(ConnectionState::stopped);
  }

  // The token is read at each upgrade only: an open connection keeps
  // streaming (no needless reconnect), one waiting to reconnect dials now, and
  // one that stopped trying (403, or attempts used up) starts again.
  void update_access_token(Secret token) {
    key.access_token = std::move(token);
    ++token_generation;
    if (stopping) return;
    const auto now = state.load();
    if (now == ConnectionState::waiting_to_reconnect) {
      backoff.reset();
      backoff_timer.cancel();
    } else if (now == ConnectionState::auth_failed || now == ConnectionState::gave_up) {
      backoff.reset();
      failures_in_a_row.store(0);
      launch();
    }
  }

  void launch() {
    asio::co_spawn(strand, run(), [self = shared_from_this()](const std::exception_ptr& error) {
      if (!error) return;
      // Only allocation failure can get here; the connection is lost for good.
      log(LogLevel::error, "Kite connection {} stopped by an internal error", self->label);
      self->set_state(ConnectionState::gave_up, std::make_error_code(std::errc::not_enough_memory));
    });
  }

  void stop() {
    if (std::exchange(stopping, true)) return;
    state.store(ConnectionState::stopped);
    if (socket) socket->cancel();
    watchdog.cancel();
    backoff_timer.cancel();
    outbox.clear();
    if (handlers.on_state) handlers.on_state(ConnectionState::stopped, {});
  }

  // ---- fixed at construction ----------------------------------------------
  asio::any_io_executor strand;  // a strand (make_connection_strand)
  const std::string label;
  KiteKey key;  // strand-only: update_access_token replaces the token
  std::uint64_t token_generation = 0;  // strand-only: counts token updates
  const ConnectionSettings settings;
  const Handlers handlers;
  const net::Endpoint endpoint;
  const std::shared_ptr<asio::ssl::context> tls;

  // ---- strand-only ----------------------------------------------------------
  std::map<std::uint32_t, Mode> desired;  // ordered: stable, readable subscribe messages
  std::shared_ptr<net::WebSocket> socket;
  std::deque<std::string> outbox;
  asio::steady_timer watchdog;
  asio::steady_timer backoff_timer;
  ReconnectBackoff<Clock> backoff;
  Clock::time_point last_message{};
  bool socket_open = false;  // upgraded and not yet lost: requests can be sent
  bool data_flowed = false;  // a message arrived on the open socket
  bool watchdog_fired = false;
  bool stopping = false;
  std::bitset<65536> warned_lengths;  // unknown packet lengths already logged (a length is 16 bits)
  std::minstd_rand random;

  // ---- read from any thread ---------------------------------------------------
  std::atomic<ConnectionState> state{ConnectionState::idle};
  std::atomic<std::size_t> subscriptions{0};
  std::atomic<std::uint64_t> ticks{0}, frames{0}, heartbeats{0}, text_messages{0}, malformed_frames{0},
      unknown_packets{0}, connects{0},
      reconnects{0}, failed_attempts{0}, watchdog_timeouts{0};
  std::atomic<std::size_t> failures_in_a_row{0};
  std::atomic<int> last_http_status{0};
  std::atomic<Clock::rep> connected_since{0};  // Clock ticks since its epoch while connected, else 0
  mutable std::mutex error_mutex;
  std::error_code last_error;
};

TickerConnection::TickerConnection(asio::any_io_executor executor, std::string label, KiteKey key,
                                           ConnectionSettings settings, Handlers handlers)
    : label_(label),
      state_(std::make_shared<State>(std::move(executor), std::move(label), std::move(key), std::move(settings),
                                     std::move(handlers))) {}

TickerConnection::~TickerConnection() { stop(); }

void TickerConnection::start() {
  asio::post(state_->strand, [state = state_] {
    if (state->stopping || state->state.load() != ConnectionState::idle) return;
    state->launch();
  });
}

void TickerConnection::update_access_token(Secret access_token) {
  if (!is_url_safe(access_token.reveal())) {
    throw Error(fmt::format("{}: the access token may hold only letters, digits and -_.~", label_));
  }
  asio::post(state_->strand, [state = state_, token = std::move(access_token)]() mutable {
    state->update_access_token(std::move(token));
  });
}

void TickerConnection::stop() {
  asio::post(state_->strand, [state = state_] { state->stop(); });
}

void TickerConnection::subscribe(std::vector<std::uint32_t> tokens, Mode mode) {
  asio::post(state_->strand, [state = state_, tokens = std::move(tokens), mode]() mutable {
    state->subscribe(std::move(tokens), mode);
  });
}

void TickerConnection::unsubscribe(std::vector<std::uint32_t> tokens) {
  asio::post(state_->strand, [state = state_, tokens = std::move(tokens)] { state->unsubscribe(tokens); });
}

void TickerConnection::set_mode(std::vector<std::uint32_t> tokens, Mode mode) {
  asio::post(state_->strand, [state = state_, tokens = std::move(tokens), mode] { state->set_mode(tokens, mode); });
}

ConnectionStats TickerConnection::stats() const {
  const State& s = *state_;
  ConnectionStats out;
  out.state = s.state.load();
  out.subscriptions = s.subscriptions.load();
  out.ticks = s.ticks.load();
  out.frames = s.frames.load();
  out.heartbeats = s.heartbeats.load();
  out.text_messages = s.text_messages.load();
  out.malformed_frames = s.malformed_frames.load();
  out.unknown_packets = s.unknown_packets.load();
  out.connects = s.connects.load();
  out.reconnects = s.reconnects.load();
  out.failed_attempts = s.failed_attempts.load();
  out.watchdog_timeouts = s.watchdog_timeouts.load();
  out.failures_in_a_row = s.failures_in_a_row.load();
  out.last_http_status = s.last_http_status.load();
  if (const auto since = s.connected_since.load(std::memory_order_relaxed); since != 0) {
    out.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch() -
                                                                       Clock::duration(since));
  }
  std::lock_guard lock(s.error_mutex);
  out.last_error = s.last_error;
  return out;
}

}  // namespace floodgate::kite
