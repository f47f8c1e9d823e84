// The Kite ticker simulator: a Beast WebSocket server on one io_context thread.
//
// Structure: `ServerCore` holds what every connection shares (options, keys
// with their atomic counters, the registry of live sessions). A `Session`
// serves one TCP connection from the upgrade request to the close; it is a
// template over the transport (plain TCP or TLS) behind the small virtual
// `SessionControl` interface through which the public fault-injection calls
// reach it. All session state is touched only on the server thread; public
// methods get there through `ServerCore::on_io`.
#include <floodgate/sim/kite_ticker_server.hpp>

#include <floodgate/core/error.hpp>
#include <floodgate/kite/messages.hpp>
#include <floodgate/sim/kite_frame_encoder.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace floodgate::sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto handshake_timeout = std::chrono::seconds(10);

struct KeyState {
  explicit KeyState(Secret token) : access_token_(std::move(token)) {}

  bool token_matches(std::string_view candidate) const {
    std::lock_guard lock(token_mutex_);
    return candidate == access_token_.reveal();
  }
  Secret access_token() const {
    std::lock_guard lock(token_mutex_);
    return access_token_;
  }
  void set_access_token(Secret token) {
    std::lock_guard lock(token_mutex_);
    access_token_ = std::move(token);
  }

  std::atomic<bool> enabled{true};
  std::atomic<bool> drop_on_accept{false};
  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> rejected_auth{0};
  std::atomic<std::uint64_t> rejected_over_limit{0};
  std::atomic<std::size_t> subscriptions{0};

 private:
  mutable std::mutex token_mutex_;  // set_access_token runs on a caller's thread
  Secret access_token_;
};

struct Counters {
  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> rejected_auth{0};
  std::atomic<std::uint64_t> rejected_over_limit{0};
  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> ticks_sent{0};
  std::atomic<std::uint64_t> heartbeats_sent{0};
  std::atomic<std::uint64_t> text_messages_sent{0};
  std::atomic<std::uint64_t> malformed_frames_sent{0};
  std::atomic<std::uint64_t> raw_frames_sent{0};
  std::atomic<std::uint64_t> frames_skipped{0};
  std::atomic<std::uint64_t> requests_received{0};
};

/// What the public API can ask of a live connection.
class SessionControl {
 public:
  virtual ~SessionControl() = default;
  virtual const std::string& api_key() const = 0;  ///< empty until authenticated
  /// Upgraded and streaming. Until then the upgrade's 101 may still be being
  /// written, and a frame sent at the same time would be a second write on the
  /// socket (Beast forbids it): faults only reach open sessions.
  virtual bool open() const = 0;
  /// Closed (or failed); an accepted session that is not open yet is neither.
  virtual bool finished() const = 0;
  virtual void drop() = 0;
  virtual void silence() = 0;
  /// `malformed` counts it in Stats::malformed_frames_sent.
  virtual void send_raw_binary(std::vector<std::byte> frame, bool malformed) = 0;
  virtual void send_raw_text(std::string text) = 0;
  virtual KiteTickerServer::ConnectionInfo info() const = 0;
};

