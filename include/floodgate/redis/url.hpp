// floodgate/redis/url.hpp: where Redis is and who we are to it.
//
//   auto url = floodgate::redis::parse_redis_url("rediss://app:s3cret@redis.internal:6380/2");
//   url.tls == true; url.host == "redis.internal"; url.port == 6380; url.db == 2;
//   url.user == "app"; url.password.reveal() == "s3cret"
//
// Schemes: `redis://` (plain TCP) and `rediss://` (TLS, peer verified).
// Default port 6379, default database 0. The user part is optional
// (`redis://:pass@host` authenticates as Redis' `default` user, as
// `requirepass` expects); user and password may be percent-encoded. Parsed
// with Boost.URL; a malformed URL throws `floodgate::Error` whose message
// never contains the password.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "floodgate/core/secret.hpp"

namespace floodgate::redis {

struct RedisUrl {
  bool tls = false;
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  std::string user;  ///< empty: AUTH with the password alone (the `default` user)
  Secret password;   ///< empty: no AUTH
  int db = 0;

  /// The URL with the password redacted, for logs: `redis://app:****@host:6379/0`.
  std::string redacted() const;
};

/// Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://…`.
/// Throws floodgate::Error (without the password) when it is not one.
RedisUrl parse_redis_url(std::string_view text);

}  // namespace floodgate::redis
