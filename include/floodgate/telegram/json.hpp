// floodgate/telegram/json.hpp: nlohmann::json serializers for BotPool's
// options (rules: floodgate/core/json.hpp).
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
// Code-only members are not part of the JSON: `ChatRouting::affinity_sink`
// and `BotPoolOptions::shared_limits` keep their values on reading (set them in
// code), and a key naming them is refused as unknown.
#pragma once

#include "floodgate/core/json.hpp"
#include "floodgate/net/json.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/limits.hpp"

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
inline void to_json(nlohmann::json& j, const TelegramBotLimits& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, TelegramBotLimits& o) {
  json_detail::read_object(j, o, "TelegramBotLimits");
}

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

inline void to_json(nlohmann::json& j, const FloodScope& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, FloodScope& o) { json_detail::read_object(j, o, "FloodScope"); }
inline void to_json(nlohmann::json& j, const ChatRouting& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, ChatRouting& o) { json_detail::read_object(j, o, "ChatRouting"); }
inline void to_json(nlohmann::json& j, const BotPoolOptions& o) { j = json_detail::write_object(o); }
inline void from_json(const nlohmann::json& j, BotPoolOptions& o) {
  json_detail::read_object(j, o, "BotPoolOptions");
}

}  // namespace floodgate::telegram
