// floodgate/http/json.hpp: nlohmann::json serializers for ApiKeyPool's
// options (rules: floodgate/core/json.hpp).
//
//   {"retry": {"max_attempts": 6}, "pool": {"latency_smoothing": 0.3}, "unreachable_rest": "10s"}
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/http/api_key_pool.hpp"

#include <nlohmann/json.hpp>

namespace floodgate::http {

template <class V>
void describe(V& v, ApiKeyPoolOptions& o) {
  v("retry", o.retry);
  v("pool", o.pool);
  v("unreachable_rest", o.unreachable_rest);
}
inline void to_json(nlohmann::json& j, const ApiKeyPoolOptions& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, ApiKeyPoolOptions& o) {
  json_detail::read_object(j, o, "ApiKeyPoolOptions");
}

}  // namespace floodgate::http
