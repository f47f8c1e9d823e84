// Per-operation cancellation of net::WebSocket, against sim::KiteTickerServer
// (a real WebSocket server on loopback) and a listener that never answers:
// `||` with a timer (tests/async/cancel_race.hpp) and signals emitted by hand.
#include <catch2/catch.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <future>
#include <thread>

#include "../async/cancel_race.hpp"
#include "../telegram/io_runner.hpp"
#include "floodgate/net/websocket.hpp"
#include "floodgate/sim/kite_ticker_server.hpp"

using floodgate::Secret;
using floodgate::net::Endpoint;
using floodgate::net::RequestTarget;
using floodgate::net::WebSocket;
using floodgate::sim::KiteTickerServer;
using floodgate::test::IoRunner;
using floodgate::test::run_race;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

struct Ticker {
  Ticker() : server(options()) { server.start(); }
  static floodgate::sim::KiteTickerServerOptions options() {
    floodgate::sim::KiteTickerServerOptions o;
    o.keys = {{"key-a", Secret("access-token-a-123456")}};
    o.heartbeat_interval = 20ms;
    return o;
  }
  /// An open WebSocket to the server.
  std::unique_ptr<WebSocket> connect(IoRunner& io) {
    auto ws = std::make_unique<WebSocket>(io.executor(), floodgate::net::WebSocketOptions{.allow_plain_ws = true});
    auto [ec, status] = ws->async_connect(Endpoint::parse(server.url()),
                                          RequestTarget("/?api_key=key-a&access_token=access-token-a-123456"), {},
                                          asio::use_future)
                            .get();
    REQUIRE_FALSE(ec);
    REQUIRE(status == 101);
    return ws;
  }
  /// Silences the connection: the server counts a session only once its 101 is
  /// written, which may be just after the client has read it.
  bool silence() {
    for (int i = 0; i < 200; ++i) {
      if (server.silence_connections("key-a") == 1) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  bool eventually_no_connections() {
    for (int i = 0; i < 500 && server.stats().connections > 0; ++i) std::this_thread::sleep_for(10ms);
    return server.stats().connections == 0;
  }
  KiteTickerServer server;
};

}  // namespace

TEST_CASE("WebSocket: async_read || timer on a silent connection ends with the timer and closes it", "[net][cancel]") {
  Ticker ticker;
  IoRunner io;
  auto ws = ticker.connect(io);
  REQUIRE(ticker.silence());
  // Drain what was already on its way (heartbeats), then the connection is quiet.
  for (;;) {
    auto read = ws->async_read(asio::as_tuple(asio::use_awaitable));
    const auto raced = run_race(io.executor(), std::move(read), 200ms);
    if (!raced.timer_won) {
      REQUIRE_FALSE(raced.ec);
      continue;
    }
    CHECK(raced.took < 600ms);
    break;
  }
  // Terminal cancellation closed it, as cancel() does: later operations say so at once.
  CHECK_FALSE(ws->is_open());
  auto [ec, message] = ws->async_read(asio::use_future).get();
  CHECK(ec == std::errc::operation_canceled);
  CHECK(ticker.eventually_no_connections());
}

TEST_CASE("WebSocket: async_connect || timer against a server that never answers the upgrade ends with the timer",
          "[net][cancel]") {
  IoRunner io;
  // Listening, never accepting: the kernel completes the TCP handshake, nobody replies.
  asio::io_context listener_io;
  asio::ip::tcp::acceptor listener(listener_io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = listener.local_endpoint().port();
  WebSocket ws(io.executor(), {.allow_plain_ws = true, .handshake_timeout = 10s});
  auto connect = ws.async_connect(Endpoint::parse("ws://127.0.0.1:" + std::to_string(port)), RequestTarget("/"), {},
                                  asio::as_tuple(asio::use_awaitable));
  const auto raced = run_race(io.executor(), std::move(connect), 150ms);
  CHECK(raced.timer_won);
  CHECK(raced.took < 1s);  // not the 10 s handshake timeout
  CHECK_FALSE(ws.is_open());
  auto [ec, message] = ws.async_read(asio::use_future).get();
  CHECK(ec == std::errc::operation_canceled);
}

TEST_CASE("WebSocket: async_write_text and async_close cancelled (terminal) end with operation_canceled",
          "[net][cancel]") {
  Ticker ticker;
  IoRunner io;
  auto ws = ticker.connect(io);
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  SECTION("write") {
    asio::post(io.executor(), [&] {
      // 1 MB: Beast masks and writes it in 4 KB pieces, so the write is still going when the signal comes.
      ws->async_write_text(std::string(1u << 20, 'x'),
                           asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) { done.set_value(ec); }));
      signal.emit(asio::cancellation_type::terminal);
    });
  }
  SECTION("close") {
    asio::post(io.executor(), [&] {
      ws->async_close(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) { done.set_value(ec); }));
      signal.emit(asio::cancellation_type::terminal);
    });
  }
  auto ec = done.get_future();
  REQUIRE(ec.wait_for(1s) == std::future_status::ready);
  CHECK(ec.get() == std::errc::operation_canceled);
  CHECK_FALSE(ws->is_open());
  CHECK(ticker.eventually_no_connections());
}

TEST_CASE("WebSocket: partial cancellation is not honoured, the read goes on and gets the next message",
          "[net][cancel]") {
  Ticker ticker;
  IoRunner io;
  auto ws = ticker.connect(io);
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  asio::post(io.executor(), [&] {
    ws->async_read(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, floodgate::net::WebSocketMessage) {
      done.set_value(ec);
    }));
    signal.emit(asio::cancellation_type::partial);
  });
  CHECK_FALSE(done.get_future().get());  // a heartbeat comes within 20 ms
  CHECK(ws->is_open());
  ws->cancel();
}