struct ServerCore {
  explicit ServerCore(KiteTickerServerOptions opts) : options(std::move(opts)) {
    if (!(options.ticks_per_second > 0)) throw Error("KiteTickerServer: ticks_per_second must be positive");
    if (options.heartbeat_interval <= std::chrono::milliseconds::zero()) {
      throw Error("KiteTickerServer: heartbeat_interval must be positive");
    }
    for (KiteApiKey& key : options.keys) {
      if (key.api_key.empty()) throw Error("KiteTickerServer: an api_key is empty");
      const auto [it, inserted] = keys.try_emplace(key.api_key, std::move(key.access_token));
      if (!inserted) throw Error(fmt::format("KiteTickerServer: api_key {} is listed twice", key.api_key));
    }
    options.keys.clear();  // the secrets now live in `keys` only
    tick_period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / options.ticks_per_second));
  }

  KeyState* find_key(std::string_view api_key) {
    const auto it = keys.find(api_key);
    return it == keys.end() ? nullptr : &it->second;
  }

  /// Runs `f` on the server thread and returns its result. Runs it inline when
  /// already there, or when that thread is not running (then nothing else
  /// touches the session registry).
  template <class F>
  auto on_io(F f) -> std::invoke_result_t<F&> {
    if (io.get_executor().running_in_this_thread()) return f();
    std::unique_lock lock(lifecycle_mutex);
    if (!running) return f();
    std::packaged_task<std::invoke_result_t<F&>()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io, std::move(task));
    lock.unlock();
    return result.get();
  }

  /// Up to `count` open sessions of `api_key`, newest first (server thread);
  /// with `Which::accepted` also those whose 101 is still being written (the
  /// client may already have read it: they count as connections).
  enum class Which { open, accepted };
  std::vector<std::shared_ptr<SessionControl>> sessions_of(std::string_view api_key, std::size_t count,
                                                           Which which = Which::open) {
    std::vector<std::shared_ptr<SessionControl>> found;
    for (auto it = sessions.rbegin(); it != sessions.rend() && found.size() < count; ++it) {
      auto session = it->second.lock();
      if (!session || session->api_key() != api_key) continue;
      if (which == Which::open ? session->open() : !session->finished()) {
        found.push_back(std::move(session));
      }
    }
    return found;
  }

  void accept_next();

  KiteTickerServerOptions options;
  std::map<std::string, KeyState, std::less<>> keys;  // fixed after construction
  Counters counters;
  Clock::duration tick_period{};

  // Declared after everything the sessions use: the io_context destroys
  // leftover handlers (and with them sessions) before those members go.
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::atomic<std::uint16_t> port{0};

  std::mutex lifecycle_mutex;  // guards running/started
  bool running = false;
  bool started = false;

  // Server thread only.
  std::map<std::uint64_t, std::weak_ptr<SessionControl>> sessions;  // by id: oldest first
  std::uint64_t next_session_id = 1;
};

// Deterministic, plausible market data for a token: a price that wanders
// around a base derived from the token, with a full book around it.
kite::Tick simulated_tick(std::uint32_t token, std::uint64_t sequence, std::chrono::sys_seconds now) {
  const bool currency = kite::segment_of(token) == kite::Segment::cds || kite::segment_of(token) == kite::Segment::bcd;
  const double base = currency ? 70.0 + static_cast<double>((token >> 8) % 20)
                               : 100.0 + static_cast<double>((token >> 8) % 4900);
  const double step = currency ? 0.0025 : 0.05;
  const auto wiggle = static_cast<double>(static_cast<std::int64_t>((sequence * 7919 + token) % 41) - 20);
  kite::Tick tick;
  tick.instrument_token = token;
  tick.last_price = base + wiggle * step;
  tick.ohlc = {base + step, base + 20 * step, base - 20 * step, base};
  tick.net_change = tick.last_price - tick.ohlc.close;
  tick.last_traded_quantity = static_cast<std::uint32_t>(1 + (sequence + token) % 50);
  tick.average_traded_price = base;
  tick.volume_traded = static_cast<std::uint32_t>(1000 + sequence * 10);
  tick.total_buy_quantity = static_cast<std::uint32_t>(5000 + sequence % 700);
  tick.total_sell_quantity = static_cast<std::uint32_t>(5000 + sequence % 900);
  tick.last_trade_time = now;
  tick.exchange_timestamp = now;
  tick.oi = token % 1000 * 100;
  tick.oi_day_high = tick.oi + 500;
  tick.oi_day_low = tick.oi / 2;
  for (std::size_t level = 0; level < 5; ++level) {
    const double distance = step * static_cast<double>(level + 1);
    const auto quantity = static_cast<std::uint32_t>(10 * (level + 1));
    const auto orders = static_cast<std::uint16_t>(level + 1);
    tick.depth.buy[level] = {quantity, tick.last_price - distance, orders};
    tick.depth.sell[level] = {quantity, tick.last_price + distance, orders};
  }
  return tick;
}

std::string error_text(std::string_view message) {
  return nlohmann::json{{"type", "error"}, {"data", message}}.dump();
}

template <class Stream>
constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

