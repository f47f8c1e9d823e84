// floodgate/telegram/credentials.hpp: Telegram's credentials, and reading
// them from the environment with the variable names bots already use.
//
//   Bot API   TELEGRAM_BOT_TOKEN, MULTITOKEN1 … MULTITOKEN10
//             ids "token-0" (TELEGRAM_BOT_TOKEN), "token-1" …
//   MTProto   TELEGRAM_API_ID + TELEGRAM_API_HASH, then _2 … _10
//             ids "account1", "account2" …
//
//   auto env = floodgate::Environment::from_process();
//   env.load_dotenv(".env");
//   for (auto& c : floodgate::bot_tokens_from(env)) pool.add(std::move(c));
//
// Gaps in the numbering are fine. A half-configured pair (an api_id without
// its hash) is an `EnvError` that names the variable; error messages never
// contain values.
#pragma once

#include "floodgate/core/credential.hpp"
#include "floodgate/core/env.hpp"
#include "floodgate/core/secret.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

namespace floodgate {

/// A Telegram Bot API token ("123456:ABC…").
struct BotToken {
  Secret token;
};

/// A Telegram application's api_id/api_hash pair, used for an MTProto session.
struct MtprotoApp {
  std::int64_t api_id = 0;
  Secret api_hash;
};

/// Bot tokens: TELEGRAM_BOT_TOKEN ("token-0") and MULTITOKEN1..10 ("token-N").
/// The same token under two names is an error naming both variables.
inline std::vector<Credential<BotToken>> bot_tokens_from(const Environment& env) {
  std::vector<Credential<BotToken>> out;
  std::vector<std::string> names;
  auto take = [&](const std::string& name, std::string id) {
    auto value = env.get(name);
    if (!value) return;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i].payload.token.reveal() == *value) {
        throw EnvError(fmt::format("{} repeats the token already given in {}", name, names[i]));
      }
    }
    out.push_back({std::move(id), {Secret(std::move(*value))}});
    names.push_back(name);
  };
  take("TELEGRAM_BOT_TOKEN", "token-0");
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) take(fmt::format("MULTITOKEN{}", n), fmt::format("token-{}", n));
  return out;
}

/// MTProto apps: TELEGRAM_API_ID/TELEGRAM_API_HASH ("account1"), then the
/// `_2` … `_10` pairs ("account2" …).
inline std::vector<Credential<MtprotoApp>> mtproto_apps_from(const Environment& env) {
  std::vector<Credential<MtprotoApp>> out;
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) {
    const std::string suffix = n == 1 ? "" : fmt::format("_{}", n);
    const std::string id_name = "TELEGRAM_API_ID" + suffix, hash_name = "TELEGRAM_API_HASH" + suffix;
    auto api_id = env.get(id_name);
    auto api_hash = env.get(hash_name);
    if (!api_id && !api_hash) continue;
    if (!api_hash) throw EnvError(fmt::format("{} is missing ({} is set)", hash_name, id_name));
    if (!api_id) throw EnvError(fmt::format("{} is missing ({} is set)", id_name, hash_name));
    std::int64_t number = 0;
    const auto [end, ec] = std::from_chars(api_id->data(), api_id->data() + api_id->size(), number);
    if (ec != std::errc{} || end != api_id->data() + api_id->size() || number <= 0) {
      throw EnvError(fmt::format("{} must be a positive integer", id_name));
    }
    out.push_back({fmt::format("account{}", n), {number, Secret(std::move(*api_hash))}});
  }
  return out;
}

}  // namespace floodgate
