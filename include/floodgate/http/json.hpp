// floodgate/http/json.hpp: nlohmann::json serializers for ApiKeyPool's and
// the response classifier's options (rules: floodgate/core/json.hpp).
//
//   {"retry": {"max_attempts": 6}, "pool": {"latency_smoothing": 0.3}, "unreachable_rest": "10s"}
//   {"default_wait": "1s", "quota_wait": "720h"}      // ClassifyOptions
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/http/api_key_pool.hpp"
#include "floodgate/http/classify.hpp"

#include <nlohmann/json.hpp>

namespace floodgate::http {

template <class V>
void describe(V& v, ApiKeyPoolOptions& o) {
  v("retry", o.retry);
  v("pool", o.pool);
  v("unreachable_rest", o.unreachable_rest);
}
template <class V>
void describe(V& v, ClassifyOptions& o) {
  v("default_wait", o.default_wait);
  v("quota_wait", o.quota_wait);
}

FLOODGATE_JSON_DESCRIBED(ApiKeyPoolOptions)
FLOODGATE_JSON_DESCRIBED(ClassifyOptions)

}  // namespace floodgate::http