/// One client connection. `Stream` is beast::tcp_stream or
/// asio::ssl::stream<beast::tcp_stream>.
template <class Stream>
class Session final : public SessionControl, public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... StreamArgs>
  Session(ServerCore& server, std::uint64_t id, StreamArgs&&... stream_args)
      : server_(server),
        id_(id),
        ws_(std::forward<StreamArgs>(stream_args)...),
        tick_timer_(server.io),
        heartbeat_timer_(server.io) {}

  void start() {
    beast::get_lowest_layer(ws_).expires_after(handshake_timeout);
    if constexpr (is_tls<Stream>) {
      ws_.next_layer().async_handshake(asio::ssl::stream_base::server,
                                       [self = this->shared_from_this()](beast::error_code ec) {
                                         if (ec) return self->finish();
                                         self->read_upgrade_request();
                                       });
    } else {
      read_upgrade_request();
    }
  }

  // SessionControl
  const std::string& api_key() const override { return api_key_; }
  bool open() const override { return open_ && !finished_; }
  bool finished() const override { return finished_; }
  void drop() override { finish(); }
  void silence() override {
    silent_ = true;
    // Keep only a write in flight (it cannot be recalled); nothing else goes out.
    if (queue_.size() > 1) queue_.erase(queue_.begin() + 1, queue_.end());
  }
  void send_raw_binary(std::vector<std::byte> frame, bool malformed) override {
    enqueue({std::move(frame), malformed ? Outgoing::Kind::malformed : Outgoing::Kind::raw, 0});
  }
  void send_raw_text(std::string text) override { send_text(text); }
  KiteTickerServer::ConnectionInfo info() const override {
    return {id_, {subscriptions_.begin(), subscriptions_.end()}, silent_};
  }

 private:
  struct Outgoing {
    enum class Kind { ticks, heartbeat, text, malformed, raw };
    std::vector<std::byte> bytes;
    Kind kind;
    std::size_t ticks;
  };

  void read_upgrade_request() {
    http::async_read(ws_.next_layer(), read_buffer_, request_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->finish();
                       self->on_upgrade_request();
                     });
  }

  void on_upgrade_request() {
    if (!websocket::is_upgrade(request_)) return reject(http::status::bad_request, "expected a WebSocket upgrade");

    KeyState* key = nullptr;
    std::string api_key;
    if (const auto target = boost::urls::parse_origin_form(request_.target()); target) {
      const auto params = target->params();
      const auto key_param = params.find("api_key");
      const auto token_param = params.find("access_token");
      if (key_param != params.end() && token_param != params.end()) {
        api_key = (*key_param).value;
        key = server_.find_key(api_key);
        if (key && (!key->enabled || !key->token_matches((*token_param).value))) key = nullptr;
      }
    }
    if (!key) {
      server_.counters.rejected_auth++;
      if (KeyState* known = server_.find_key(api_key)) known->rejected_auth++;
      return reject(http::status::forbidden, "invalid api_key or access_token");
    }
    // The check and the increment happen on the server thread, so concurrent
    // upgrades of one key cannot both take the last free place.
    if (key->connections >= server_.options.max_connections_per_key) {
      server_.counters.rejected_over_limit++;
      key->rejected_over_limit++;
      return reject(http::status::too_many_requests,
                    fmt::format("api_key {} already has {} connections", api_key, key->connections.load()));
    }

    key_ = key;
    api_key_ = std::move(api_key);
    key_->connections++;
    key_->connections_accepted++;
    server_.counters.connections++;

    beast::get_lowest_layer(ws_).expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& response) { response.set(http::field::server, "floodgate-sim kite"); }));
    ws_.async_accept(request_, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->finish();
      self->on_open();
    });
  }

  void reject(http::status status, std::string_view message) {
    rejection_.result(status);
    rejection_.version(request_.version());
    rejection_.set(http::field::server, "floodgate-sim kite");
    rejection_.set(http::field::content_type, "application/json");
    rejection_.keep_alive(false);
    rejection_.body() = nlohmann::json{{"status", "error"}, {"message", message}}.dump();
    rejection_.prepare_payload();
    http::async_write(ws_.next_layer(), rejection_,
                      [self = this->shared_from_this()](beast::error_code, std::size_t) { self->finish(); });
  }

  void on_open() {
    if (finished_) return;  // dropped while its 101 was being written
    if (key_->drop_on_accept) return finish();  // the 101 went out; nothing else will
    open_ = true;
    next_tick_ = Clock::now() + server_.tick_period;
    schedule_tick();
    schedule_heartbeat();
    read_request();
  }

  void read_request() {
    ws_.async_read(read_buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish();
      if (self->ws_.got_text()) self->handle_request(beast::buffers_to_string(self->read_buffer_.data()));
      self->read_buffer_.consume(self->read_buffer_.size());
      self->read_request();
    });
  }

  void handle_request(const std::string& text) {
    server_.counters.requests_received++;
    const auto request = kite::parse_request(text);
    if (!request) return send_text(error_text("invalid request"));

    const std::size_t before = subscriptions_.size();
    std::size_t refused = 0;
    switch (request->action) {
      case kite::Request::Action::subscribe:
        for (const std::uint32_t token : request->tokens) {
          if (subscriptions_.contains(token)) continue;
          if (subscriptions_.size() >= server_.options.max_instruments_per_connection) {
            ++refused;
            continue;
          }
          subscriptions_.emplace(token, kite::Mode::quote);
        }
        break;
      case kite::Request::Action::unsubscribe:
        for (const std::uint32_t token : request->tokens) subscriptions_.erase(token);
        break;
      case kite::Request::Action::mode:
        for (const std::uint32_t token : request->tokens) {
          if (const auto it = subscriptions_.find(token); it != subscriptions_.end()) it->second = request->mode;
        }
        break;
    }
    key_->subscriptions += subscriptions_.size();
    key_->subscriptions -= before;
    if (refused > 0) {
      send_text(error_text(fmt::format("{} instruments not subscribed: a connection holds at most {}", refused,
                                       server_.options.max_instruments_per_connection)));
    }
  }

  void schedule_tick() {
    tick_timer_.expires_at(next_tick_);
    tick_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->emit_ticks();
      // Keep the rate without drift, but do not burst to catch up after a stall.
      self->next_tick_ = std::max(self->next_tick_ + self->server_.tick_period, Clock::now());
      self->schedule_tick();
    });
  }

  void emit_ticks() {
    if (silent_ || subscriptions_.empty()) return;
    if (queue_.size() >= server_.options.max_queued_frames) {
      server_.counters.frames_skipped++;
      return;
    }
    const auto flush = [this] {
      const auto bytes = encoder_.bytes();
      enqueue({{bytes.begin(), bytes.end()}, Outgoing::Kind::ticks, encoder_.packet_count()});
      encoder_.clear();
    };
    encoder_.clear();
    const auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    for (const auto& [token, mode] : subscriptions_) {
      encoder_.add(simulated_tick(token, sequence_, now), mode);
      if (encoder_.packet_count() == std::numeric_limits<std::uint16_t>::max()) flush();
    }
    if (encoder_.packet_count() > 0) flush();
    ++sequence_;
  }

  void schedule_heartbeat() {
    heartbeat_timer_.expires_after(server_.options.heartbeat_interval);
    heartbeat_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      if (!self->sent_since_heartbeat_) {
        const auto beat = KiteFrameEncoder::heartbeat();
        self->enqueue({{beat.begin(), beat.end()}, Outgoing::Kind::heartbeat, 0});
      }
      self->sent_since_heartbeat_ = false;
      self->schedule_heartbeat();
    });
  }

  void send_text(const std::string& text) {
    const auto bytes = std::as_bytes(std::span(text));
    enqueue({{bytes.begin(), bytes.end()}, Outgoing::Kind::text, 0});
  }

  void enqueue(Outgoing frame) {
    if (finished_ || silent_) return;
    queue_.push_back(std::move(frame));
    sent_since_heartbeat_ = true;
    if (queue_.size() == 1) write_front();
  }

  void write_front() {
    Outgoing& front = queue_.front();
    if (front.kind == Outgoing::Kind::ticks && server_.options.stamp_send_time) stamp_send_time(front.bytes);
    ws_.binary(front.kind != Outgoing::Kind::text);
    ws_.async_write(asio::buffer(front.bytes), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->finish();
      self->count_sent(self->queue_.front());
      self->queue_.pop_front();
      if (!self->queue_.empty()) self->write_front();
    });
  }

  // Writes the steady clock's nanoseconds into every quote and full packet:
  // the high half as total_buy_quantity, the low half as total_sell_quantity.
  static void stamp_send_time(std::vector<std::byte>& frame) {
    const auto nanos = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
    const auto put_u32 = [](std::byte* at, std::uint32_t value) {
      for (int i = 0; i < 4; ++i) at[i] = static_cast<std::byte>(value >> (24 - 8 * i));
    };
    std::size_t at = 2;  // after the packet count
    while (at + 2 <= frame.size()) {
      const std::size_t length = std::to_integer<std::size_t>(frame[at]) << 8 | std::to_integer<std::size_t>(frame[at + 1]);
      at += 2;
      if (length >= kite::quote_packet_size && at + length <= frame.size()) {
        put_u32(&frame[at + 20], static_cast<std::uint32_t>(nanos >> 32));
        put_u32(&frame[at + 24], static_cast<std::uint32_t>(nanos));
      }
      at += length;
    }
  }

  void count_sent(const Outgoing& frame) {
    Counters& counters = server_.counters;
    switch (frame.kind) {
      case Outgoing::Kind::ticks:
        counters.frames_sent++;
        counters.ticks_sent += frame.ticks;
        break;
      case Outgoing::Kind::heartbeat: counters.heartbeats_sent++; break;
      case Outgoing::Kind::text: counters.text_messages_sent++; break;
      case Outgoing::Kind::malformed: counters.malformed_frames_sent++; break;
      case Outgoing::Kind::raw: counters.raw_frames_sent++; break;
    }
  }

  /// Ends the session once: releases its place and counters, closes the socket
  /// (abruptly: no close frame), and lets pending handlers drain.
  void finish() {
    if (finished_) return;
    finished_ = true;
    if (key_) {
      key_->subscriptions -= subscriptions_.size();
      key_->connections--;
      server_.counters.connections--;
    }
    server_.sessions.erase(id_);
    tick_timer_.cancel();
    heartbeat_timer_.cancel();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
  }

  ServerCore& server_;
  const std::uint64_t id_;
  websocket::stream<Stream> ws_;
  beast::flat_buffer read_buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> rejection_;
  asio::steady_timer tick_timer_;
  asio::steady_timer heartbeat_timer_;

  KeyState* key_ = nullptr;  // set once authenticated
  std::string api_key_;
  std::map<std::uint32_t, kite::Mode> subscriptions_;
  KiteFrameEncoder encoder_;
  std::deque<Outgoing> queue_;  // front is being written
  Clock::time_point next_tick_{};
  std::uint64_t sequence_ = 0;
  bool silent_ = false;
  bool finished_ = false;
  bool open_ = false;  // upgraded, not dropped on accept: see SessionControl::open
  bool sent_since_heartbeat_ = false;
};

