// floodgate/core/credential.hpp: one credential the pool can hand out, and the
// payloads floodgate's adapters use.
//
// A credential is an id that people read in status tables and logs ("API-2",
// "account1", "token-3") plus a payload that only the adapter reads. Payloads
// keep their secret parts in `Secret`, so formatting a credential never prints
// a token.
#pragma once

#include "floodgate/core/secret.hpp"

#include <cstdint>
#include <string>

namespace floodgate {

template <class Payload>
struct Credential {
  std::string id;            ///< unique in its pool; shown in status views
  Payload payload{};         ///< what the adapter needs to use the credential
  std::uint32_t weight = 1;  ///< share of traffic under the `Weighted` strategy
  bool enabled = true;       ///< a disabled credential is never handed out
};

/// A Telegram Bot API token ("123456:ABC…").
struct BotToken {
  Secret token;
};

/// A Telegram application's api_id/api_hash pair, used for an MTProto session.
struct MtprotoApp {
  std::int64_t api_id = 0;
  Secret api_hash;
};

/// A Kite Connect API key with its daily access token.
struct KiteKey {
  Secret api_key;
  Secret access_token;
};

}  // namespace floodgate
