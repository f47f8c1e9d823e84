#include "open_transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

#include <memory>
#include <string>

#include "floodgate/net/tls.hpp"

namespace floodgate::net::detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
}

template <class TcpStream>
asio::awaitable<std::error_code> connect_tcp(TcpStream& stream, const Endpoint& endpoint, SteadyTime deadline) {
  const auto executor = co_await asio::this_coro::executor;

  // The resolver has no timeout of its own: a timer cancels it.
  auto resolver = std::make_shared<tcp::resolver>(executor);
  asio::steady_timer resolve_timer(executor, deadline);
  resolve_timer.async_wait([weak = std::weak_ptr(resolver)](const boost::system::error_code& ec) {
    if (auto alive = weak.lock(); alive && !ec) alive->cancel();
  });
  auto [resolve_error, addresses] =
      co_await resolver->async_resolve(endpoint.host, std::to_string(endpoint.port), use_tuple);
  resolve_timer.cancel();
  if (resolve_error) {
    co_return std::chrono::steady_clock::now() >= deadline ? errc::timeout : errc::dns_failed;
  }

  stream.expires_at(deadline);
  auto [connect_error, peer] = co_await stream.async_connect(addresses, use_tuple);
  if (connect_error) co_return connect_error == beast::error::timeout ? errc::timeout : errc::connect_failed;
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);  // small messages; never wait for Nagle
  stream.expires_never();
  co_return std::error_code{};
}

template <class Tls>
asio::awaitable<std::error_code> handshake_tls(Tls& tls, const Endpoint& endpoint, SteadyTime deadline) {
  if (set_tls_peer_name(tls.native_handle(), endpoint.host)) co_return errc::tls_handshake_failed;
  auto& stream = beast::get_lowest_layer(tls);
  stream.expires_at(deadline);
  auto [handshake_error] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_tuple);
  stream.expires_never();
  if (!handshake_error) co_return std::error_code{};
  if (handshake_error == beast::error::timeout) co_return errc::timeout;
  const bool certificate_failed = SSL_get_verify_result(tls.native_handle()) != X509_V_OK;
  co_return certificate_failed ? errc::certificate_rejected : errc::tls_handshake_failed;
}

template asio::awaitable<std::error_code> connect_tcp(beast::tcp_stream&, const Endpoint&, SteadyTime);
template asio::awaitable<std::error_code> connect_tcp(StrandTcpStream&, const Endpoint&, SteadyTime);
template asio::awaitable<std::error_code> handshake_tls(TlsStream&, const Endpoint&, SteadyTime);
template asio::awaitable<std::error_code> handshake_tls(StrandTlsStream&, const Endpoint&, SteadyTime);

}  // namespace floodgate::net::detail
