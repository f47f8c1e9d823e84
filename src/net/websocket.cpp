#include "floodgate/net/websocket.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <optional>
#include <variant>

#include "floodgate/net/tls.hpp"
#include "open_transport.hpp"

namespace floodgate::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

struct detail::WebSocketState {
  using PlainStream = websocket::stream<beast::tcp_stream>;
  using TlsStream = websocket::stream<detail::TlsStream>;
  // On an io_context strand: no allocation per read (open_transport.hpp).
  using StrandPlainStream = websocket::stream<detail::StrandTcpStream>;
  using StrandTlsStream = websocket::stream<detail::StrandTlsStream>;

  WebSocketState(asio::any_io_executor ex, WebSocketOptions opts) : executor(std::move(ex)), options(std::move(opts)) {
    if (!options.tls) options.tls = make_client_tls_context();
    if (const auto* strand = executor.target<detail::IoStrand>()) io_strand = *strand;
  }

  // Runs `f` on the Beast stream; false when there is none (never connected).
  template <class F>
  bool visit(F&& f) {
    return std::visit(
        [&](auto& s) {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            return false;
          } else {
            f(s);
            return true;
          }
        },
        stream);
  }

  asio::any_io_executor executor;
  std::optional<detail::IoStrand> io_strand;  // the executor, when it is an io_context strand
  WebSocketOptions options;
  std::variant<std::monostate, PlainStream, TlsStream, StrandPlainStream, StrandTlsStream> stream;
  beast::flat_buffer buffer;
  bool connect_started = false;
  bool open = false;
  bool cancelled = false;  // cancel() was called: every later failure reads as errc::cancelled
};

