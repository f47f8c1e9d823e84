// floodgate/redis/json.hpp: nlohmann::json serializers for the Redis
// options (rules: floodgate/core/json.hpp).
//
//   {"pool_name": "bots", "on_unavailable": "fail_open", "open_timeout": "3s",
//    "client": {"connect_timeout": "2s", "command_timeout": "2s", "max_pending": 100000}}
//
// The Redis URL is not an option here (it carries a password): it is given
// to the client in code. Code-only members (a fallback sink, TLS files, the
// reconnect policy) are not part of the JSON; a key naming one is refused.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/limit_set.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace floodgate::redis {

inline void to_json(nlohmann::json& j, const FailurePolicy& p) {
  j = p == FailurePolicy::fail_open ? "fail_open" : "fail_closed";
}
inline void from_json(const nlohmann::json& j, FailurePolicy& p) {
  if (j == "fail_open") {
    p = FailurePolicy::fail_open;
  } else if (j == "fail_closed") {
    p = FailurePolicy::fail_closed;
  } else {
    throw Error(fmt::format("expected \"fail_open\" or \"fail_closed\", got {}", j.dump()));
  }
}

template <class V>
void describe(V& v, RedisClientOptions& o) {
  v("connect_timeout", o.connect_timeout);
  v("command_timeout", o.command_timeout);
  v("max_pending", o.max_pending);
}
template <class V>
void describe(V& v, RedisCooldownOptions& o) {
  v("pool_name", o.pool_name);
  v("on_unavailable", o.on_unavailable);
  v("open_timeout", o.open_timeout);
  v("client", o.client);
}
template <class V>
void describe(V& v, RedisLimitOptions& o) {
  v("pool_name", o.pool_name);
  v("owner", o.owner);
  v("on_unavailable", o.on_unavailable);
  v("lease", o.lease);
  v("lease_ttl", o.lease_ttl);
}

inline void to_json(nlohmann::json& j, const RedisClientOptions& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, RedisClientOptions& o) {
  json_detail::read_object(j, o, "RedisClientOptions");
}
inline void to_json(nlohmann::json& j, const RedisCooldownOptions& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, RedisCooldownOptions& o) {
  json_detail::read_object(j, o, "RedisCooldownOptions");
}
inline void to_json(nlohmann::json& j, const RedisLimitOptions& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, RedisLimitOptions& o) {
  json_detail::read_object(j, o, "RedisLimitOptions");
}

}  // namespace floodgate::redis
