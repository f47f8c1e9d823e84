// floodgate/net/json.hpp: nlohmann::json serializers for the net layer's
// configuration values (rules: floodgate/core/json.hpp).
//
//   "endpoint": "https://api.telegram.org:443"    // net::Endpoint, as Endpoint::parse reads it
//   {"verify_peer": true, "ca_file": "/etc/ssl/my-ca.pem", "ca_pem": ""}          // TlsClientOptions
//   {"allow_plain_http": false, "connect_timeout": "10s", "read_timeout": "30s", "total_timeout": "90s",
//    "max_idle_per_endpoint": 4, "idle_timeout": "30s", "max_body_bytes": 16777216,
//    "user_agent": "floodgate"}                                                  // HttpClientOptions
//   {"allow_plain_ws": false, "handshake_timeout": "10s", "idle_timeout": "10s",
//    "max_message_bytes": 16777216, "user_agent": "floodgate"}                   // WebSocketOptions
//
// The TLS context (`tls`) of HttpClientOptions and WebSocketOptions is
// code-only: build it from TlsClientOptions (net/tls.hpp); a key naming it is
// refused as unknown.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/net/endpoint.hpp"
#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/net/websocket.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace floodgate::net {

inline void to_json(nlohmann::json& j, const Endpoint& endpoint) { j = endpoint.to_string(); }
/// Throws floodgate::Error for text Endpoint::parse refuses.
inline void from_json(const nlohmann::json& j, Endpoint& endpoint) {
  if (!j.is_string()) throw Error(std::string("endpoint: expected a URL as text, got ") + j.type_name());
  endpoint = Endpoint::parse(j.get<std::string>());
}

template <class V>
void describe(V& v, TlsClientOptions& o) {
  v("verify_peer", o.verify_peer);
  v("ca_file", o.ca_file);
  v("ca_pem", o.ca_pem);
}
template <class V>
void describe(V& v, HttpClientOptions& o) {
  v("allow_plain_http", o.allow_plain_http);
  v("connect_timeout", o.connect_timeout);
  v("read_timeout", o.read_timeout);
  v("total_timeout", o.total_timeout);
  v("max_idle_per_endpoint", o.max_idle_per_endpoint);
  v("idle_timeout", o.idle_timeout);
  v("max_body_bytes", o.max_body_bytes);
  v("user_agent", o.user_agent);
}
template <class V>
void describe(V& v, WebSocketOptions& o) {
  v("allow_plain_ws", o.allow_plain_ws);
  v("handshake_timeout", o.handshake_timeout);
  v("idle_timeout", o.idle_timeout);
  v("max_message_bytes", o.max_message_bytes);
  v("user_agent", o.user_agent);
}

FLOODGATE_JSON_DESCRIBED(TlsClientOptions)
FLOODGATE_JSON_DESCRIBED(HttpClientOptions)
FLOODGATE_JSON_DESCRIBED(WebSocketOptions)

}  // namespace floodgate::net
