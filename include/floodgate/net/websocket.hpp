// floodgate/net/websocket.hpp: one client WebSocket connection (ws:// or wss://).
//
// `WebSocket` is an Asio I/O object in the mould of `ip::tcp::socket`: it opens
// one connection, reads whole messages, writes text messages, and closes. It
// adds to Beast what every client needs and nobody should write twice: DNS,
// TCP and TLS with peer verification and the host-name check on, a bound on
// the whole opening handshake, the HTTP status of a refused upgrade (a ticker
// says 403 for a bad token and 429 for one connection too many), automatic
// pings while the peer is quiet, and one `floodgate::net::errc` per failure.
//
//   floodgate::net::WebSocket ws(strand, {.tls = tls_context});
//   auto target = floodgate::net::RequestTarget("/?api_key=k&access_token=").append(token);
//   auto [ec, status] = co_await ws.async_connect(Endpoint::parse("wss://ws.kite.trade"), target,
//                                                 {{"X-Kite-Version", "3"}}, asio::use_awaitable);
//   if (ec == floodgate::net::errc::upgrade_rejected && status == 403) give_up();
//   for (;;) {
//     auto [read_error, message] = co_await ws.async_read(asio::use_awaitable);
//     if (read_error) break;                  // connection_closed, timeout, cancelled, ...
//     if (message.binary) parse(message.data);  // valid until the next async_read
//   }
//
// Like a socket, a WebSocket is not thread-safe: call it from one thread or
// strand, keep at most one read and one write (or close) in flight, and let
// `cancel()` abort them. The request target may hold `Secret`s; they are
// revealed on the wire only and print redacted everywhere else.
//
// Cancellation (the handler's cancellation slot: bind_cancellation_slot, `||`;
// emit it on the WebSocket's executor, as for any Asio I/O object): every
// operation honours `terminal` cancellation, and ends at once with
// errc::cancelled (== std::errc::operation_canceled). Like `cancel()`, it
// closes the connection: a stream cannot resume a message half read or half
// written, so the object is then only good for destruction (is_open() false;
// every later operation completes with errc::cancelled). A cancelled
// async_connect stops the step it was in (DNS, TCP, TLS, upgrade). A message
// whose write was cancelled may have reached the peer in part or whole; one
// that had wholly left when the signal came completes with success (it was
// sent), and the connection is closed all the same.
// `partial` and `total` are not honoured, for the same reason.
//
// Completion tokens: callbacks, `asio::use_future` and `asio::use_awaitable`.
// Errors are `std::error_code`, so futures and coroutines get them as the first
// element of a tuple, as with `HttpsClient`.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "floodgate/net/error.hpp"
#include "floodgate/net/endpoint.hpp"

namespace floodgate::net {

struct WebSocketOptions {
  /// TLS context for wss://; null means `make_client_tls_context()` (system CAs).
  std::shared_ptr<boost::asio::ssl::context> tls;
  /// Permit plain ws:// endpoints (local simulators). Off by default.
  bool allow_plain_ws = false;
  /// Bounds DNS, TCP connect, TLS handshake and the HTTP upgrade together.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  /// When the peer sends nothing (not even a pong) for half of this, a ping is
  /// sent; after the whole of it the connection fails with errc::timeout. Zero
  /// disables both.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(10)};
  /// Larger incoming messages fail the read with errc::response_too_large.
  std::size_t max_message_bytes = 16u << 20;
  std::string user_agent = "floodgate";
};

/// One received message. `data` borrows the WebSocket's buffer and stays valid
/// until the next `async_read` starts.
struct WebSocketMessage {
  bool binary = false;
  std::span<const std::byte> data;

  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
  }
};

namespace detail {
struct WebSocketState;
}

class WebSocket {
 public:
  using executor_type = boost::asio::any_io_executor;
  using ConnectSignature = void(std::error_code, int /*http status of the upgrade response*/);
  using ReadSignature = void(std::error_code, WebSocketMessage);
  using WriteSignature = void(std::error_code);

  /// Throws floodgate::Error if the default TLS context cannot be created.
  explicit WebSocket(executor_type executor, WebSocketOptions options = {});
  /// Closes the socket abruptly; operations in flight complete with errc::cancelled.
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  /// Opens the connection and performs the upgrade to `target` with the extra
  /// `headers`. Completes with the upgrade response's HTTP status (101 on
  /// success; e.g. 403 with errc::upgrade_rejected; 0 when no response came).
  /// A WebSocket connects once; make a new one to reconnect.
  template <class CompletionToken>
  auto async_connect(Endpoint endpoint, RequestTarget target, HttpHeaders headers, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, ConnectSignature>(
        [this](auto handler, Endpoint e, RequestTarget t, HttpHeaders h) {
          start_connect(std::move(e), std::move(t), std::move(h),
                        boost::asio::any_completion_handler<ConnectSignature>(std::move(handler)));
        },
        token, std::move(endpoint), std::move(target), std::move(headers));
  }

  /// Reads the next whole message (control frames are handled inside).
  template <class CompletionToken>
  auto async_read(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, ReadSignature>(
        [this](auto handler) {
          start_read(boost::asio::any_completion_handler<ReadSignature>(std::move(handler)));
        },
        token);
  }

  /// Sends `text` as one text message.
  template <class CompletionToken>
  auto async_write_text(std::string text, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, WriteSignature>(
        [this](auto handler, std::string t) {
          start_write(std::move(t), boost::asio::any_completion_handler<WriteSignature>(std::move(handler)));
        },
        token, std::move(text));
  }

  /// Sends a close frame (normal closure) and waits for the peer's.
  template <class CompletionToken>
  auto async_close(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, WriteSignature>(
        [this](auto handler) {
          start_close(boost::asio::any_completion_handler<WriteSignature>(std::move(handler)));
        },
        token);
  }

  /// Closes the TCP connection at once (no close frame); every operation in
  /// flight completes with errc::cancelled. Safe to call at any time, twice too.
  void cancel() noexcept;

  /// True between a successful connect and the first failure, close or cancel.
  bool is_open() const noexcept;
  executor_type get_executor() const noexcept { return executor_; }

 private:
  void start_connect(Endpoint endpoint, RequestTarget target, HttpHeaders headers,
                     boost::asio::any_completion_handler<ConnectSignature> handler);
  void start_read(boost::asio::any_completion_handler<ReadSignature> handler);
  void start_write(std::string text, boost::asio::any_completion_handler<WriteSignature> handler);
  void start_close(boost::asio::any_completion_handler<WriteSignature> handler);
  std::error_code not_open_error() const noexcept;

  executor_type executor_;
  std::shared_ptr<detail::WebSocketState> state_;
};

}  // namespace floodgate::net