void ServerCore::accept_next() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      const std::uint64_t id = next_session_id++;
      const auto serve = [&](auto session) {
        sessions.emplace(id, session);
        session->start();
      };
      if (options.tls) {
        serve(std::make_shared<Session<asio::ssl::stream<beast::tcp_stream>>>(*this, id, std::move(socket),
                                                                                *options.tls));
      } else {
        serve(std::make_shared<Session<beast::tcp_stream>>(*this, id, std::move(socket)));
      }
    }
    accept_next();  // a failed accept (e.g. too many open files) must not stop the server
  });
}

}  // namespace

struct KiteTickerServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

KiteTickerServer::KiteTickerServer(KiteTickerServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

KiteTickerServer::~KiteTickerServer() { stop(); }

void KiteTickerServer::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) throw Error("KiteTickerServer: start() may be called once");
  impl_->started = true;
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(impl_->options.address), impl_->options.port);
    impl_->acceptor.open(endpoint.protocol());
    impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    impl_->acceptor.bind(endpoint);
    impl_->acceptor.listen();
    impl_->port = impl_->acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    throw Error(fmt::format("KiteTickerServer: cannot listen on {}:{}: {}", impl_->options.address,
                            impl_->options.port, e.code().message()));
  }
  impl_->accept_next();
  impl_->work.emplace(impl_->io.get_executor());
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  impl_->running = true;
}

