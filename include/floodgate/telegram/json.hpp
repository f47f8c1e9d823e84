// floodgate/telegram/json.hpp: nlohmann::json serializers for the Telegram
// adapters' options: BotPool, UpdatePoller, the MTProto session and pool,
// TDLib's client and loader (rules: floodgate/core/json.hpp).
//
//   {
//     "endpoint": "https://api.telegram.org:443",
//     "retry": {"max_attempts": 8, "max_wait": "60s"},
//     "limits": {"bot": "30/s", "private_chat": "1/s", "private_chat_burst": 3, "group_chat": "20/min"},
//     "pool": {"ejection": {"consecutive_failures": 5, "base_rest": "30s"}},
//     "flood_scope": {"chats": 2, "window": "2s"},
//     "routing": {"enabled": true, "idle": "30min", "unreachable_for": "24h"}
//   }
//   auto options = config.at("telegram").get<floodgate::telegram::BotPoolOptions>();
//
//   {"timeout": "25s", "limit": 100, "allowed_updates": ["message", "callback_query"],
//    "backoff": {"backoff_base": "500ms"}}                          // UpdatePollerOptions
//   {"session": {"sessions_root": "/var/lib/bot/sessions", "login_timeout": "60s"},
//    "retry": {"max_attempts": 5}, "pool": {}}                       // MtprotoPool::Options
//
// Code-only members are not part of the JSON: they keep their values on
// reading (set them in code), and a key naming one is refused as unknown:
// `ChatRouting::affinity_sink`, `BotPoolOptions::shared_limits`, callbacks
// (`prompt`, `on_state_change`, `on_update`, `on_state`), `UpdatePollerOptions::offsets`,
// `MtprotoPool::Options::store` and `clock`. Secrets (`bot_token`,
// `database_encryption_key`) are read from JSON and written redacted.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/net/json.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/limits.hpp"
#include "floodgate/telegram/mtproto_pool.hpp"
#include "floodgate/telegram/mtproto_session.hpp"
#include "floodgate/telegram/tdjson_client.hpp"
#include "floodgate/telegram/tdjson_library.hpp"
#include "floodgate/telegram/update_poller.hpp"

#include <nlohmann/json.hpp>

namespace floodgate {

template <class V>
void describe(V& v, TelegramBotLimits& o) {
  v("bot", o.bot);
  v("bot_burst", o.bot_burst);
  v("private_chat", o.private_chat);
  v("private_chat_burst", o.private_chat_burst);
  v("group_chat", o.group_chat);
  v("group_chat_burst", o.group_chat_burst);
  v("keys", o.keys);
}
FLOODGATE_JSON_DESCRIBED(TelegramBotLimits)

}  // namespace floodgate

namespace floodgate::telegram {

template <class V>
void describe(V& v, FloodScope& o) {
  v("chats", o.chats);
  v("window", o.window);
}
template <class V>
void describe(V& v, ChatRouting& o) {
  v("enabled", o.enabled);
  v("max_chats", o.max_chats);
  v("idle", o.idle);
  v("unreachable_for", o.unreachable_for);
}
template <class V>
void describe(V& v, BotPoolOptions& o) {
  v("endpoint", o.endpoint);
  v("retry", o.retry);
  v("limits", o.limits);
  v("pool", o.pool);
  v("flood_scope", o.flood_scope);
  v("routing", o.routing);
}

template <class V>
void describe(V& v, UpdatePollerOptions& o) {
  v("token_ids", o.token_ids);
  v("timeout", o.timeout);
  v("limit", o.limit);
  v("allowed_updates", o.allowed_updates);
  v("backoff", o.backoff);
  v("conflict_backoff", o.conflict_backoff);
}
template <class V>
void describe(V& v, TdjsonClient::Options& o) {
  v("request_timeout", o.request_timeout);
  v("close_timeout", o.close_timeout);
  v("receive_poll", o.receive_poll);
  v("tdlib_log_verbosity", o.tdlib_log_verbosity);
}
template <class V>
void describe(V& v, TdjsonLibrary::Options& o) {
  v("path", o.path);
  v("search_dirs", o.search_dirs);
}
template <class V>
void describe(V& v, MtprotoSession::Options& o) {
  v("sessions_root", o.sessions_root);
  v("bot_token", o.bot_token);
  v("use_test_dc", o.use_test_dc);
  v("use_file_database", o.use_file_database);
  v("use_chat_info_database", o.use_chat_info_database);
  v("use_message_database", o.use_message_database);
  v("system_language_code", o.system_language_code);
  v("device_model", o.device_model);
  v("application_version", o.application_version);
  v("database_encryption_key", o.database_encryption_key);
  v("login_timeout", o.login_timeout);
  v("login_retry_max", o.login_retry_max);
  v("max_prompt_retries", o.max_prompt_retries);
  v("close_timeout", o.close_timeout);
}
template <class V>
void describe(V& v, MtprotoPool::Options& o) {
  v("session", o.session);
  v("retry", o.retry);
  v("pool", o.pool);
}

FLOODGATE_JSON_DESCRIBED(FloodScope)
FLOODGATE_JSON_DESCRIBED(ChatRouting)
FLOODGATE_JSON_DESCRIBED(BotPoolOptions)
FLOODGATE_JSON_DESCRIBED(UpdatePollerOptions)
FLOODGATE_JSON_DESCRIBED(TdjsonClient::Options)
FLOODGATE_JSON_DESCRIBED(TdjsonLibrary::Options)
FLOODGATE_JSON_DESCRIBED(MtprotoSession::Options)
FLOODGATE_JSON_DESCRIBED(MtprotoPool::Options)

}  // namespace floodgate::telegram
