// floodgate/core/credential.hpp: one credential the pool can hand out.
//
// A credential is an id that people read in status tables and logs ("API-2",
// "account1", "token-3") plus a payload that only the adapter reads. Payloads
// keep their secret parts in `Secret` (core/secret.hpp), so formatting a
// credential never prints a token. Each adapter defines its own payload:
// `BotToken` and `MtprotoApp` (telegram/credentials.hpp), `KiteKey`
// (kite/credentials.hpp); any copyable type will do.
#pragma once

#include <cstdint>
#include <string>

namespace floodgate {

template <class Payload>
struct Credential {
  std::string id;            ///< unique in its pool; shown in status views
  Payload payload{};         ///< what the adapter needs to use the credential
  std::uint32_t weight = 1;  ///< share of traffic under the `Weighted` strategy
  bool enabled = true;       ///< a disabled credential is never handed out
  /// Fallback tier under the `Tiered` strategy: a credential of tier n is
  /// handed out only while no credential of a lower tier is usable.
  std::uint32_t tier = 0;
};

}  // namespace floodgate
