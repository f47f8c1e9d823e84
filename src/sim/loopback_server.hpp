// The listening half of the HTTP simulators (BotApiServer, HttpApiServer): a
// socket on 127.0.0.1, an accept loop handing each connection to the
// simulator's coroutine, and the one thread that runs them. Private to src/sim.
//
//   LoopbackServer server;
//   server.start("BotApiServer", port, [this](tcp::socket socket) { return serve_connection(std::move(socket)); });
//   server.port();   // the port it listens on (a free one when asked for 0)
//   server.stop();   // joins the thread; destroys every pending handler, closing its socket
//
// Not synchronised: its owner serialises start, stop and io() (a run mutex).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace floodgate::sim::detail {

class LoopbackServer {
 public:
  using ServeConnection = std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket)>;

  LoopbackServer() = default;
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;
  ~LoopbackServer() { stop(); }

  /// Listens on 127.0.0.1:`port` (0: a free port) and serves every accepted
  /// connection with `serve` on a new thread. Throws floodgate::Error naming
  /// `name` when it cannot listen, or when called a second time (a server
  /// starts once, even after stop()). A failed accept (out of descriptors)
  /// pauses 50 ms instead of spinning; a handler's exception is logged.
  void start(std::string_view name, std::uint16_t port, ServeConnection serve);

  /// Stops the thread, then destroys the acceptor and every pending handler
  /// (closing its socket). Does nothing when not running.
  void stop();

  /// The context the server runs on, to post work to; null when not running.
  boost::asio::io_context* io() const noexcept { return io_.get(); }
  /// The port it listens on; 0 before start().
  std::uint16_t port() const noexcept { return port_; }

 private:
  boost::asio::awaitable<void> accept_loop();

  std::string name_;
  ServeConnection serve_;
  std::unique_ptr<boost::asio::io_context> io_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  bool started_ = false;
};

}  // namespace floodgate::sim::detail
