// floodgate/net/error.hpp: why a network exchange failed.
//
// Every failure of the HTTPS client and of the WebSocket client ends in
// one `std::error_code` in the `floodgate::net::category()` category, one
// value per failure class, so that callers decide what to do with a plain
// comparison instead of decoding Asio, Beast and OpenSSL codes:
//
//   auto [ec, response] = co_await client.async_request(req, asio::use_awaitable);
//   if (ec == floodgate::net::errc::timeout) retry_later();
//   else if (ec == floodgate::net::errc::certificate_rejected) alert_operator();
//
// Transient classes (dns_failed, connect_failed, timeout, connection_closed)
// are worth retrying; the others are not (see `is_transient`).
#pragma once

#include <string>
#include <system_error>

namespace floodgate::net {

enum class errc {
  invalid_url = 1,        ///< the URL could not be parsed (scheme, host, port)
  insecure_scheme,        ///< plain http:// was used without `allow_plain_http`
  dns_failed,             ///< the host name did not resolve
  connect_failed,         ///< no TCP connection (refused, unreachable)
  tls_handshake_failed,   ///< the TLS handshake failed for a reason other than the certificate
  certificate_rejected,   ///< the server's certificate is untrusted or does not name the host
  timeout,                ///< a connect, read or total timeout expired
  connection_closed,      ///< the peer closed or reset the connection before the response ended
  protocol_error,         ///< the peer sent something that is not valid HTTP
  response_too_large,     ///< the response body exceeded the configured limit
  file_error,             ///< a local file (upload source, download target) could not be used
  cancelled,              ///< the operation was cancelled or the client shut down
  upgrade_rejected,       ///< the server answered a WebSocket upgrade with another HTTP status
};

}  // namespace floodgate::net

template <>
struct std::is_error_code_enum<floodgate::net::errc> : std::true_type {};

namespace floodgate::net {

class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "floodgate.net"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::invalid_url: return "invalid URL";
      case errc::insecure_scheme: return "plain http is not allowed for this client";
      case errc::dns_failed: return "host name resolution failed";
      case errc::connect_failed: return "could not connect";
      case errc::tls_handshake_failed: return "TLS handshake failed";
      case errc::certificate_rejected: return "server certificate rejected";
      case errc::timeout: return "timed out";
      case errc::connection_closed: return "connection closed by peer";
      case errc::protocol_error: return "malformed HTTP from peer";
      case errc::response_too_large: return "response body too large";
      case errc::file_error: return "local file error";
      case errc::cancelled: return "operation cancelled";
      case errc::upgrade_rejected: return "WebSocket upgrade rejected by the server";
    }
    return "unknown network error";
  }
};

inline const std::error_category& category() noexcept {
  static const ErrorCategory instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// True for failures that another attempt (possibly on another connection)
/// may not repeat: DNS, connect, timeout, connection closed.
inline bool is_transient(std::error_code ec) noexcept {
  return ec == errc::dns_failed || ec == errc::connect_failed || ec == errc::timeout ||
         ec == errc::connection_closed;
}

}  // namespace floodgate::net
