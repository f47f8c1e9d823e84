// floodgate/redis/json.hpp: nlohmann::json serializers for the Redis
// options (rules: floodgate/core/json.hpp).
//
//   {"pool_name": "bots", "on_unavailable": "fail_open", "open_timeout": "3s",
//    "client": {"connect_timeout": "2s", "command_timeout": "2s", "max_pending": 100000,
//               "reconnect": {"floor": "100ms", "cap": "5s", "healthy_after": "5s", "max_attempts": 0}}}
//   {"pool_name": "bots", "on_unavailable": "fail_closed", "poll": "2ms", "reservation_ttl": "250ms"}
//                                                      // ReservingGateOptions
//
// The Redis URL is not an option here (it carries a password): it is given
// to the client in code. Code-only members (a fallback sink, TLS files) are
// not part of the JSON; a key naming one is refused.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/limit_set.hpp"
#include "floodgate/redis/reserving_gate.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

namespace floodgate::redis {

inline void to_json(nlohmann::json& j, const FailurePolicy& p) { j = to_string(p); }
inline void from_json(const nlohmann::json& j, FailurePolicy& p) {
  if (j == to_string(FailurePolicy::fail_open)) {
    p = FailurePolicy::fail_open;
  } else if (j == to_string(FailurePolicy::fail_closed)) {
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
  v("reconnect", o.reconnect);
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

template <class V>
void describe(V& v, ReservingGateOptions& o) {
  v("pool_name", o.pool_name);
  v("on_unavailable", o.on_unavailable);
  v("poll", o.poll);
  v("reservation_ttl", o.reservation_ttl);
}

FLOODGATE_JSON_DESCRIBED(RedisClientOptions)
FLOODGATE_JSON_DESCRIBED(RedisCooldownOptions)
FLOODGATE_JSON_DESCRIBED(RedisLimitOptions)
FLOODGATE_JSON_DESCRIBED(ReservingGateOptions)

}  // namespace floodgate::redis
