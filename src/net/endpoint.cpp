#include "floodgate/net/endpoint.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>

#include "floodgate/core/error.hpp"

namespace floodgate::net {

Endpoint Endpoint::parse(std::string_view url) {
  // Messages never echo the URL or its path: a full API URL given by mistake
  // may carry a token ("https://api.telegram.org/bot<token>/getMe").
  const auto invalid = [](std::string_view why) {
    return Error(fmt::format("invalid endpoint URL: {}; expected http(s):// or ws(s)://host[:port] with no path",
                             why));
  };
  const auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw invalid("not a URL");
  const boost::urls::url_view& u = *parsed;

  Endpoint endpoint;
  // ws:// and wss:// name the same transports for WebSocket endpoints.
  switch (u.scheme_id()) {
    case boost::urls::scheme::https:
    case boost::urls::scheme::wss: break;
    case boost::urls::scheme::http:
    case boost::urls::scheme::ws:
      endpoint.tls = false;
      endpoint.port = 80;
      break;
    default: throw invalid(fmt::format("scheme \"{}\"", std::string_view(u.scheme())));
  }
  if (u.has_userinfo()) throw invalid("it has user info");
  if (u.has_query() || u.has_fragment()) throw invalid("it has a query or fragment");
  const std::string_view path = u.encoded_path();
  // Boost.URL 1.81 reads "https://host:12a" as port "12" and path "a".
  if (!path.empty() && path.front() != '/') {
    throw invalid(u.has_port() ? "the port is not a number from 1 to 65535" : "not a URL");
  }
  if (!path.empty() && path != "/") throw invalid("it has a path");

  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6: endpoint.host = std::string(u.encoded_host_address()); break;
    case boost::urls::host_type::name:
      if (u.encoded_host().find('%') != std::string_view::npos) throw invalid("the host name has percent-escapes");
      endpoint.host = std::string(u.encoded_host());
      break;
    default: throw invalid("no usable host");
  }
  if (endpoint.host.empty()) throw invalid("no host");

  if (u.has_port()) {
    const std::string_view text = u.port();
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535) {
      throw invalid("the port is not a number from 1 to 65535");
    }
    endpoint.port = static_cast<std::uint16_t>(port);
  }
  return endpoint;
}

std::string Endpoint::host_and_port() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

std::string Endpoint::to_string() const { return (tls ? "https://" : "http://") + host_and_port(); }

std::vector<RequestTarget::Part>& RequestTarget::parts_to_append_to() {
  if (!parts_) {
    parts_ = std::make_shared<std::vector<Part>>();
    parts_->reserve(4);  // "/bot", the token, "/method" and a query: one allocation
  } else if (parts_.use_count() > 1) {
    parts_ = std::make_shared<std::vector<Part>>(*parts_);  // shared with a copy: copy before changing
  }
  return *parts_;
}

RequestTarget& RequestTarget::append(std::string text) {
  parts_to_append_to().emplace_back(std::move(text));
  return *this;
}

RequestTarget& RequestTarget::append(const Secret& secret) {
  parts_to_append_to().emplace_back(secret);
  return *this;
}

std::string RequestTarget::reveal() const {
  std::string out;
  if (!parts_) return out;
  for (const auto& part : *parts_) {
    out += std::holds_alternative<Secret>(part) ? std::get<Secret>(part).reveal() : std::get<std::string>(part);
  }
  return out;
}

std::string RequestTarget::redacted() const {
  std::string out;
  if (!parts_) return out;
  for (const auto& part : *parts_) {
    out += std::holds_alternative<Secret>(part) ? std::get<Secret>(part).redacted() : std::get<std::string>(part);
  }
  return out;
}

}  // namespace floodgate::net
