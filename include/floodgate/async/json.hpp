// floodgate/async/json.hpp: nlohmann::json serializers for the async layer's
// options (rules: floodgate/core/json.hpp).
//
//   {"max_waiters": 1024}      // AsyncLimiterOptions
#pragma once

#include "floodgate/async/async_limiter.hpp"
#include "floodgate/core/json.hpp"

#include <nlohmann/json.hpp>

namespace floodgate::async {

template <class V>
void describe(V& v, AsyncLimiterOptions& o) {
  v("max_waiters", o.max_waiters);
}

FLOODGATE_JSON_DESCRIBED(AsyncLimiterOptions)

}  // namespace floodgate::async