void KiteTickerServer::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (!impl_->running) return;
  impl_->running = false;
  asio::post(impl_->io, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
    // Copy first: dropping a session erases it from the registry.
    std::vector<std::shared_ptr<SessionControl>> live;
    for (const auto& [id, weak] : impl->sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
    for (const auto& session : live) session->drop();
  });
  impl_->work.reset();
  impl_->thread.join();  // run() returns once every closed session's handlers have drained
}

std::uint16_t KiteTickerServer::port() const noexcept { return impl_->port; }

std::string KiteTickerServer::url() const {
  return fmt::format("{}://{}:{}", impl_->options.tls ? "wss" : "ws", impl_->options.address, port());
}

std::string KiteTickerServer::url_for(std::string_view api_key) const {
  const KeyState* key = impl_->find_key(api_key);
  if (!key) throw Error(fmt::format("KiteTickerServer: unknown api_key {}", api_key));
  return fmt::format("{}/?api_key={}&access_token={}", url(), api_key, key->access_token().reveal());
}

KiteTickerServer::KeyStats KiteTickerServer::key_stats(std::string_view api_key) const {
  const KeyState* key = impl_->find_key(api_key);
  if (!key) return {};
  return {key->connections, key->connections_accepted, key->rejected_auth, key->rejected_over_limit,
          key->subscriptions};
}

