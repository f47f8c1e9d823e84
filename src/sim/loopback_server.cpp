#include "loopback_server.hpp"

#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <utility>

namespace floodgate::sim::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
/// A co_spawn completion that logs a coroutine's exception under the server's name.
auto log_failure(std::string name) {
  return [name = std::move(name)](const std::exception_ptr& error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log(LogLevel::error, "{}: connection handler failed: {}", name, e.what());
    }
  };
}
}  // namespace

void LoopbackServer::start(std::string_view name, std::uint16_t port, ServeConnection serve) {
  name_ = std::string(name);
  if (started_) throw Error(fmt::format("{}: start() called twice", name_));
  auto io = std::make_unique<asio::io_context>(1);
  tcp::acceptor acceptor(*io);
  const tcp::endpoint local(asio::ip::make_address_v4("127.0.0.1"), port);
  boost::system::error_code ec;
  acceptor.open(local.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(local, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw Error(fmt::format("{}: cannot listen on 127.0.0.1:{}: {}", name_, port, ec.message()));
  port_ = acceptor.local_endpoint().port();
  serve_ = std::move(serve);
  acceptor_.emplace(std::move(acceptor));
  io_ = std::move(io);
  asio::co_spawn(*io_, accept_loop(), log_failure(name_));
  thread_ = std::thread([io = io_.get()] { io->run(); });
  started_ = true;
}

void LoopbackServer::stop() {
  if (!io_) return;
  io_->stop();
  thread_.join();
  acceptor_.reset();
  io_.reset();  // destroys every pending connection handler, closing its socket
}

asio::awaitable<void> LoopbackServer::accept_loop() {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  for (;;) {
    auto [ec, socket] = co_await acceptor_->async_accept(use_tuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {  // out of descriptors or similar: back off instead of spinning
      asio::steady_timer pause(socket.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(use_tuple);
      continue;
    }
    const auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_(std::move(socket)), log_failure(name_));
  }
}

}  // namespace floodgate::sim::detail
