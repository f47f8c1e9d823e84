// Private to floodgate_net: opening a TCP connection and its TLS layer, shared
// by the HTTPS client and the WebSocket client so that both resolve, connect,
// verify and classify failures the same way.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <chrono>
#include <system_error>

#include "floodgate/net/endpoint.hpp"
#include "floodgate/net/error.hpp"

namespace floodgate::net::detail {

using SteadyTime = std::chrono::steady_clock::time_point;

/// The TLS layer of every client connection. Asio's own stream rather than
/// beast::ssl_stream: with Boost 1.81, clang 16 finds beast::ssl_stream's
/// `async_teardown` ambiguous (a friend declared twice), which breaks the
/// WebSocket client and so the clang-built fuzzers. Beast's WebSocket teardown
/// for Asio's stream comes from <boost/beast/websocket/ssl.hpp>.
using TlsStream = boost::asio::ssl::stream<boost::beast::tcp_stream>;

/// Streams on a concrete io_context strand, for WebSockets whose executor is
/// one (the ticker's). Beast and Asio copy a stream's executor and query it
/// on every socket read; through an `any_io_executor` holding a strand each
/// of those allocates (the strand does not fit its small buffer, and a
/// blocking query on a type-erased executor returns a heap copy).
using IoStrand = boost::asio::strand<boost::asio::io_context::executor_type>;
using StrandTcpStream = boost::beast::basic_stream<boost::asio::ip::tcp, IoStrand>;
using StrandTlsStream = boost::asio::ssl::stream<StrandTcpStream>;

/// Resolves `endpoint.host` and connects `tcp` to it by `deadline`, with
/// TCP_NODELAY set. Fails with errc::timeout, dns_failed or connect_failed.
/// Defined for beast::tcp_stream and StrandTcpStream.
template <class TcpStream>
boost::asio::awaitable<std::error_code> connect_tcp(TcpStream& tcp, const Endpoint& endpoint, SteadyTime deadline);

/// Performs the client TLS handshake on a connected stream by `deadline`, with
/// SNI and the host-name check for `endpoint.host`. Fails with errc::timeout,
/// certificate_rejected or tls_handshake_failed. Defined for TlsStream and
/// StrandTlsStream.
template <class Tls>
boost::asio::awaitable<std::error_code> handshake_tls(Tls& tls, const Endpoint& endpoint, SteadyTime deadline);

}  // namespace floodgate::net::detail