KiteTickerServer::Stats KiteTickerServer::stats() const {
  const Counters& c = impl_->counters;
  return {c.connections,        c.rejected_auth,         c.rejected_over_limit, c.frames_sent,
          c.ticks_sent,         c.heartbeats_sent,       c.text_messages_sent,  c.malformed_frames_sent,
          c.frames_skipped,     c.requests_received,     c.raw_frames_sent};
}

std::vector<KiteTickerServer::ConnectionInfo> KiteTickerServer::connections(std::string_view api_key) const {
  return impl_->on_io([&] {
    std::vector<ConnectionInfo> result;
    for (const auto& session : impl_->sessions_of(api_key, all, ServerCore::Which::accepted)) {
      result.push_back(session->info());
    }
    std::reverse(result.begin(), result.end());  // oldest first
    return result;
  });
}

std::size_t KiteTickerServer::drop_connections(std::string_view api_key, std::size_t count) {
  return impl_->on_io([&] {
    // A drop writes nothing (a TCP close), so it may reach a session whose 101
    // is still being written: the client may already count it as connected.
    const auto sessions = impl_->sessions_of(api_key, count, ServerCore::Which::accepted);
    for (const auto& session : sessions) session->drop();
    return sessions.size();
  });
}

std::size_t KiteTickerServer::silence_connections(std::string_view api_key, std::size_t count) {
  return impl_->on_io([&] {
    const auto sessions = impl_->sessions_of(api_key, count);
    for (const auto& session : sessions) session->silence();
    return sessions.size();
  });
}

std::size_t KiteTickerServer::send_malformed_frame(std::string_view api_key, kite::FrameError::Kind kind) {
  return impl_->on_io([&] {
    const auto sessions = impl_->sessions_of(api_key, all);
    for (const auto& session : sessions) session->send_raw_binary(malformed_frame(kind), true);
    return sessions.size();
  });
}

std::size_t KiteTickerServer::send_binary_frame(std::string_view api_key, std::span<const std::byte> frame) {
  return impl_->on_io([&] {
    const auto sessions = impl_->sessions_of(api_key, all);
    for (const auto& session : sessions) session->send_raw_binary({frame.begin(), frame.end()}, false);
    return sessions.size();
  });
}

std::size_t KiteTickerServer::send_text_message(std::string_view api_key, std::string_view text) {
  return impl_->on_io([&] {
    const auto sessions = impl_->sessions_of(api_key, all);
    for (const auto& session : sessions) session->send_raw_text(std::string(text));
    return sessions.size();
  });
}

void KiteTickerServer::set_drop_on_accept(std::string_view api_key, bool drop) {
  KeyState* key = impl_->find_key(api_key);
  if (!key) throw Error(fmt::format("KiteTickerServer: unknown api_key {}", api_key));
  key->drop_on_accept = drop;
}

void KiteTickerServer::set_access_token(std::string_view api_key, Secret access_token) {
  KeyState* key = impl_->find_key(api_key);
  if (!key) throw Error(fmt::format("KiteTickerServer: unknown api_key {}", api_key));
  key->set_access_token(std::move(access_token));
  drop_connections(api_key);
}

void KiteTickerServer::set_key_enabled(std::string_view api_key, bool enabled) {
  KeyState* key = impl_->find_key(api_key);
  if (!key) throw Error(fmt::format("KiteTickerServer: unknown api_key {}", api_key));
  key->enabled = enabled;
  if (!enabled) drop_connections(api_key);
}

std::vector<std::byte> KiteTickerServer::malformed_frame(kite::FrameError::Kind kind) {
  using Kind = kite::FrameError::Kind;
  const auto bytes = [](std::initializer_list<unsigned> values) {
    std::vector<std::byte> out;
    for (const unsigned v : values) out.push_back(static_cast<std::byte>(v));
    return out;
  };
  switch (kind) {
    case Kind::empty_frame: return {};
    case Kind::count_overruns_frame:  // three packets announced, one ltp packet present
      return bytes({0, 3, 0, 8, 0, 6, 0x3a, 0x01, 0, 0, 0x9f, 0x90});
    case Kind::truncated_packet:  // a full packet's length, four bytes of body
      return bytes({0, 1, 0, 184, 0, 6, 0x3a, 0x01});
    case Kind::trailing_bytes:  // an ltp packet, then two stray bytes
      return bytes({0, 1, 0, 8, 0, 6, 0x3a, 0x01, 0, 0, 0x9f, 0x90, 0xbe, 0xef});
  }
  return {};
}

}  // namespace floodgate::sim