namespace {
using State = detail::WebSocketState;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

bool is_closed_by_peer(const beast::error_code& ec) {
  // end_of_stream: the peer closed before its reply to the upgrade began.
  return ec == websocket::error::closed || ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset ||
         ec == asio::error::connection_aborted || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

// Maps a read, write or close failure on an open connection.
std::error_code classify(const State& state, const beast::error_code& ec) {
  if (state.cancelled || ec == asio::error::operation_aborted) return errc::cancelled;
  if (ec == beast::error::timeout) return errc::timeout;
  if (ec == websocket::error::message_too_big || ec == websocket::error::buffer_overflow) {
    return errc::response_too_large;
  }
  if (is_closed_by_peer(ec)) return errc::connection_closed;
  if (ec.category() == websocket::make_error_code(websocket::error::bad_opcode).category()) {
    return errc::protocol_error;
  }
  return errc::connection_closed;
}

struct Connected {
  std::error_code ec;
  int status = 0;
};

// What cancel() does: the connection is closed and every operation in flight
// ends with errc::cancelled.
void close_for_good(State& state) noexcept {
  state.cancelled = true;
  state.open = false;
  state.visit([](auto& ws) { beast::get_lowest_layer(ws).close(); });
}

// Terminal cancellation of one operation closes the connection, as cancel()
// does: a stream cannot resume a half-read or half-written message. Partial
// and total are not honoured for the same reason.
template <class Handler>
void close_on_terminal_cancellation(const std::shared_ptr<State>& state, Handler& handler) {
  auto slot = asio::get_associated_cancellation_slot(handler);
  if (!slot.is_connected()) return;
  slot.assign([weak = std::weak_ptr(state)](asio::cancellation_type type) {
    if ((type & asio::cancellation_type::terminal) == asio::cancellation_type::none) return;
    if (auto alive = weak.lock()) close_for_good(*alive);
  });
}

// Runs the handler, its cancellation slot cleared first (its operation is over).
template <class Handler, class... Args>
void complete(Handler& handler, Args&&... args) {
  asio::get_associated_cancellation_slot(handler).clear();
  std::move(handler)(std::forward<Args>(args)...);
}

// The upgrade on an already connected (and, for wss, TLS-secured) stream.
template <class Stream>
asio::awaitable<Connected> upgrade(State& state, Stream& ws, const Endpoint& endpoint, const RequestTarget& target,
                                   const HttpHeaders& headers, detail::SteadyTime deadline) {
  beast::get_lowest_layer(ws).expires_at(deadline);
  ws.set_option(websocket::stream_base::decorator([&headers, &state](websocket::request_type& request) {
    request.set(http::field::user_agent, state.options.user_agent);
    for (const auto& [name, value] : headers) request.set(name, value);
  }));
  ws.read_message_max(state.options.max_message_bytes);
  ws.auto_fragment(false);

  const bool default_port = endpoint.port == (endpoint.tls ? 443 : 80);
  const std::string host = default_port ? endpoint.host : fmt::format("{}:{}", endpoint.host, endpoint.port);
  websocket::response_type response;
  auto [ec] = co_await ws.async_handshake(response, host, target.reveal(), use_tuple);
  // A status only for a reply that was read: an attempt cut off before the
  // server answered has none (the response's default would read as one).
  const bool replied = !ec || ec == websocket::error::upgrade_declined;
  const int status = replied ? static_cast<int>(response.result_int()) : 0;
  if (ec) {
    if (ec == websocket::error::upgrade_declined) co_return Connected{errc::upgrade_rejected, status};
    if (ec == beast::error::timeout) co_return Connected{errc::timeout, status};
    co_return Connected{is_closed_by_peer(ec) ? errc::connection_closed : errc::protocol_error, status};
  }

  // From here on Beast owns the timeouts: its idle timer sends the pings.
  beast::get_lowest_layer(ws).expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = state.options.handshake_timeout;
  if (state.options.idle_timeout.count() > 0) {
    timeouts.idle_timeout = state.options.idle_timeout;
    timeouts.keep_alive_pings = true;
  } else {
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
  }
  ws.set_option(timeouts);
  co_return Connected{{}, status};
}

asio::awaitable<Connected> open_connection(std::shared_ptr<State> state, Endpoint endpoint, RequestTarget target,
                                           HttpHeaders headers) {
  if (endpoint.host.empty() || endpoint.port == 0) co_return Connected{errc::invalid_url};
  if (!endpoint.tls && !state->options.allow_plain_ws) co_return Connected{errc::insecure_scheme};
  const auto deadline = std::chrono::steady_clock::now() + state->options.handshake_timeout;

  const auto open = [&]<class Stream>(Stream& ws) -> asio::awaitable<Connected> {
    if (auto ec = co_await detail::connect_tcp(beast::get_lowest_layer(ws), endpoint, deadline)) co_return Connected{ec};
    if constexpr (!std::is_same_v<Stream, State::PlainStream> && !std::is_same_v<Stream, State::StrandPlainStream>) {
      if (auto ec = co_await detail::handshake_tls(ws.next_layer(), endpoint, deadline)) co_return Connected{ec};
    }
    co_return co_await upgrade(*state, ws, endpoint, target, headers, deadline);
  };
  if (state->io_strand) {
    if (endpoint.tls) co_return co_await open(state->stream.emplace<State::StrandTlsStream>(*state->io_strand, *state->options.tls));
    co_return co_await open(state->stream.emplace<State::StrandPlainStream>(*state->io_strand));
  }
  if (endpoint.tls) co_return co_await open(state->stream.emplace<State::TlsStream>(state->executor, *state->options.tls));
  co_return co_await open(state->stream.emplace<State::PlainStream>(state->executor));
}

// co_spawn hands the caller's slot to the step in progress (resolve, connect,
// TLS, upgrade), terminal cancellation only: that step ends at once.
asio::awaitable<Connected> connect(std::shared_ptr<State> state, Endpoint endpoint, RequestTarget target,
                                   HttpHeaders headers) {
  auto result = co_await open_connection(state, std::move(endpoint), std::move(target), std::move(headers));
  if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none) {
    result.ec = errc::cancelled;
  }
  co_return result;
}

}  // namespace

