#include "floodgate/net/endpoint.hpp"

#include <charconv>

#include "floodgate/core/error.hpp"

namespace floodgate::net {

Endpoint Endpoint::parse(std::string_view url) {
  // The URL is not echoed: a mistaken full API URL could carry a token.
  const auto invalid = [] {
    return Error("invalid endpoint URL: expected http(s):// or ws(s)://host[:port] with no path");
  };
  Endpoint endpoint;
  // ws:// and wss:// name the same transports for WebSocket endpoints.
  if (url.starts_with("https://") || url.starts_with("wss://")) {
    url.remove_prefix(url.find("://") + 3);
  } else if (url.starts_with("http://") || url.starts_with("ws://")) {
    url.remove_prefix(url.find("://") + 3);
    endpoint.tls = false;
    endpoint.port = 80;
  } else {
    throw invalid();
  }
  if (url.ends_with('/')) url.remove_suffix(1);
  if (url.empty() || url.find_first_of("/?#@ ") != std::string_view::npos) throw invalid();

  std::string_view host = url;
  std::string_view port_text;
  bool has_port = false;
  if (url.front() == '[') {
    const auto close = url.find(']');
    if (close == std::string_view::npos) throw invalid();
    host = url.substr(1, close - 1);
    const auto rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw invalid();
      has_port = true;
      port_text = rest.substr(1);
    }
  } else if (const auto colon = url.find(':'); colon != std::string_view::npos) {
    host = url.substr(0, colon);
    has_port = true;
    port_text = url.substr(colon + 1);
  }
  if (host.empty()) throw invalid();
  if (has_port) {
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      throw invalid();
    }
    endpoint.port = static_cast<std::uint16_t>(port);
  }
  endpoint.host = std::string(host);
  return endpoint;
}

std::string Endpoint::host_and_port() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string Endpoint::to_string() const { return (tls ? "https://" : "http://") + host_and_port(); }

RequestTarget& RequestTarget::append(std::string text) {
  parts_.emplace_back(std::move(text));
  return *this;
}

RequestTarget& RequestTarget::append(const Secret& secret) {
  parts_.emplace_back(secret);
  return *this;
}

std::string RequestTarget::reveal() const {
  std::string out;
  for (const auto& part : parts_) {
    out += std::holds_alternative<Secret>(part) ? std::get<Secret>(part).reveal() : std::get<std::string>(part);
  }
  return out;
}

std::string RequestTarget::redacted() const {
  std::string out;
  for (const auto& part : parts_) {
    out += std::holds_alternative<Secret>(part) ? std::get<Secret>(part).redacted() : std::get<std::string>(part);
  }
  return out;
}

}  // namespace floodgate::net
