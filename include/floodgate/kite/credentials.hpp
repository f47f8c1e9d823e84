// floodgate/kite/credentials.hpp: a Kite Connect API key, and reading keys
// from the environment.
//
//   KITE_API_KEY_N + KITE_ACCESS_TOKEN_N, N = 1 … 10 (KITE_API_KEY +
//   KITE_ACCESS_TOKEN count as N = 1); ids "API-1", "API-2" …
//
// A half-configured pair is an `EnvError` that names the variable; error
// messages never contain values.
#pragma once

#include "floodgate/core/credential.hpp"
#include "floodgate/core/env.hpp"
#include "floodgate/core/secret.hpp"

#include <fmt/format.h>

#include <string>
#include <vector>

namespace floodgate {

/// A Kite Connect API key with its daily access token.
struct KiteKey {
  Secret api_key;
  Secret access_token;
};

/// Kite keys: KITE_API_KEY_N/KITE_ACCESS_TOKEN_N ("API-N"), N = 1 … 10;
/// unnumbered KITE_API_KEY/KITE_ACCESS_TOKEN stand for N = 1.
inline std::vector<Credential<KiteKey>> kite_keys_from(const Environment& env) {
  std::vector<Credential<KiteKey>> out;
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) {
    std::string key_name = fmt::format("KITE_API_KEY_{}", n), token_name = fmt::format("KITE_ACCESS_TOKEN_{}", n);
    auto key = env.get(key_name);
    auto token = env.get(token_name);
    if (n == 1 && !key && !token) {
      key_name = "KITE_API_KEY";
      token_name = "KITE_ACCESS_TOKEN";
      key = env.get(key_name);
      token = env.get(token_name);
    }
    if (!key && !token) continue;
    if (!token) throw EnvError(fmt::format("{} is missing ({} is set)", token_name, key_name));
    if (!key) throw EnvError(fmt::format("{} is missing ({} is set)", key_name, token_name));
    out.push_back({fmt::format("API-{}", n), {Secret(std::move(*key)), Secret(std::move(*token))}});
  }
  return out;
}

}  // namespace floodgate
