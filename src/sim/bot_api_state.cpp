#include "bot_api_state.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "floodgate/core/error.hpp"

namespace floodgate::sim {

Rate Rate::parse(std::string_view text) {
  const auto invalid = [&] {
    return Error(fmt::format("invalid rate '{}': expected <count>/<period>, e.g. 30/s, 20/min, 5/250ms", text));
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) throw invalid();
  Rate rate;
  const auto count_text = text.substr(0, slash);
  auto [count_end, count_error] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), rate.count);
  if (count_error != std::errc{} || count_end != count_text.data() + count_text.size() || rate.count < 1) {
    throw invalid();
  }
  auto unit = text.substr(slash + 1);
  long long multiplier = 1;
  if (!unit.empty() && std::isdigit(static_cast<unsigned char>(unit.front()))) {
    auto [end, error] = std::from_chars(unit.data(), unit.data() + unit.size(), multiplier);
    if (error != std::errc{} || multiplier < 1) throw invalid();
    unit.remove_prefix(static_cast<std::size_t>(end - unit.data()));
  }
  using namespace std::chrono;
  milliseconds base{0};
  if (unit == "ms") base = milliseconds(1);
  else if (unit == "s" || unit == "sec" || unit == "second") base = seconds(1);
  else if (unit == "m" || unit == "min" || unit == "minute") base = minutes(1);
  else if (unit == "h" || unit == "hour") base = hours(1);
  else throw invalid();
  rate.period = base * multiplier;
  return rate;
}

