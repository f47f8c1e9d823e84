#include "floodgate/redis/url.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <fmt/format.h>

#include <charconv>

#include "floodgate/core/error.hpp"

namespace floodgate::redis {

std::string RedisUrl::redacted() const {
  std::string auth;
  if (!user.empty() || !password.empty()) auth = user + (password.empty() ? "" : ":****") + "@";
  const bool v6 = host.find(':') != std::string::npos;
  return fmt::format("{}://{}{}{}{}:{}/{}", tls ? "rediss" : "redis", auth, v6 ? "[" : "", host, v6 ? "]" : "", port, db);
}

RedisUrl parse_redis_url(std::string_view text) {
  // Messages name the URL only through what parsed, never the raw text: it may hold a password.
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) throw Error("Redis URL is not a URL (expected redis://[user[:password]@]host[:port][/db])");
  const boost::urls::url_view& u = *parsed;
  RedisUrl out;
  if (u.scheme() == "redis") {
    out.tls = false;
  } else if (u.scheme() == "rediss") {
    out.tls = true;
  } else {
    throw Error(fmt::format("Redis URL has scheme \"{}\"; expected redis:// or rediss://", std::string(u.scheme())));
  }
  if (!u.has_authority() || u.encoded_host().empty()) throw Error("Redis URL names no host");
  out.host = u.host_type() == boost::urls::host_type::ipv6 ? std::string(u.encoded_host_address())
                                                            : std::string(u.host_address());
  if (u.has_port()) {
    const std::string_view port = u.port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      throw Error("Redis URL has an invalid port");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  if (u.has_userinfo()) {
    out.user = std::string(u.user());
    if (u.has_password()) out.password = Secret(std::string(u.password()));
  }
  std::string_view path = u.encoded_path();
  if (!path.empty() && path != "/") {
    path.remove_prefix(1);
    int db = -1;
    const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
    if (ec != std::errc() || end != path.data() + path.size() || db < 0) {
      throw Error(fmt::format("Redis URL's path must be a database number, not \"{}\"", std::string(path)));
    }
    out.db = db;
  }
  if (u.has_query()) throw Error("Redis URL has a query; options are not read from the URL");
  return out;
}

}  // namespace floodgate::redis
