// floodgate/net/json.hpp: nlohmann::json serializers for the net layer's
// configuration values (rules: floodgate/core/json.hpp).
//
//   "endpoint": "https://api.telegram.org:443"    // net::Endpoint, as Endpoint::parse reads it
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/net/endpoint.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace floodgate::net {

inline void to_json(nlohmann::json& j, const Endpoint& endpoint) { j = endpoint.to_string(); }
/// Throws floodgate::Error for text Endpoint::parse refuses.
inline void from_json(const nlohmann::json& j, Endpoint& endpoint) {
  if (!j.is_string()) throw Error(std::string("endpoint: expected a URL as text, got ") + j.type_name());
  endpoint = Endpoint::parse(j.get<std::string>());
}

}  // namespace floodgate::net
