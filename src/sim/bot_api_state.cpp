#include "bot_api_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>

#include "bot_api_entities.hpp"
#include "floodgate/core/error.hpp"

namespace floodgate::sim {

namespace detail {
namespace {

using Json = nlohmann::ordered_json;  // Telegram's field order: ok, error_code, description, ...

constexpr std::size_t kMaxTextLength = 4096;     // UTF-16 code units after entity parsing
constexpr std::size_t kMaxCaptionLength = 1024;
constexpr std::size_t kMaxDownloadSize = 20u << 20;  // getFile serves files up to 20 MB

Reply ok(Json result) { return {200, Json{{"ok", true}, {"result", std::move(result)}}.dump()}; }

Reply error(int code, std::string_view description, Json parameters = nullptr) {
  Json body{{"ok", false}, {"error_code", code}, {"description", description}};
  if (!parameters.is_null()) body["parameters"] = std::move(parameters);
  return {code, body.dump()};
}

Reply unauthorized() { return error(401, "Unauthorized"); }
Reply not_found() { return error(404, "Not Found"); }
Reply bad_request(std::string_view what) { return error(400, fmt::format("Bad Request: {}", what)); }
Reply forbidden(std::string_view what) { return error(403, fmt::format("Forbidden: {}", what)); }

std::string_view server_error_text(int status) {
  switch (status) {
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Server Error";
  }
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::optional<std::int64_t> int_param(const FormParams& params, std::string_view name) {
  const auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  const auto& text = it->second.value;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool has_param(const FormParams& params, std::string_view name) { return params.find(name) != params.end(); }

std::string text_param(const FormParams& params, std::string_view name) {
  const auto it = params.find(name);
  return it == params.end() ? std::string{} : it->second.value;
}

bool bool_param(const FormParams& params, std::string_view name) {
  const auto value = lower(text_param(params, name));
  return value == "true" || value == "1";
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view chat_type_name(SimChatType type) {
  switch (type) {
    case SimChatType::group: return "group";
    case SimChatType::supergroup: return "supergroup";
    case SimChatType::channel: return "channel";
  }
  return "group";
}

// An undeclared group's type, from its id as Telegram numbers chats.
SimChatType implied_chat_type(std::int64_t chat_id) {
  return chat_id <= -1000000000000 ? SimChatType::supergroup : SimChatType::group;
}

// The bot id Telegram encodes in a token ("123456:ABC..."), if any.
std::optional<std::int64_t> bot_id_of(std::string_view token) {
  const auto colon = token.find(':');
  std::int64_t id = 0;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + colon, id);
  if (colon == std::string_view::npos || ec != std::errc{} || end != token.data() + colon || id <= 0) {
    return std::nullopt;
  }
  return id;
}

// Methods that post or change a message: the ones flood control counts.
bool is_message_method(std::string_view method) {
  static const std::set<std::string_view> methods{
      "sendmessage",    "senddocument",      "sendphoto",          "sendvideo",
      "sendaudio",      "sendvoice",         "sendanimation",      "sendsticker",
      "copymessage",    "editmessagetext",   "editmessagecaption", "editmessagereplymarkup",
      "sendmediagroup"};
  return methods.count(method) != 0;
}

// "sendPhoto" -> "photo", the field that carries the file and names the media.
std::string_view media_of(std::string_view method) {
  static const std::map<std::string_view, std::string_view> media{
      {"senddocument", "document"}, {"sendphoto", "photo"},         {"sendvideo", "video"},
      {"sendaudio", "audio"},       {"sendvoice", "voice"},         {"sendanimation", "animation"},
      {"sendsticker", "sticker"}};
  const auto it = media.find(method);
  return it == media.end() ? std::string_view{} : it->second;
}

// The first letters Telegram's file ids start with, per kind of media.
std::string_view file_id_prefix(std::string_view media) {
  if (media == "photo") return "AgAC";
  if (media == "video") return "BAAC";
  if (media == "audio") return "CQAC";
  if (media == "voice") return "AwAC";
  if (media == "animation") return "CgAC";
  if (media == "sticker") return "CAAC";
  return "BQAC";
}

std::string_view default_mime_type(std::string_view media) {
  if (media == "photo") return "image/jpeg";
  if (media == "video") return "video/mp4";
  if (media == "audio") return "audio/mpeg";
  if (media == "voice") return "audio/ogg";
  if (media == "animation") return "video/mp4";
  if (media == "sticker") return "image/webp";
  return "application/octet-stream";
}

// A request arriving this soon after its token was told to wait was most
// likely sent before the client could read that answer: it counts in
// sent_during_cooldown but not in sent_during_known_cooldown.
constexpr Time kInFlightGrace = std::chrono::milliseconds(50);

// Seconds a client must wait: whole, at least 1, at most the limit's period.
std::chrono::seconds retry_after_for(Time wait, std::chrono::nanoseconds period) {
  const auto longest = std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(period));
  return std::clamp(std::chrono::ceil<std::chrono::seconds>(wait), std::chrono::seconds(1), longest);
}

}  // namespace

Time SlidingWindow::wait_needed(const Rate& rate, Time now) {
  const Time period = std::chrono::duration_cast<Time>(rate.period());
  const auto count = static_cast<std::size_t>(rate.tokens());  // whole requests
  while (!accepted_.empty() && accepted_.front() <= now - period) accepted_.pop_front();
  if (count == 0) return period;  // admits nothing
  if (accepted_.size() < count) return Time{0};
  return accepted_[accepted_.size() - count] + period - now;
}

Time TokenBucket::wait_needed(const Rate& rate, int burst, Time now) {
  const double capacity = std::max(1, burst);
  const double per_ns = rate.tokens() / static_cast<double>(rate.period().count());
  if (!started_) {
    tokens_ = capacity;
    started_ = true;
  } else if (now > refilled_at_) {
    tokens_ = std::min(capacity, tokens_ + static_cast<double>((now - refilled_at_).count()) * per_ns);
  }
  refilled_at_ = std::max(refilled_at_, now);
  if (tokens_ >= 1) return Time{0};
  return Time(static_cast<Time::rep>(std::ceil((1 - tokens_) / per_ns)));
}

struct BotApiState::Call {
  Bot& bot;
  std::string_view method;
  const FormParams& params;
  std::int64_t chat_id = 0;
};

// ---- Entry points ----

Reply api_error(int code, std::string_view description) { return error(code, description); }

Reply BotApiState::handle_method(const std::string& token, std::string_view method, const FormParams* decoded,
                                 Time now) {
  const std::string name = lower(method);
  std::lock_guard lock(mutex_);
  Bot* bot = nullptr;
  Reply reply = admit(token, name, bot);
  if (!bot) return reply;  // refused, or replaced by an injected fault
  if (!decoded) return bad_request("can't parse request parameters");
  const FormParams& params = *decoded;
  const auto delivery_fault = reply.delivery_fault;
  if (delivery_fault && delivery_fault->kind == Fault::Kind::flood_wait) {
    return announced_flood_wait(*bot, int_param(params, "chat_id"), delivery_fault->retry_after, now);
  }
  if (name == "getupdates") {
    if (!bot->webhook_url.empty()) {
      reply = error(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
                         "the webhook first");
    } else {
      update_allowed_updates(*bot, params);
      // Telegram's clamps: limit 1..100 (default 100), timeout 0..50 s (default 0).
      UpdatesPoll poll{token, int_param(params, "offset").value_or(0),
                       static_cast<std::size_t>(std::clamp<std::int64_t>(int_param(params, "limit").value_or(100), 1, 100)),
                       std::chrono::seconds(std::clamp<std::int64_t>(int_param(params, "timeout").value_or(0), 0, 50))};
      reply = collect_updates(*bot, poll, now);
      if (reply.poll) {
        // One getUpdates per bot: a newer one that waits ends the one waiting.
        reply.wake_polls = end_waiting_poll(
            *bot, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
        reply.poll->generation = ++bot->poll_generation;
        bot->waiting_poll = reply.poll->generation;
      }
    }
  } else {
    reply = execute(*bot, name, params, now);
  }
  if (reply.status == 200) ++bot->stats.succeeded;
  if (reply.status == 403) ++bot->stats.forbidden;
  reply.delivery_fault = delivery_fault;
  return reply;
}

namespace {
// Telegram's update kinds (Bot API "Update"); those after the marker are not sent unless asked for.
constexpr std::string_view kUpdateKinds[] = {
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media",
    "poll", "poll_answer", "my_chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
    "chat_member", "message_reaction", "message_reaction_count"};
constexpr std::size_t kDefaultUpdateKinds = std::size(kUpdateKinds) - 3;
}  // namespace

void BotApiState::update_allowed_updates(Bot& bot, const FormParams& params) {
  const auto text = text_param(params, "allowed_updates");
  if (text.empty()) return;
  const auto kinds = nlohmann::json::parse(text, nullptr, false);
  if (!kinds.is_array()) return;
  std::set<std::string, std::less<>> allowed;
  for (const auto& kind : kinds) {
    if (!kind.is_string()) return;
    const auto name = lower(kind.get<std::string>());
    if (std::find(std::begin(kUpdateKinds), std::end(kUpdateKinds), name) != std::end(kUpdateKinds)) {
      allowed.insert(name);
    }
  }
  bot.allowed_updates = std::move(allowed);  // empty: the default
}

bool BotApiState::update_allowed(const Bot& bot, const nlohmann::json& update) {
  std::string kind;
  for (const auto& [key, value] : update.items()) {
    if (key != "update_id") {
      kind = key;
      break;
    }
  }
  if (!bot.allowed_updates.empty()) return bot.allowed_updates.contains(kind);
  const auto* end = std::begin(kUpdateKinds) + kDefaultUpdateKinds;
  const bool known = std::find(std::begin(kUpdateKinds), std::end(kUpdateKinds), kind) != std::end(kUpdateKinds);
  return !known || std::find(std::begin(kUpdateKinds), end, kind) != end;  // unknown kinds (tests' own) pass
}

bool BotApiState::end_waiting_poll(Bot& bot, std::string why) {
  if (bot.waiting_poll == 0) return false;
  bot.ended_polls.insert_or_assign(std::exchange(bot.waiting_poll, 0), std::move(why));
  return true;
}

Reply BotApiState::handle_download(const std::string& token, std::string_view file_path, Time now) {
  std::lock_guard lock(mutex_);
  Bot* bot = nullptr;
  Reply reply = admit(token, "file", bot);
  if (!bot) return reply;
  const auto delivery_fault = reply.delivery_fault;
  if (delivery_fault && delivery_fault->kind == Fault::Kind::flood_wait) {
    return announced_flood_wait(*bot, std::nullopt, delivery_fault->retry_after, now);
  }
  const auto id = file_id_by_path_.find(file_path);
  const StoredFile* file = id == file_id_by_path_.end() ? nullptr : usable_file(*bot, id->second);
  if (!file) return not_found();  // no such path, or another bot's file
  ++bot->stats.succeeded;
  Reply download{200, file->bytes, file->mime_type};
  download.delivery_fault = delivery_fault;
  return download;
}

Reply BotApiState::poll_updates(const UpdatesPoll& poll, Time now) {
  std::lock_guard lock(mutex_);
  Bot* bot = find_bot(poll.token);
  if (!bot || bot->revoked) return unauthorized();
  if (const auto ended = bot->ended_polls.find(poll.generation); ended != bot->ended_polls.end()) {
    auto reply = error(409, ended->second);
    bot->ended_polls.erase(ended);
    return reply;
  }
  auto reply = collect_updates(*bot, poll, now);
  if (!reply.poll && bot->waiting_poll == poll.generation) bot->waiting_poll = 0;
  return reply;
}

// Counts the request and decides whether it is handled at all. Leaves `bot`
// null when the reply is final (unknown or revoked token, injected failure).
Reply BotApiState::admit(const std::string& token, std::string_view method, Bot*& bot) {
  Bot* candidate = find_bot(token);
  if (!candidate) return unauthorized();
  auto& stats = candidate->stats;
  ++stats.requests;
  ++stats.by_method[std::string(method)];
  if (candidate->revoked) {
    ++stats.unauthorized;
    return unauthorized();
  }
  Reply admitted;
  auto& faults = candidate->faults;
  const auto fault_it = std::find_if(faults.begin(), faults.end(), [&](const Fault& fault) {
    return fault.method.empty() || lower(fault.method) == method;
  });
  if (fault_it != faults.end()) {
    const Fault fault = *fault_it;
    faults.erase(fault_it);
    ++stats.faults;
    switch (fault.kind) {
      case Fault::Kind::server_error: return error(fault.status, server_error_text(fault.status));
      case Fault::Kind::invalid_json: return Reply{200, R"({"ok":true,"result":{"message_id":)"};
      case Fault::Kind::drop_connection: return Reply{.delivery_fault = fault};
      case Fault::Kind::truncated_response:
      case Fault::Kind::slow_reply:
      case Fault::Kind::flood_wait: admitted.delivery_fault = fault; break;
    }
  }
  bot = candidate;
  return admitted;
}

Reply BotApiState::execute(Bot& bot, std::string_view method, const FormParams& params, Time now) {
  Call call{bot, method, params};
  // Methods about the bot itself.
  if (method == "getme") return ok(bot_json(bot));
  if (method == "logout" || method == "close") return ok(true);
  if (method == "deletewebhook") {
    bot.webhook_url.clear();
    if (bool_param(params, "drop_pending_updates")) bot.updates.clear();
    return ok(true);
  }
  if (method == "setwebhook") {
    bot.webhook_url = text_param(params, "url");
    update_allowed_updates(bot, params);
    Reply reply = ok(true);
    if (!bot.webhook_url.empty()) reply.wake_polls = end_waiting_poll(bot, "Conflict: terminated by setWebhook request");
    return reply;
  }
  if (method == "getwebhookinfo") {
    return ok(Json{{"url", bot.webhook_url},
                   {"has_custom_certificate", false},
                   {"pending_update_count", bot.updates.size()}});
  }
  if (method == "setmycommands") {
    const auto commands = nlohmann::json::parse(text_param(params, "commands"), nullptr, false);
    if (!commands.is_array()) return bad_request("expected an Array of BotCommand");
    for (const auto& command : commands) {
      if (!command.is_object() || !command.contains("command") || !command["command"].is_string() ||
          !command.contains("description") || !command["description"].is_string()) {
        return bad_request("can't parse BotCommand: Field \"command\" and \"description\" must be Strings");
      }
    }
    bot.commands = commands;
    return ok(true);
  }
  if (method == "getmycommands") return ok(Json(bot.commands));
  if (method == "deletemycommands") {
    bot.commands = nlohmann::json::array();
    return ok(true);
  }
  if (method == "answercallbackquery") {
    const auto query = bot.open_callback_queries.find(text_param(params, "callback_query_id"));
    if (query == bot.open_callback_queries.end()) {
      return bad_request("query is too old and response timeout expired or query ID is invalid");
    }
    bot.open_callback_queries.erase(query);
    return ok(true);
  }
  if (method == "getfile") return get_file(call);

  // Methods addressed to a chat.
  const bool message_method = is_message_method(method);
  const bool chat_method = message_method || method == "sendchataction" || method == "deletemessage" ||
                           method == "getchat" || method == "getchatmember";
  if (!chat_method) return not_found();
  if (!has_param(params, "chat_id")) return bad_request("chat_id is empty");
  const auto chat_id = int_param(params, "chat_id");
  if (!chat_id) return bad_request("chat not found");
  if (const auto migrated = migrated_chats_.find(*chat_id); migrated != migrated_chats_.end()) {
    return error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                 Json{{"migrate_to_chat_id", migrated->second}});
  }
  call.chat_id = *chat_id;
  if (auto refused = check_reach(bot, *chat_id)) {
    // What a bot may not write to, it may still look at if it knows the chat.
    const bool may_look = (method == "getchat" || method == "getchatmember") && refused->status == 403 &&
                          users_.count(*chat_id) != 0 && users_.at(*chat_id).blocked.count(bot.id) != 0;
    if (!may_look) return std::move(*refused);
  }
  if (method == "sendchataction") {
    static const std::set<std::string_view> actions{
        "typing",       "upload_photo",   "record_video",      "upload_video",     "record_voice",   "upload_voice",
        "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"};
    if (actions.count(text_param(params, "action")) == 0) return bad_request("wrong parameter action in request");
    return ok(true);
  }
  if (method == "deletemessage") return delete_message(call);
  if (method == "getchat") return get_chat(call);
  if (method == "getchatmember") return get_chat_member(call);

  if (auto limited = check_flood_control(bot, *chat_id, now)) return std::move(*limited);
  Reply reply;
  if (method == "sendmessage") {
    reply = send_message(call);
  } else if (method == "copymessage") {
    reply = copy_message(call);
  } else if (method.starts_with("editmessage")) {
    reply = edit_message(call, method);
  } else if (method == "sendmediagroup") {
    return send_media_group(call, now);  // records each message sent
  } else {
    reply = send_media(call, media_of(method));
  }
  if (reply.status == 200) record_send(bot, *chat_id, now);
  return reply;
}

// ---- Who may write to whom ----

std::optional<Reply> BotApiState::check_reach(Bot& bot, std::int64_t chat_id) {
  if (chat_id > 0) {
    const auto user = users_.find(chat_id);
    if (user == users_.end()) return open_world_ ? std::nullopt : std::optional(bad_request("chat not found"));
    if (user->second.blocked.count(bot.id) != 0) return forbidden("bot was blocked by the user");
    if (user->second.started.count(bot.id) == 0) return forbidden("bot can't initiate conversation with a user");
    return std::nullopt;
  }
  const auto group = groups_.find(chat_id);
  if (group == groups_.end()) return open_world_ ? std::nullopt : std::optional(bad_request("chat not found"));
  const auto type = chat_type_name(group->second.type);
  if (group->second.kicked.count(bot.id) != 0) return forbidden(fmt::format("bot was kicked from the {} chat", type));
  if (group->second.members.count(bot.id) == 0) return forbidden(fmt::format("bot is not a member of the {} chat", type));
  return std::nullopt;
}

// ---- Flood control ----

Reply BotApiState::announced_flood_wait(Bot& bot, std::optional<std::int64_t> chat_id, std::int64_t seconds,
                                        Time now) {
  ++bot.stats.rate_limited;
  // Kept as a per-chat limit would keep it (the chat of the request, else the
  // whole token), no further ahead than a year: all a test can observe, and
  // it keeps the clock arithmetic in range.
  const auto kept = std::chrono::seconds(std::clamp<std::int64_t>(seconds, 1, 366LL * 24 * 3600));
  Time& until = chat_id ? bot.chat_cooldown_until[*chat_id] : bot.cooldown_until;
  Time& told_at = chat_id ? bot.chat_cooldown_told_at[*chat_id] : bot.cooldown_told_at;
  if (now + kept > until) {
    until = now + kept;
    told_at = now;
  }
  Reply reply = error(429, fmt::format("Too Many Requests: retry after {}", seconds), Json{{"retry_after", seconds}});
  reply.retry_after = seconds;
  return reply;
}

std::optional<Reply> BotApiState::check_flood_control(Bot& bot, std::int64_t chat_id, Time now) {
  const BotApiLimits& limits = bot.limits ? *bot.limits : default_limits_;
  const auto too_many_requests = [&](std::chrono::seconds retry_after) {
    ++bot.stats.rate_limited;
    Reply reply = error(429, fmt::format("Too Many Requests: retry after {}", retry_after.count()),
                        Json{{"retry_after", retry_after.count()}});
    reply.retry_after = static_cast<int>(retry_after.count());
    return reply;
  };

  // Told to wait and did not: told again what is left of the wait, never more.
  const auto chat_cooldown = bot.chat_cooldown_until.find(chat_id);
  Time until{};
  Time told_at{};
  if (bot.cooldown_until > now) {
    until = bot.cooldown_until;
    told_at = bot.cooldown_told_at;
  }
  if (chat_cooldown != bot.chat_cooldown_until.end() && chat_cooldown->second > now) {
    until = std::max(until, chat_cooldown->second);
    told_at = std::min(told_at == Time{} ? Time::max() : told_at, bot.chat_cooldown_told_at[chat_id]);
  }
  if (until > now) {
    ++bot.stats.sent_during_cooldown;
    if (now - told_at > kInFlightGrace) ++bot.stats.sent_during_known_cooldown;
    return too_many_requests(std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(until - now)));
  }
  if (chat_cooldown != bot.chat_cooldown_until.end()) {
    bot.chat_cooldown_until.erase(chat_cooldown);
    bot.chat_cooldown_told_at.erase(chat_id);
  }

