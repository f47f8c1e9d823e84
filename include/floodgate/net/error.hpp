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
// Whether a failed request may have reached the server matters as much as
// why it failed: a message must not be sent twice. The codes keep the two
// apart (`timeout` and `connection_closed` strike before the request was
// completely written; `response_timeout` and `response_cut_off` after), and
// `outcome_kind_of` is the one rule that says what each means for a retry:
//
//   not_sent       dns_failed, connect_failed, tls_handshake_failed, timeout,
//                  connection_closed: safe to retry anywhere
//   maybe_applied  response_timeout, response_cut_off, protocol_error: the
//                  server may have acted; retried only if the call is idempotent
//   rejected       everything else (certificate_rejected, invalid_url,
//                  insecure_scheme, response_too_large, file_error, cancelled,
//                  upgrade_rejected): another attempt would fail the same way
#pragma once

#include <string>
#include <system_error>
#include <utility>

#include "floodgate/core/outcome.hpp"

namespace floodgate::net {

enum class errc {
  invalid_url = 1,        ///< the URL could not be parsed (scheme, host, port)
  insecure_scheme,        ///< plain http:// was used without `allow_plain_http`
  dns_failed,             ///< the host name did not resolve
  connect_failed,         ///< no TCP connection (refused, unreachable)
  tls_handshake_failed,   ///< the TLS handshake failed for a reason other than the certificate
  certificate_rejected,   ///< the server's certificate is untrusted or does not name the host
  timeout,                ///< connecting or sending the request took too long: it was not completely sent
  connection_closed,      ///< the peer closed or reset the connection before the request was completely sent
  protocol_error,         ///< the peer sent something that is not valid HTTP
  response_too_large,     ///< the response body exceeded the configured limit
  file_error,             ///< a local file (upload source, download target) could not be used
  cancelled,              ///< the operation was cancelled or the client shut down
  upgrade_rejected,       ///< the server answered a WebSocket upgrade with another HTTP status
  response_timeout,       ///< the request was sent; no complete response came in time
  response_cut_off,       ///< the request was sent; the connection closed before the response ended
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
      case errc::response_timeout: return "request sent, response timed out";
      case errc::response_cut_off: return "request sent, connection closed before the response ended";
    }
    return "unknown network error";
  }
  // The codes with a standard meaning compare equal to it (ec == std::errc::timed_out).
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::cancelled: return std::make_error_condition(std::errc::operation_canceled);
      case errc::timeout:
      case errc::response_timeout: return std::make_error_condition(std::errc::timed_out);
      default: return {value, *this};
    }
  }
};

inline const std::error_category& category() noexcept {
  static const ErrorCategory instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

/// What a transport failure means for the request (the table above). Codes
/// of other categories are `rejected`.
inline OutcomeKind outcome_kind_of(std::error_code ec) noexcept {
  if (ec == errc::dns_failed || ec == errc::connect_failed || ec == errc::tls_handshake_failed ||
      ec == errc::timeout || ec == errc::connection_closed) {
    return OutcomeKind::not_sent;
  }
  if (ec == errc::response_timeout || ec == errc::response_cut_off || ec == errc::protocol_error) {
    return OutcomeKind::maybe_applied;
  }
  return OutcomeKind::rejected;
}

/// A transport failure as an outcome (core/outcome.hpp), for adapters;
/// `description` defaults to the error's message.
template <class T = void>
Outcome<T> failure_outcome(std::error_code ec, std::string description = {}) {
  if (description.empty()) description = ec.message();
  const OutcomeKind kind = outcome_kind_of(ec);
  if (kind == OutcomeKind::not_sent) return Outcome<T>::not_sent(std::move(description));
  if (kind == OutcomeKind::maybe_applied) return Outcome<T>::maybe_applied(std::move(description));
  return Outcome<T>::rejected(std::move(description), ec);
}

/// True for failures another attempt may not repeat (not rejected ones).
inline bool is_transient(std::error_code ec) noexcept { return outcome_kind_of(ec) != OutcomeKind::rejected; }

}  // namespace floodgate::net
