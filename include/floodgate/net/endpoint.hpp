// floodgate/net/endpoint.hpp: where a request goes and what it asks for,
// shared by the HTTPS client (net/http_client.hpp) and the WebSocket client
// (net/websocket.hpp).
//
//   auto endpoint = floodgate::net::Endpoint::parse("https://api.telegram.org");
//   auto target = floodgate::net::RequestTarget("/bot").append(token).append("/getMe");
//   fmt::print("{}{}", endpoint.to_string(), target);   // https://api.telegram.org:443/bot2402****/getMe
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "floodgate/core/secret.hpp"

namespace floodgate::net {

/// Where requests go: scheme, host and port. The unit of connection reuse.
struct Endpoint {
  bool tls = true;  ///< https (true) or http
  std::string host;  ///< DNS name or IP literal, without brackets
  std::uint16_t port = 443;

  /// Parses "https://host[:port]" or "http://host[:port]" (IPv6 as "[::1]");
  /// "wss://" and "ws://" are read as https and http. A trailing "/" is accepted, any other path is not. Throws
  /// floodgate::Error on anything else: endpoints come from configuration.
  static Endpoint parse(std::string_view url);

  /// "https://host:port" (no secret is ever part of an endpoint).
  std::string to_string() const;
  /// "host:port", with an IPv6 host in brackets: the Host header's form.
  std::string host_and_port() const;

  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

/// The path and query of a request, built from plain text and secrets. The
/// wire form comes only from `reveal()`; formatting prints `redacted()`:
///
///   auto t = RequestTarget("/bot").append(token).append("/sendMessage");
///   fmt::print("{}", t);   // "/bot2402****/sendMessage"
///
/// Copies share their parts (a reference count, no string or secret copied;
/// an `append` to a shared target copies first), so a copy kept for a log
/// line costs nothing until the line is written.
class RequestTarget {
 public:
  RequestTarget() = default;
  explicit RequestTarget(std::string text) { append(std::move(text)); }

  RequestTarget& append(std::string text);
  RequestTarget& append(const Secret& secret);

  /// The target as sent on the wire. Call only to send it.
  std::string reveal() const;
  /// The target with every secret part redacted; safe for logs and errors.
  std::string redacted() const;

 private:
  using Part = std::variant<std::string, Secret>;
  std::vector<Part>& parts_to_append_to();

  std::shared_ptr<std::vector<Part>> parts_;  // null: empty
};

/// Extra request headers, in order: (name, value).
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

}  // namespace floodgate::net

template <>
struct fmt::formatter<floodgate::net::RequestTarget> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const floodgate::net::RequestTarget& target, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(target.redacted(), ctx);
  }
};