namespace detail {
namespace {

using Json = nlohmann::ordered_json;  // Telegram's field order: ok, error_code, description, ...

Reply ok(Json result) { return {200, Json{{"ok", true}, {"result", std::move(result)}}.dump()}; }

Reply error(int code, std::string_view description, Json parameters = nullptr) {
  Json body{{"ok", false}, {"error_code", code}, {"description", description}};
  if (!parameters.is_null()) body["parameters"] = std::move(parameters);
  return {code, body.dump()};
}

Reply unauthorized() { return error(401, "Unauthorized"); }
Reply not_found() { return error(404, "Not Found"); }
Reply bad_request(std::string_view what) { return error(400, fmt::format("Bad Request: {}", what)); }

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

std::string text_param(const FormParams& params, std::string_view name) {
  const auto it = params.find(name);
  return it == params.end() ? std::string{} : it->second.value;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Json chat_json(std::int64_t chat_id) {
  if (chat_id > 0) return {{"id", chat_id}, {"first_name", "Sim User"}, {"type", "private"}};
  if (chat_id <= -1000000000000) return {{"id", chat_id}, {"title", "Sim Supergroup"}, {"type", "supergroup"}};
  return {{"id", chat_id}, {"title", "Sim Group"}, {"type", "group"}};
}

Json user_json(std::int64_t id, bool is_bot) {
  if (!is_bot) return {{"id", id}, {"is_bot", false}, {"first_name", "Sim User"}};
  return {{"id", id}, {"is_bot", true}, {"first_name", "Sim Bot"}, {"username", fmt::format("sim{}_bot", id)}};
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

bool is_send_method(std::string_view method) {
  return method == "sendmessage" || method == "senddocument" || method == "copymessage" ||
         method == "editmessagetext";
}

}  // namespace

Time SlidingWindow::wait_needed(const Rate& rate, Time now) {
  const Time period = rate.period;
  while (!accepted_.empty() && accepted_.front() <= now - period) accepted_.pop_front();
  if (accepted_.size() < static_cast<std::size_t>(rate.count)) return Time{0};
  return accepted_.front() + period - now;
}

struct BotApiState::Call {
  Bot& bot;
  const FormParams& params;
  std::int64_t chat_id;
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
  if (name == "getupdates") {
    UpdatesPoll poll{token, int_param(params, "offset").value_or(0),
                     static_cast<std::size_t>(std::clamp<std::int64_t>(int_param(params, "limit").value_or(100), 1, 100)),
                     std::chrono::seconds(std::max<std::int64_t>(0, int_param(params, "timeout").value_or(0)))};
    reply = collect_updates(*bot, poll);
  } else {
    reply = execute(*bot, name, params, now);
  }
  if (reply.status == 200) ++bot->stats.succeeded;
  reply.delivery_fault = delivery_fault;
  return reply;
}

Reply BotApiState::handle_download(const std::string& token, std::string_view file_path, Time) {
  std::lock_guard lock(mutex_);
  Bot* bot = nullptr;
  Reply reply = admit(token, "file", bot);
  if (!bot) return reply;
  const auto delivery_fault = reply.delivery_fault;
  const auto id = file_id_by_path_.find(file_path);
  if (id == file_id_by_path_.end()) return not_found();
  const auto& file = files_by_id_.at(id->second);
  ++bot->stats.succeeded;
  Reply download{200, file.bytes, file.mime_type};
  download.delivery_fault = delivery_fault;
  return download;
}

Reply BotApiState::poll_updates(const UpdatesPoll& poll) {
  std::lock_guard lock(mutex_);
  Bot* bot = find_bot(poll.token);
  if (!bot || bot->revoked) return unauthorized();
  return collect_updates(*bot, poll);
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
  if (!candidate->faults.empty()) {
    const Fault fault = candidate->faults.front();
    candidate->faults.pop_front();
    ++stats.faults;
    switch (fault.kind) {
      case Fault::Kind::server_error: return error(fault.status, server_error_text(fault.status));
      case Fault::Kind::invalid_json: return Reply{200, R"({"ok":true,"result":{"message_id":)"};
      case Fault::Kind::drop_connection: return Reply{.delivery_fault = fault};
      case Fault::Kind::truncated_response:
      case Fault::Kind::slow_reply: admitted.delivery_fault = fault; break;
    }
  }
  bot = candidate;
  return admitted;
}

Reply BotApiState::execute(Bot& bot, std::string_view method, const FormParams& params, Time now) {
  if (method == "getme") {
    auto me = user_json(bot.id, true);
    me["can_join_groups"] = true;
    me["can_read_all_group_messages"] = false;
    me["supports_inline_queries"] = false;
    return ok(std::move(me));
  }
  Call call{bot, params, 0};
  if (method == "getfile") return get_file(call);
  if (!is_send_method(method)) return not_found();

  if (params.find("chat_id") == params.end()) return bad_request("chat_id is empty");
  const auto chat_id = int_param(params, "chat_id");
  if (!chat_id) return bad_request("chat not found");
  if (const auto migrated = migrated_chats_.find(*chat_id); migrated != migrated_chats_.end()) {
    return error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                 Json{{"migrate_to_chat_id", migrated->second}});
  }
  if (auto limited = check_flood_control(bot, *chat_id, now)) return std::move(*limited);

  call.chat_id = *chat_id;
  Reply reply = method == "sendmessage"   ? send_message(call)
                : method == "senddocument" ? send_document(call)
                : method == "copymessage"  ? copy_message(call)
                                           : edit_message_text(call);
  if (reply.status == 200) record_send(bot, *chat_id, now);
  return reply;
}

// ---- Flood control ----

std::optional<Reply> BotApiState::check_flood_control(Bot& bot, std::int64_t chat_id, Time now) {
  const BotApiLimits& limits = bot.limits ? *bot.limits : default_limits_;
  const auto too_many_requests = [&](std::chrono::seconds retry_after) {
    ++bot.stats.rate_limited;
    return error(429, fmt::format("Too Many Requests: retry after {}", retry_after.count()),
                 Json{{"retry_after", retry_after.count()}});
  };

  // Told to wait and did not: the wait grows, as Telegram's does.
  Time* cooldown = nullptr;
  const auto chat_cooldown = bot.chat_cooldown_until.find(chat_id);
  if (bot.cooldown_until > now) {
    cooldown = &bot.cooldown_until;
  } else if (chat_cooldown != bot.chat_cooldown_until.end() && chat_cooldown->second > now) {
    cooldown = &chat_cooldown->second;
  }
  if (cooldown) {
    ++bot.stats.sent_during_cooldown;
    const std::chrono::duration<double> left = *cooldown - now;
    const auto retry_after = std::max(std::chrono::seconds(1),
                                      std::chrono::ceil<std::chrono::seconds>(left * limits.ignored_cooldown_factor));
    *cooldown = now + retry_after;
    return too_many_requests(retry_after);
  }
  if (chat_cooldown != bot.chat_cooldown_until.end()) bot.chat_cooldown_until.erase(chat_cooldown);

  struct Limit {
    const std::optional<Rate>& rate;
    SlidingWindow* window;
    Time* cooldown;
  };
  const Limit checks[] = {
      {limits.overall, &bot.overall, &bot.cooldown_until},
      {limits.per_chat, &bot.per_chat[chat_id], nullptr},
      {chat_id < 0 ? limits.per_group : std::nullopt, &bot.per_group[chat_id], nullptr},
  };
  for (const auto& limit : checks) {
    if (!limit.rate) continue;
    const Time wait = limit.window->wait_needed(*limit.rate, now);
    if (wait <= Time{0}) continue;
    const auto retry_after = std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(wait));
    Time& until = limit.cooldown ? *limit.cooldown : bot.chat_cooldown_until[chat_id];
    until = now + retry_after;
    return too_many_requests(retry_after);
  }
  return std::nullopt;
}

void BotApiState::record_send(Bot& bot, std::int64_t chat_id, Time now) {
  bot.overall.record(now);
  bot.per_chat[chat_id].record(now);
  if (chat_id < 0) bot.per_group[chat_id].record(now);
}

// ---- Methods ----

Reply BotApiState::send_message(Call& call) {
  auto text = text_param(call.params, "text");
  if (text.empty()) return bad_request("message text is empty");
  return ok(message_json(store_message(call.chat_id, call.bot.id, std::move(text), {}), false));
}

Reply BotApiState::send_document(Call& call) {
  const auto document = call.params.find("document");
  if (document == call.params.end()) return bad_request("there is no document in the request");
  std::string file_id;
  if (document->second.is_file) {
    const auto& upload = document->second;
    file_id = store_file(upload.value, upload.filename.empty() ? "document" : upload.filename,
                         upload.content_type.empty() ? "application/octet-stream" : upload.content_type);
  } else if (files_by_id_.count(document->second.value) != 0) {
    file_id = document->second.value;
  } else {
    return bad_request("wrong file identifier/HTTP URL specified");
  }
  auto& message = store_message(call.chat_id, call.bot.id, text_param(call.params, "caption"), std::move(file_id));
  return ok(message_json(message, false));
}

Reply BotApiState::copy_message(Call& call) {
  const auto from_chat = int_param(call.params, "from_chat_id");
  const auto message_id = int_param(call.params, "message_id");
  const SimMessage* source = from_chat && message_id ? find_message(*from_chat, *message_id) : nullptr;
  if (!source) return bad_request("message to copy not found");
  const auto caption = call.params.find("caption");
  std::string text = caption != call.params.end() ? caption->second.value : source->text;
  std::string file_id = source->file_id;  // copied before store_message may move `source`
  const auto& copy = store_message(call.chat_id, call.bot.id, std::move(text), std::move(file_id));
  return ok(Json{{"message_id", copy.message_id}});
}

Reply BotApiState::edit_message_text(Call& call) {
  const auto message_id = int_param(call.params, "message_id");
  SimMessage* message = message_id ? find_message(call.chat_id, *message_id) : nullptr;
  if (!message) return bad_request("message to edit not found");
  if (!message->from_bot || message->sender_id != call.bot.id) return bad_request("message can't be edited");
  auto text = text_param(call.params, "text");
  if (text.empty()) return bad_request("message text is empty");
  if (text == message->text) {
    return bad_request(
        "message is not modified: specified new message content and reply markup are exactly the same as a "
        "current content and reply markup of the message");
  }
  message->text = std::move(text);
  ++message->edits;
  return ok(message_json(*message, true));
}

Reply BotApiState::get_file(Call& call) {
  const auto file = files_by_id_.find(text_param(call.params, "file_id"));
  if (file == files_by_id_.end()) return bad_request("invalid file_id");
  const auto& f = file->second;
  return ok(Json{{"file_id", f.file_id},
                 {"file_unique_id", f.file_unique_id},
                 {"file_size", f.bytes.size()},
                 {"file_path", f.file_path}});
}

Reply BotApiState::collect_updates(Bot& bot, const UpdatesPoll& poll) {
  // Asking from `offset` confirms every earlier update: they are gone.
  while (!bot.updates.empty() && bot.updates.front()["update_id"].get<std::int64_t>() < poll.offset) {
    bot.updates.pop_front();
  }
  Json result = Json::array();
  for (const auto& update : bot.updates) {
    if (result.size() == poll.limit) break;
    result.push_back(Json(update));
  }
  if (result.empty() && poll.timeout.count() > 0) return Reply{.poll = poll};
  return ok(std::move(result));
}

// ---- Storage ----

SimMessage& BotApiState::store_message(std::int64_t chat_id, std::int64_t sender_id, std::string text,
                                       std::string file_id) {
  auto& chat = chats_[chat_id];
  SimMessage message;
  message.chat_id = chat_id;
  message.message_id = chat.empty() ? 1 : chat.back().message_id + 1;
  message.sender_id = sender_id;
  message.text = std::move(text);
  message.file_id = std::move(file_id);
  chat.push_back(std::move(message));
  return chat.back();
}

SimMessage* BotApiState::find_message(std::int64_t chat_id, std::int64_t message_id) {
  const auto chat = chats_.find(chat_id);
  if (chat == chats_.end()) return nullptr;
  for (auto& message : chat->second) {
    if (message.message_id == message_id) return &message;
  }
  return nullptr;
}

nlohmann::ordered_json BotApiState::message_json(const SimMessage& message, bool edited) const {
  Json json{{"message_id", message.message_id},
            {"from", user_json(message.sender_id, message.from_bot)},
            {"chat", chat_json(message.chat_id)},
            {"date", unix_now()}};
  if (edited) json["edit_date"] = unix_now();
  if (message.file_id.empty()) {
    json["text"] = message.text;
  } else {
    const auto& file = files_by_id_.at(message.file_id);
    json["document"] = Json{{"file_name", file.file_name},
                            {"mime_type", file.mime_type},
                            {"file_id", file.file_id},
                            {"file_unique_id", file.file_unique_id},
                            {"file_size", file.bytes.size()}};
    if (!message.text.empty()) json["caption"] = message.text;
  }
  return json;
}

std::string BotApiState::store_file(std::string bytes, std::string file_name, std::string mime_type) {
  const auto number = next_file_number_++;
  StoredFile file;
  file.file_id = fmt::format("BQACAgIAAxkBAAI{:08d}", number);
  file.file_unique_id = fmt::format("AgAD{:08d}", number);
  const auto dot = file_name.rfind('.');
  file.file_path = fmt::format("documents/file_{}{}", number, dot == std::string::npos ? "" : file_name.substr(dot));
  file.file_name = std::move(file_name);
  file.mime_type = std::move(mime_type);
  file.bytes = std::move(bytes);
  file_id_by_path_[file.file_path] = file.file_id;
  auto id = file.file_id;
  files_by_id_.emplace(id, std::move(file));
  return id;
}

BotApiState::Bot* BotApiState::find_bot(const std::string& token) {
  const auto it = bots_.find(token);
  return it == bots_.end() ? nullptr : &it->second;
}

// ---- Administration ----

void BotApiState::add_token(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (bots_.count(token) != 0) return;
  Bot bot;
  bot.id = bot_id_of(token).value_or(next_bot_id_++);
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

void BotApiState::inject(const std::string& token, const Fault& fault, int times) {
  std::lock_guard lock(mutex_);
  Bot* bot = find_bot(token);
  if (!bot) throw Error("BotApiServer::inject: unknown token");
  for (int i = 0; i < times; ++i) bot->faults.push_back(fault);
}

void BotApiState::migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id) {
  std::lock_guard lock(mutex_);
  migrated_chats_[from_chat_id] = to_chat_id;
}

std::int64_t BotApiState::push_update(const std::string& token, nlohmann::json update) {
  std::lock_guard lock(mutex_);
  Bot* bot = find_bot(token);
  if (!bot) throw Error("BotApiServer::push_update: unknown token");
  const auto id = bot->next_update_id++;
  update["update_id"] = id;
  bot->updates.push_back(std::move(update));
  return id;
}

std::int64_t BotApiState::push_message(const std::string& token, std::int64_t chat_id, std::string text) {
  Json message;
  {
    std::lock_guard lock(mutex_);
    auto& stored = store_message(chat_id, chat_id > 0 ? chat_id : 1000001, std::move(text), {});
    stored.from_bot = false;
    message = message_json(stored, false);
  }
  return push_update(token, nlohmann::json{{"message", nlohmann::json(std::move(message))}});
}

std::string BotApiState::add_file(std::string bytes, std::string file_name, std::string mime_type) {
  std::lock_guard lock(mutex_);
  return store_file(std::move(bytes), std::move(file_name), std::move(mime_type));
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

}  // namespace detail
}  // namespace floodgate::sim