  const Time tolerance = limits.tolerance;
  const auto limited = [&](Time wait, const Rate& rate, Time& cooldown, Time& announced_at) {
    const auto retry_after = retry_after_for(wait, rate.period());
    cooldown = now + retry_after;
    announced_at = now;
    return too_many_requests(retry_after);
  };
  if (limits.overall) {
    const Time wait = bot.overall.wait_needed(*limits.overall, now);
    if (wait > tolerance) return limited(wait, *limits.overall, bot.cooldown_until, bot.cooldown_told_at);
  }
  if (limits.per_chat) {
    const Time wait = bot.per_chat[chat_id].wait_needed(*limits.per_chat, limits.per_chat_burst, now);
    if (wait > tolerance) {
      return limited(wait, *limits.per_chat, bot.chat_cooldown_until[chat_id], bot.chat_cooldown_told_at[chat_id]);
    }
  }
  if (limits.per_group && chat_id < 0) {
    const Time wait = bot.per_group[chat_id].wait_needed(*limits.per_group, now);
    if (wait > tolerance) {
      return limited(wait, *limits.per_group, bot.chat_cooldown_until[chat_id], bot.chat_cooldown_told_at[chat_id]);
    }
  }
  return std::nullopt;
}

void BotApiState::record_send(Bot& bot, std::int64_t chat_id, Time now) {
  const BotApiLimits& limits = bot.limits ? *bot.limits : default_limits_;
  if (limits.overall) bot.overall.record(now);
  if (limits.per_chat) bot.per_chat[chat_id].take();
  if (limits.per_group && chat_id < 0) bot.per_group[chat_id].record(now);
}

// ---- Methods ----

Reply BotApiState::send_message(Call& call) {
  if (!has_param(call.params, "text")) return bad_request("message text is empty");
  const auto text = text_param(call.params, "text");
  auto formatted = parse_formatted_text(text, text_param(call.params, "parse_mode"));
  if (!formatted.error.empty()) return error(400, formatted.error);
  if (formatted.plain.find_first_not_of(" \t\r\n") == std::string::npos) return bad_request("message text is empty");
  if (utf16_length(formatted.plain) > kMaxTextLength) return bad_request("message is too long");
  auto& message = store_message(&call.bot, call.chat_id, call.bot.id, true, std::move(formatted.plain));
  message.reply_markup = text_param(call.params, "reply_markup");
  return ok(message_json(message, false));
}

Reply BotApiState::send_media(Call& call, std::string_view media) {
  auto field = call.params.find(media);
  if (field != call.params.end() && !field->second.is_file && field->second.value.starts_with("attach://")) {
    field = call.params.find(std::string_view(field->second.value).substr(9));  // the part it names
    if (field == call.params.end() || !field->second.is_file) {
      return bad_request(fmt::format("there is no {} in the request", media));
    }
  }
  if (field == call.params.end() || (!field->second.is_file && field->second.value.empty())) {
    return bad_request(fmt::format("there is no {} in the request", media));
  }
  auto formatted = parse_formatted_text(text_param(call.params, "caption"), text_param(call.params, "parse_mode"));
  if (!formatted.error.empty()) return error(400, formatted.error);
  if (utf16_length(formatted.plain) > kMaxCaptionLength) return bad_request("message caption is too long");

  std::string file_id;
  const auto& value = field->second;
  if (value.is_file) {
    std::string name = value.filename.empty() ? std::string(media) : value.filename;
    std::string mime = value.content_type.empty() || value.content_type == "application/octet-stream"
                           ? std::string(default_mime_type(media))
                           : value.content_type;
    file_id = store_file(call.bot.id, value.value, std::move(name), std::move(mime), media);
  } else if (usable_file(call.bot, value.value)) {
    file_id = value.value;
  } else {
    return bad_request("wrong file identifier/HTTP URL specified");
  }
  auto& message = store_message(&call.bot, call.chat_id, call.bot.id, true, std::move(formatted.plain));
  message.file_id = std::move(file_id);
  message.media = std::string(media);
  message.reply_markup = text_param(call.params, "reply_markup");
  return ok(message_json(message, false));
}

// Telegram's order: every InputMedia is read first (type, caption, file), then
// the album as a whole is checked (count, kinds), then it is sent.
Reply BotApiState::send_media_group(Call& call, Time now) {
  const auto text = text_param(call.params, "media");
  if (text.empty()) return bad_request("parameter \"media\" is required");
  const auto media = nlohmann::json::parse(text, nullptr, false);
  if (media.is_discarded()) return bad_request("can't parse media JSON object");
  if (!media.is_array()) return bad_request("expected an Array of InputMedia");
  struct Item {
    std::string type;
    std::string caption;
    const FormValue* upload = nullptr;  // or:
    std::string file_id;
  };
  std::vector<Item> items;
  for (const auto& input : media) {
    auto refuse = [](std::string_view why) { return bad_request(fmt::format("can't parse InputMedia: {}", why)); };
    if (!input.is_object()) return refuse("expected an Object");
    const auto caption = input.value("caption", std::string());
    auto formatted = parse_formatted_text(caption, input.value("parse_mode", std::string()));
    if (!formatted.error.empty()) return error(400, formatted.error);
    if (!input.contains("type") || !input["type"].is_string()) return refuse("Can't find field \"type\"");
    Item item{input["type"].get<std::string>(), std::move(formatted.plain)};
    const auto reference = input.value("media", std::string());
    if (reference.starts_with("attach://")) {
      const auto part = call.params.find(std::string_view(reference).substr(9));
      if (part == call.params.end() || !part->second.is_file) return refuse("media not found");
      item.upload = &part->second;
    } else if (reference.empty()) {
      return refuse("media not found");
    } else {
      item.file_id = reference;
    }
    if (item.type == "animation") return refuse("type \"animation\" can't be used in sendMediaGroup");
    if (item.type != "photo" && item.type != "video" && item.type != "audio" && item.type != "document") {
      return refuse(fmt::format("type \"{}\" is unsupported", item.type));
    }
    if (utf16_length(item.caption) > kMaxCaptionLength) return bad_request("message caption is too long");
    if (!item.upload && !usable_file(call.bot, item.file_id)) {
      return bad_request("wrong file identifier/HTTP URL specified");
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) return bad_request("there are no messages to send");
  if (items.size() > 10) return bad_request("too many messages to send as an album");
  for (const char* alone : {"document", "audio"}) {
    const auto count = std::count_if(items.begin(), items.end(), [&](const Item& i) { return i.type == alone; });
    if (count > 0 && static_cast<std::size_t>(count) < items.size()) {
      return bad_request(fmt::format("{} can't be mixed with other media types", alone));
    }
  }
  // A single item is sent as one message, outside any album, as Telegram does.
  const auto group_id = items.size() > 1 ? fmt::format("{}", 13000000000000000 + next_file_number_) : std::string();
  Json sent = Json::array();
  for (auto& item : items) {
    if (item.upload) {
      std::string name = item.upload->filename.empty() ? item.type : item.upload->filename;
      std::string mime = item.upload->content_type.empty() || item.upload->content_type == "application/octet-stream"
                             ? std::string(default_mime_type(item.type))
                             : item.upload->content_type;
      item.file_id = store_file(call.bot.id, item.upload->value, std::move(name), std::move(mime), item.type);
    }
    auto& message = store_message(&call.bot, call.chat_id, call.bot.id, true, std::move(item.caption));
    message.file_id = std::move(item.file_id);
    message.media = item.type;
    auto json = message_json(message, false);
    if (!group_id.empty()) json["media_group_id"] = group_id;
    sent.push_back(std::move(json));
    record_send(call.bot, call.chat_id, now);
  }
  return ok(std::move(sent));
}

Reply BotApiState::copy_message(Call& call) {
  const auto from_chat = int_param(call.params, "from_chat_id");
  const auto message_id = int_param(call.params, "message_id");
  const SimMessage* source = from_chat && message_id ? find_message(call.bot, *from_chat, *message_id) : nullptr;
  if (!source || source->deleted) return bad_request("message to copy not found");
  const auto caption = call.params.find("caption");
  std::string text = caption != call.params.end() ? caption->second.value : source->text;
  std::string file_id = source->file_id;  // copied before store_message may move `source`
  std::string media = source->media;
  auto& copy = store_message(&call.bot, call.chat_id, call.bot.id, true, std::move(text));
  copy.file_id = std::move(file_id);
  copy.media = std::move(media);
  return ok(Json{{"message_id", copy.message_id}});
}

Reply BotApiState::edit_message(Call& call, std::string_view method) {
  const auto message_id = int_param(call.params, "message_id");
  if (!message_id) return bad_request("message identifier is not specified");
  SimMessage* message = find_message(call.bot, call.chat_id, *message_id);
  if (!message || message->deleted) return bad_request("message to edit not found");
  if (!message->from_bot || message->sender_id != call.bot.id) return bad_request("message can't be edited");
  constexpr std::string_view kNotModified =
      "message is not modified: specified new message content and reply markup are exactly the same as a current "
      "content and reply markup of the message";
  const auto markup = text_param(call.params, "reply_markup");
  const bool markup_changed = markup != message->reply_markup;

  if (method == "editmessagereplymarkup") {
    if (!markup_changed) return bad_request(kNotModified);
  } else {
    const bool caption = method == "editmessagecaption";
    if (caption && message->file_id.empty()) return bad_request("there is no caption in the message to edit");
    if (!caption && !message->file_id.empty()) return bad_request("there is no text in the message to edit");
    if (!caption && !has_param(call.params, "text")) return bad_request("message text is empty");
    auto formatted = parse_formatted_text(text_param(call.params, caption ? "caption" : "text"),
                                          text_param(call.params, "parse_mode"));
    if (!formatted.error.empty()) return error(400, formatted.error);
    if (!caption && formatted.plain.find_first_not_of(" \t\r\n") == std::string::npos) {
      return bad_request("message text is empty");
    }
    if (utf16_length(formatted.plain) > (caption ? kMaxCaptionLength : kMaxTextLength)) {
      return bad_request(caption ? "message caption is too long" : "message is too long");
    }
    if (formatted.plain == message->text && !markup_changed) return bad_request(kNotModified);
    message->text = std::move(formatted.plain);
  }
  message->reply_markup = markup;
  ++message->edits;
  return ok(message_json(*message, true));
}

Reply BotApiState::delete_message(Call& call) {
  const auto message_id = int_param(call.params, "message_id");
  SimMessage* message = message_id ? find_message(call.bot, call.chat_id, *message_id) : nullptr;
  if (!message || message->deleted) return bad_request("message to delete not found");
  // In groups a bot that is no administrator deletes only its own messages.
  if (call.chat_id < 0 && message->sender_id != call.bot.id) return bad_request("message can't be deleted");
  message->deleted = true;
  return ok(true);
}

Reply BotApiState::get_chat(Call& call) {
  auto chat = chat_json(call.chat_id);
  if (call.chat_id < 0) chat["permissions"] = Json{{"can_send_messages", true}};
  return ok(std::move(chat));
}

Reply BotApiState::get_chat_member(Call& call) {
  const auto user_id = int_param(call.params, "user_id");
  if (!user_id) return bad_request("user not found");
  if (*user_id == call.bot.id) return ok(Json{{"user", bot_json(call.bot)}, {"status", "member"}});
  const bool known = users_.count(*user_id) != 0 || (open_world_ && *user_id > 0);
  const bool in_chat = call.chat_id > 0 ? *user_id == call.chat_id : known;
  if (!known || !in_chat) return bad_request("user not found");
  return ok(Json{{"user", user_json(*user_id)}, {"status", "member"}});
}

Reply BotApiState::get_file(Call& call) {
  const StoredFile* file = usable_file(call.bot, text_param(call.params, "file_id"));
  if (!file) return bad_request("invalid file_id");
  if (file->bytes.size() > kMaxDownloadSize) return bad_request("file is too big");
  return ok(Json{{"file_id", file->file_id},
                 {"file_unique_id", file->file_unique_id},
                 {"file_size", file->bytes.size()},
                 {"file_path", file->file_path}});
}

Reply BotApiState::collect_updates(Bot& bot, const UpdatesPoll& poll, Time now) {
  // Telegram keeps an update for 24 hours.
  while (!bot.updates.empty() && bot.updates.front().first + std::chrono::hours(24) <= now) bot.updates.pop_front();
  auto offset = poll.offset;
  if (offset < 0) {
    // A negative offset keeps only the last -offset updates (the others are forgotten), then reads from the oldest.
    const auto keep = static_cast<std::size_t>(std::min<std::int64_t>(-offset, 1 << 30));
    while (bot.updates.size() > keep) bot.updates.pop_front();
    offset = 0;
  }
  // Asking from `offset` confirms every earlier update: they are gone.
  while (!bot.updates.empty() && bot.updates.front().second["update_id"].get<std::int64_t>() < offset) {
    bot.updates.pop_front();
  }
  Json result = Json::array();
  for (const auto& [pushed_at, update] : bot.updates) {
    if (result.size() == poll.limit) break;
    result.push_back(Json(update));
  }
  if (result.empty() && poll.timeout.count() > 0) return Reply{.poll = poll};
  return ok(std::move(result));
}

// ---- Storage ----

SimMessage& BotApiState::store_message(const Bot* bot, std::int64_t chat_id, std::int64_t sender_id, bool from_bot,
                                       std::string text) {
  auto& chat = chats_[chat_id];
  // Private chats: each bot has its own chat with the user, numbered from 1.
  const std::int64_t dialog = chat_id > 0 && bot ? bot->id : 0;
  std::int64_t last_id = 0;
  for (auto it = chat.rbegin(); it != chat.rend(); ++it) {
    if (it->dialog_bot_id == dialog) {
      last_id = it->message_id;
      break;
    }
  }
  SimMessage message;
  message.chat_id = chat_id;
  message.message_id = last_id + 1;
  message.sender_id = sender_id;
  message.dialog_bot_id = dialog;
  message.from_bot = from_bot;
  message.text = std::move(text);
  chat.push_back(std::move(message));
  return chat.back();
}

SimMessage* BotApiState::find_message(const Bot& bot, std::int64_t chat_id, std::int64_t message_id) {
  const auto chat = chats_.find(chat_id);
  if (chat == chats_.end()) return nullptr;
  const std::int64_t dialog = chat_id > 0 ? bot.id : 0;
  for (auto& message : chat->second) {
    if (message.message_id == message_id && message.dialog_bot_id == dialog) return &message;
  }
  return nullptr;
}

nlohmann::ordered_json BotApiState::chat_json(std::int64_t chat_id) const {
  if (chat_id > 0) {
    Json chat{{"id", chat_id}, {"first_name", "Sim User"}};
    if (const auto user = users_.find(chat_id); user != users_.end()) {
      chat["first_name"] = user->second.first_name;
      if (!user->second.username.empty()) chat["username"] = user->second.username;
    }
    chat["type"] = "private";
    return chat;
  }
  if (const auto group = groups_.find(chat_id); group != groups_.end()) {
    return {{"id", chat_id}, {"title", group->second.title}, {"type", chat_type_name(group->second.type)}};
  }
  const auto type = implied_chat_type(chat_id);
  return {{"id", chat_id},
          {"title", type == SimChatType::supergroup ? "Sim Supergroup" : "Sim Group"},
          {"type", chat_type_name(type)}};
}

nlohmann::ordered_json BotApiState::user_json(std::int64_t user_id) const {
  Json user{{"id", user_id}, {"is_bot", false}, {"first_name", "Sim User"}};
  if (const auto it = users_.find(user_id); it != users_.end()) {
    user["first_name"] = it->second.first_name;
    if (!it->second.username.empty()) user["username"] = it->second.username;
  }
  return user;
}

nlohmann::ordered_json BotApiState::bot_json(const Bot& bot) const {
  return {{"id", bot.id},
          {"is_bot", true},
          {"first_name", bot.first_name},
          {"username", bot.username},
          {"can_join_groups", true},
          {"can_read_all_group_messages", false},
          {"supports_inline_queries", false}};
}

nlohmann::ordered_json BotApiState::message_json(const SimMessage& message, bool edited) const {
  Json from;
  if (message.from_bot) {
    const auto bot = std::find_if(bots_.begin(), bots_.end(),
                                  [&](const auto& entry) { return entry.second.id == message.sender_id; });
    from = bot != bots_.end() ? bot_json(bot->second)
                              : Json{{"id", message.sender_id}, {"is_bot", true}, {"first_name", "Sim Bot"}};
    for (const char* key : {"can_join_groups", "can_read_all_group_messages", "supports_inline_queries"}) from.erase(key);
  } else {
    from = user_json(message.sender_id);
  }
  Json json{{"message_id", message.message_id}, {"from", std::move(from)}, {"chat", chat_json(message.chat_id)},
            {"date", unix_now()}};
  if (edited) json["edit_date"] = unix_now();
  if (message.file_id.empty()) {
    json["text"] = message.text;
    // A user's "/command ..." carries a bot_command entity: frameworks route commands by it.
    if (!message.from_bot && message.text.starts_with('/') && message.text.size() > 1) {
      const auto command = std::string_view(message.text).substr(0, message.text.find_first_of(" \n"));
      json["entities"] = Json::array({{{"offset", 0}, {"length", utf16_length(command)}, {"type", "bot_command"}}});
    }
  } else {
    const auto& file = files_by_id_.at(message.file_id);
    Json media{{"file_id", file.file_id}, {"file_unique_id", file.file_unique_id}, {"file_size", file.bytes.size()}};
    if (message.media == "photo") {
      media["width"] = 800;
      media["height"] = 600;
      json["photo"] = Json::array({std::move(media)});
    } else {
      if (message.media == "sticker") {
        media.update(Json{{"type", "regular"}, {"width", 512}, {"height", 512}, {"is_animated", false}, {"is_video", false}});
      } else {
        if (message.media == "video" || message.media == "animation") media.update(Json{{"width", 640}, {"height", 360}});
        if (message.media != "document") media["duration"] = 1;
        if (message.media != "voice") media["file_name"] = file.file_name;
        media["mime_type"] = file.mime_type;
      }
      json[message.media] = std::move(media);
      // Telegram sends an animation as a document too, for old clients.
      if (message.media == "animation") json["document"] = json["animation"];
    }
    if (!message.text.empty()) json["caption"] = message.text;
  }
  if (!message.reply_markup.empty()) {
    auto markup = nlohmann::json::parse(message.reply_markup, nullptr, false);
    if (markup.is_object()) json["reply_markup"] = Json(markup);
  }
  return json;
}

const BotApiState::StoredFile* BotApiState::usable_file(const Bot& bot, std::string_view file_id) const {
  const auto file = files_by_id_.find(file_id);
  if (file == files_by_id_.end()) return nullptr;
  if (file->second.owner_bot_id != 0 && file->second.owner_bot_id != bot.id) return nullptr;
  return &file->second;
}

std::string BotApiState::store_file(std::int64_t owner_bot_id, std::string bytes, std::string file_name,
                                    std::string mime_type, std::string_view media) {
  const auto number = next_file_number_++;
  StoredFile file;
  // Shared files keep the simulator's first id format; a bot's own say whose they are.
  file.file_id = owner_bot_id == 0
                     ? fmt::format("BQACAgIAAxkBAAI{:08d}", number)
                     : fmt::format("{}AgIAAxk{:x}AAI{:08d}", file_id_prefix(media), owner_bot_id, number);
  // The same bytes are the same file for every bot, as Telegram's file_unique_id is.
  file.file_unique_id = fmt::format("AgAD{:016x}", std::hash<std::string>{}(bytes));
  const auto dot = file_name.rfind('.');
  const std::string folder = media == "photo" ? "photos" : media.empty() ? "documents" : std::string(media) + "s";
  file.file_path = fmt::format("{}/file_{}{}", folder, number, dot == std::string::npos ? "" : file_name.substr(dot));
  file.file_name = std::move(file_name);
  file.mime_type = std::move(mime_type);
  file.bytes = std::move(bytes);
  file.owner_bot_id = owner_bot_id;
  file_id_by_path_[file.file_path] = file.file_id;
  auto id = file.file_id;
  files_by_id_.emplace(id, std::move(file));
  return id;
}

BotApiState::Bot* BotApiState::find_bot(std::string_view token) {
  const auto it = bots_.find(token);
  return it == bots_.end() ? nullptr : &it->second;
}

BotApiState::Bot& BotApiState::bot_or_throw(const std::string& token, std::string_view what) {
  Bot* bot = find_bot(token);
  if (!bot) throw Error(fmt::format("BotApiServer::{}: unknown token", what));
  return *bot;
}

// ---- Administration ----

void BotApiState::add_token(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (bots_.count(token) != 0) return;
  Bot bot;
  bot.id = bot_id_of(token).value_or(next_bot_id_++);
  bot.username = fmt::format("sim{}_bot", bot.id);
  bots_.emplace(token, std::move(bot));
}

void BotApiState::revoke_token(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (Bot* bot = find_bot(token)) bot->revoked = true;
}

void BotApiState::set_limits(const std::string& token, const BotApiLimits& limits) {
  std::lock_guard lock(mutex_);
  if (Bot* bot = find_bot(token)) bot->limits = limits;
}

void BotApiState::set_default_limits(const BotApiLimits& limits) {
  std::lock_guard lock(mutex_);
  default_limits_ = limits;
}

void BotApiState::set_open_world(bool open) {
  std::lock_guard lock(mutex_);
  open_world_ = open;
}

void BotApiState::inject(const std::string& token, const Fault& fault, int times) {
  std::lock_guard lock(mutex_);
  Bot& bot = bot_or_throw(token, "inject");
  for (int i = 0; i < times; ++i) bot.faults.push_back(fault);
}

void BotApiState::migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id) {
  std::lock_guard lock(mutex_);
  migrated_chats_[from_chat_id] = to_chat_id;
  // The supergroup has the group's bots.
  if (const auto group = groups_.find(from_chat_id); group != groups_.end() && groups_.count(to_chat_id) == 0) {
    Group moved = group->second;
    moved.type = SimChatType::supergroup;
    groups_.emplace(to_chat_id, std::move(moved));
  }
}

void BotApiState::add_user(std::int64_t user_id, std::string first_name, std::string username) {
  if (user_id <= 0) throw Error(fmt::format("BotApiServer::add_user: a user id is positive, not {}", user_id));
  std::lock_guard lock(mutex_);
  auto& user = users_[user_id];
  user.first_name = std::move(first_name);
  user.username = std::move(username);
}

void BotApiState::start_bot(const std::string& token, std::int64_t user_id) {
  if (user_id <= 0) throw Error(fmt::format("BotApiServer::start_bot: a user id is positive, not {}", user_id));
  std::lock_guard lock(mutex_);
  const auto bot_id = bot_or_throw(token, "start_bot").id;
  auto& user = users_[user_id];
  user.started.insert(bot_id);
  user.blocked.erase(bot_id);
}

void BotApiState::block_bot(const std::string& token, std::int64_t user_id) {
  if (user_id <= 0) throw Error(fmt::format("BotApiServer::block_bot: a user id is positive, not {}", user_id));
  std::lock_guard lock(mutex_);
  users_[user_id].blocked.insert(bot_or_throw(token, "block_bot").id);
}

void BotApiState::add_group(std::int64_t chat_id, SimChatType type, std::string title) {
  if (chat_id >= 0) throw Error(fmt::format("BotApiServer::add_group: a group id is negative, not {}", chat_id));
  std::lock_guard lock(mutex_);
  auto& group = groups_[chat_id];
  group.type = type;
  group.title = std::move(title);
}

BotApiState::Group& BotApiState::group_declared_if_new(std::int64_t chat_id) {
  auto [group, added] = groups_.try_emplace(chat_id);
  if (added) {
    group->second.type = implied_chat_type(chat_id);
    group->second.title = "Sim Group";
  }
  return group->second;
}

void BotApiState::add_member(const std::string& token, std::int64_t chat_id) {
  if (chat_id >= 0) throw Error(fmt::format("BotApiServer::add_member: a group id is negative, not {}", chat_id));
  std::lock_guard lock(mutex_);
  const auto bot_id = bot_or_throw(token, "add_member").id;
  Group& group = group_declared_if_new(chat_id);
  group.members.insert(bot_id);
  group.kicked.erase(bot_id);
}

void BotApiState::kick_bot(const std::string& token, std::int64_t chat_id) {
  std::lock_guard lock(mutex_);
  const auto bot_id = bot_or_throw(token, "kick_bot").id;
  Group& group = group_declared_if_new(chat_id);
  group.members.erase(bot_id);
  group.kicked.insert(bot_id);
}

void BotApiState::name_bot(const std::string& token, std::string username, std::string first_name) {
  std::lock_guard lock(mutex_);
  Bot& bot = bot_or_throw(token, "name_bot");
  if (!username.empty()) bot.username = std::move(username);
  if (!first_name.empty()) bot.first_name = std::move(first_name);
}

std::int64_t BotApiState::push_update(const std::string& token, nlohmann::json update) {
  const auto now = now_();
  std::lock_guard lock(mutex_);
  Bot& bot = bot_or_throw(token, "push_update");
  if (!update_allowed(bot, update)) return 0;
  const auto id = bot.next_update_id++;
  update["update_id"] = id;
  bot.updates.emplace_back(now, std::move(update));
  return id;
}

std::int64_t BotApiState::push_message(const std::string& token, std::int64_t chat_id, std::int64_t from_user_id,
                                       std::string text) {
  Json message;
  {
    std::lock_guard lock(mutex_);
    Bot& bot = bot_or_throw(token, "push_message");
    if (chat_id > 0) {  // writing to a bot starts (or unblocks) it
      if (auto user = users_.find(chat_id); user != users_.end()) {
        user->second.started.insert(bot.id);
        user->second.blocked.erase(bot.id);
      }
    }
    auto& stored = store_message(&bot, chat_id, from_user_id, false, std::move(text));
    message = message_json(stored, false);
  }
  return push_update(token, nlohmann::json{{"message", nlohmann::json(message)}});
}

std::int64_t BotApiState::push_callback_query(const std::string& token, std::int64_t user_id, std::string data) {
  Json query;
  {
    std::lock_guard lock(mutex_);
    Bot& bot = bot_or_throw(token, "push_callback_query");
    const auto number = next_callback_query_++;
    std::string id = fmt::format("{}", 4000000000000000000 + number);
    bot.open_callback_queries.insert(id);
    query = Json{{"id", id},
                 {"from", user_json(user_id)},
                 {"chat_instance", fmt::format("{}", 5000000000000000000 + number)},
                 {"data", std::move(data)}};
  }
  return push_update(token, nlohmann::json{{"callback_query", nlohmann::json(query)}});
}

std::string BotApiState::add_file(const std::string& token, std::string bytes, std::string file_name,
                                  std::string mime_type) {
  std::lock_guard lock(mutex_);
  const std::int64_t owner = token.empty() ? 0 : bot_or_throw(token, "add_file").id;
  return store_file(owner, std::move(bytes), std::move(file_name), std::move(mime_type), "document");
}

TokenStats BotApiState::stats(const std::string& token) const {
  std::lock_guard lock(mutex_);
  const auto it = bots_.find(token);
  if (it == bots_.end()) throw Error("BotApiServer::stats: unknown token");
  return it->second.stats;
}

std::vector<SimMessage> BotApiState::messages(std::int64_t chat_id) const {
  std::lock_guard lock(mutex_);
  const auto it = chats_.find(chat_id);
  return it == chats_.end() ? std::vector<SimMessage>{} : it->second;
}

std::vector<SimMessage> BotApiState::messages(const std::string& token, std::int64_t chat_id) const {
  std::lock_guard lock(mutex_);
  const auto bot = bots_.find(token);
  if (bot == bots_.end()) throw Error("BotApiServer::messages: unknown token");
  std::vector<SimMessage> seen;
  if (const auto it = chats_.find(chat_id); it != chats_.end()) {
    for (const auto& message : it->second) {
      if (chat_id < 0 || message.dialog_bot_id == bot->second.id) seen.push_back(message);
    }
  }
  return seen;
}

}  // namespace detail
}  // namespace floodgate::sim
