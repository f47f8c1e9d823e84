// floodgate/kite/json.hpp: nlohmann::json serializers for the Kite ticker
// managers' options (rules: floodgate/core/json.hpp).
//
//   {
//     "per_key": {"max_connections": 3, "max_instruments_per_connection": 3000,
//                 "connection": {"url": "wss://ws.kite.trade", "connect_timeout": "10s", "watchdog_timeout": "5s",
//                                "reconnect": {"floor": "1s", "cap": "60s", "max_attempts": 50}},
//                 "batches_kept": 32},
//     "distribution": "round_robin",          // or "manual"
//     "default_mode": "quote",                // "ltp", "quote", "full"
//     "health_check_interval": "5s", "failover_after": "30s",
//     "channel_capacity": 256, "conflate_ticks": false, "per_connection_channels": false
//   }
//
// Code-only members are not part of the JSON (a key naming one is refused as
// unknown): the keys themselves (`kite_keys_from(env)` reads them, and their
// secrets never go into a written config), the TLS context, callbacks and
// on_auth_failed.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/kite/multi_api_manager.hpp"
#include "floodgate/kite/ticker_manager.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <string>

namespace floodgate::kite {

inline void to_json(nlohmann::json& j, const Mode& mode) { j = std::string(to_string(mode)); }
inline void from_json(const nlohmann::json& j, Mode& mode) {
  const auto parsed = j.is_string() ? parse_mode(j.get<std::string>()) : std::nullopt;
  if (!parsed) throw Error(fmt::format("mode: expected \"ltp\", \"quote\" or \"full\", got {}", j.dump()));
  mode = *parsed;
}
inline void to_json(nlohmann::json& j, const DistributionStrategy& s) {
  j = s == DistributionStrategy::round_robin ? "round_robin" : "manual";
}
inline void from_json(const nlohmann::json& j, DistributionStrategy& s) {
  if (j == "round_robin") {
    s = DistributionStrategy::round_robin;
  } else if (j == "manual") {
    s = DistributionStrategy::manual;
  } else {
    throw Error(fmt::format("distribution: expected \"round_robin\" or \"manual\", got {}", j.dump()));
  }
}

template <class V>
void describe(V& v, ConnectionSettings& o) {
  v("url", o.url);
  v("allow_plain_ws", o.allow_plain_ws);
  v("connect_timeout", o.connect_timeout);
  v("watchdog_timeout", o.watchdog_timeout);
  v("reconnect", o.reconnect);
}
template <class V>
void describe(V& v, TickerManagerOptions& o) {
  v("max_connections", o.max_connections);
  v("max_instruments_per_connection", o.max_instruments_per_connection);
  v("connection", o.connection);
  v("batches_kept", o.batches_kept);
}
template <class V>
void describe(V& v, MultiKeyTickerManagerOptions& o) {
  v("per_key", o.per_key);
  v("distribution", o.distribution);
  v("default_mode", o.default_mode);
  v("health_monitoring", o.health_monitoring);
  v("health_check_interval", o.health_check_interval);
  v("failover_after", o.failover_after);
  v("channel_capacity", o.channel_capacity);
  v("conflate_ticks", o.conflate_ticks);
  v("per_connection_channels", o.per_connection_channels);
}

FLOODGATE_JSON_DESCRIBED(ConnectionSettings)
FLOODGATE_JSON_DESCRIBED(TickerManagerOptions)
FLOODGATE_JSON_DESCRIBED(MultiKeyTickerManagerOptions)

}  // namespace floodgate::kite