WebSocket::WebSocket(executor_type executor, WebSocketOptions options)
    : executor_(std::move(executor)), state_(std::make_shared<State>(executor_, std::move(options))) {}

WebSocket::~WebSocket() { cancel(); }

void WebSocket::start_connect(Endpoint endpoint, RequestTarget target, HttpHeaders headers,
                              asio::any_completion_handler<ConnectSignature> handler) {
  if (std::exchange(state_->connect_started, true)) {
    asio::post(executor_, asio::append(std::move(handler), make_error_code(errc::protocol_error), 0));
    return;
  }
  auto handler_executor = asio::get_associated_executor(handler, executor_);
  auto slot = asio::get_associated_cancellation_slot(handler);
  asio::co_spawn(executor_, connect(state_, std::move(endpoint), std::move(target), std::move(headers)),
                 asio::bind_cancellation_slot(
                     slot, asio::bind_executor(handler_executor, [state = state_, handler = std::move(handler)](
                                                                     const std::exception_ptr& error, Connected result) mutable {
                       if (error) result = Connected{std::make_error_code(std::errc::not_enough_memory), 0};
                       if (result.ec == errc::cancelled) state->cancelled = true;
                       if (state->cancelled) result.ec = errc::cancelled;
                       state->open = !result.ec;
                       if (result.ec) state->visit([](auto& ws) { beast::get_lowest_layer(ws).close(); });
                       std::move(handler)(result.ec, result.status);
                     })));
}

void WebSocket::start_read(asio::any_completion_handler<ReadSignature> handler) {
  auto& buffer = state_->buffer;
  buffer.consume(buffer.size());
  const bool started = state_->open && state_->visit([&](auto& ws) {
    close_on_terminal_cancellation(state_, handler);
    ws.async_read(buffer, [state = state_, h = std::move(handler), &ws](beast::error_code ec, std::size_t) mutable {
      if (ec) {
        state->open = false;
        return complete(h, classify(*state, ec), WebSocketMessage{});
      }
      const auto bytes = state->buffer.cdata();
      complete(h, std::error_code{},
               WebSocketMessage{ws.got_binary(), {static_cast<const std::byte*>(bytes.data()), bytes.size()}});
    });
  });
  if (!started) asio::post(executor_, asio::append(std::move(handler), not_open_error(), WebSocketMessage{}));
}

void WebSocket::start_write(std::string text, asio::any_completion_handler<WriteSignature> handler) {
  auto message = std::make_shared<std::string>(std::move(text));
  const bool started = state_->open && state_->visit([&](auto& ws) {
    ws.text(true);
    close_on_terminal_cancellation(state_, handler);
    ws.async_write(asio::buffer(*message), [state = state_, message, h = std::move(handler)](
                                              beast::error_code ec, std::size_t) mutable {
      if (ec) state->open = false;
      complete(h, ec ? classify(*state, ec) : std::error_code{});
    });
  });
  if (!started) asio::post(executor_, asio::append(std::move(handler), not_open_error()));
}

void WebSocket::start_close(asio::any_completion_handler<WriteSignature> handler) {
  const bool started = state_->open && state_->visit([&](auto& ws) {
    state_->open = false;
    close_on_terminal_cancellation(state_, handler);
    ws.async_close(websocket::close_code::normal, [state = state_, h = std::move(handler)](beast::error_code ec) mutable {
      complete(h, ec && !is_closed_by_peer(ec) ? classify(*state, ec) : std::error_code{});
    });
  });
  if (!started) asio::post(executor_, asio::append(std::move(handler), std::error_code{}));
}

void WebSocket::cancel() noexcept { close_for_good(*state_); }

bool WebSocket::is_open() const noexcept { return state_->open; }

std::error_code WebSocket::not_open_error() const noexcept {
  return state_->cancelled ? errc::cancelled : errc::connection_closed;
}

}  // namespace floodgate::net
