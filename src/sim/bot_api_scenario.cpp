#include "bot_api_scenario.hpp"

#include <fmt/format.h>

#include <functional>
#include <optional>
#include <set>

#include "floodgate/core/error.hpp"

namespace floodgate::sim::detail {
namespace {

using Json = nlohmann::json;
using Action = std::function<void(BotApiState&)>;

struct ScenarioError : Error {
  ScenarioError(const std::string& where, const std::string& what)
      : Error(fmt::format("scenario: {}: {}", where, what)) {}
};

void check_keys(const Json& object, const std::string& where, std::initializer_list<std::string_view> allowed) {
  if (!object.is_object()) throw ScenarioError(where, "expected an object");
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      throw ScenarioError(where, fmt::format("unknown field \"{}\"", key));
    }
  }
}

const Json& array_field(const Json& object, const char* key, const std::string& where) {
  static const Json empty = Json::array();
  if (!object.contains(key)) return empty;
  if (!object[key].is_array()) throw ScenarioError(where, fmt::format("\"{}\" must be an array", key));
  return object[key];
}

std::int64_t int_field(const Json& object, const char* key, const std::string& where) {
  if (!object.contains(key) || !object[key].is_number_integer()) {
    throw ScenarioError(where, fmt::format("\"{}\" must be an integer", key));
  }
  return object[key].get<std::int64_t>();
}

std::string string_field(const Json& object, const char* key, const std::string& where, std::string fallback = {}) {
  if (!object.contains(key)) return fallback;
  if (!object[key].is_string()) throw ScenarioError(where, fmt::format("\"{}\" must be a string", key));
  return object[key].get<std::string>();
}

std::optional<Rate> rate_field(const Json& value, const std::string& where) {
  if (value.is_null() || value == "off") return std::nullopt;
  if (!value.is_string()) throw ScenarioError(where, "a rate is a string such as \"30/s\" or \"off\"");
  try {
    return Rate::parse(value.get<std::string>());
  } catch (const Error& e) {
    throw ScenarioError(where, e.what());
  }
}

/// Bots by every name a scenario may use for them: token, username, id.
class BotNames {
 public:
  void add(const std::string& token, const std::string& username) {
    tokens_.insert(token);
    if (!username.empty()) by_name_[username] = token;
    const auto colon = token.find(':');
    if (colon != std::string::npos) by_name_.try_emplace(token.substr(0, colon), token);
  }
  std::string resolve(const Json& ref, const std::string& where) const {
    std::string name;
    if (ref.is_number_integer()) {
      name = std::to_string(ref.get<std::int64_t>());
    } else if (ref.is_string()) {
      name = ref.get<std::string>();
      if (name.starts_with('@')) name.erase(0, 1);
    } else {
      throw ScenarioError(where, "a bot is named by its username, its id or its token");
    }
    if (tokens_.count(name) != 0) return name;
    const auto it = by_name_.find(name);
    if (it == by_name_.end()) throw ScenarioError(where, fmt::format("no bot \"{}\" in \"bots\"", name));
    return it->second;
  }

 private:
  std::set<std::string> tokens_;
  std::map<std::string, std::string> by_name_;
};

Fault fault_from_json(const Json& json, const std::string& where) {
  const auto kind = string_field(json, "kind", where);
  Fault fault;
  if (kind == "server_error") {
    fault = Fault::server_error(static_cast<int>(json.value("status", 500)));
    if (fault.status < 500 || fault.status > 599) throw ScenarioError(where, "\"status\" must be 500..599");
  } else if (kind == "drop_connection") {
    fault = Fault::drop_connection();
  } else if (kind == "truncated_response") {
    fault = Fault::truncated_response();
  } else if (kind == "slow_reply") {
    fault = Fault::slow_reply(std::chrono::milliseconds(int_field(json, "delay_ms", where)));
  } else if (kind == "invalid_json") {
    fault = Fault::invalid_json();
  } else if (kind == "flood_wait") {
    fault = Fault::flood_wait(int_field(json, "retry_after", where));
    if (fault.retry_after < 1) throw ScenarioError(where, "\"retry_after\" must be at least 1");
  } else {
    throw ScenarioError(where, fmt::format("unknown fault kind \"{}\" (server_error, drop_connection, "
                                           "truncated_response, slow_reply, invalid_json, flood_wait)",
                                           kind));
  }
  fault.method = string_field(json, "method", where);
  return fault;
}

SimChatType chat_type_from(const std::string& type, const std::string& where) {
  if (type == "group") return SimChatType::group;
  if (type == "supergroup") return SimChatType::supergroup;
  if (type == "channel") return SimChatType::channel;
  throw ScenarioError(where, "\"type\" is group, supergroup or channel");
}

}  // namespace

BotApiLimits limits_from_json(const Json& json, BotApiLimits base) {
  const std::string where = "limits";
  check_keys(json, where, {"overall", "per_chat", "per_chat_burst", "per_group", "tolerance_ms"});
  if (json.contains("overall")) base.overall = rate_field(json["overall"], where + ".overall");
  if (json.contains("per_chat")) base.per_chat = rate_field(json["per_chat"], where + ".per_chat");
  if (json.contains("per_group")) base.per_group = rate_field(json["per_group"], where + ".per_group");
  if (json.contains("per_chat_burst")) {
    base.per_chat_burst = static_cast<int>(int_field(json, "per_chat_burst", where));
    if (base.per_chat_burst < 1) throw ScenarioError(where, "\"per_chat_burst\" must be at least 1");
  }
  if (json.contains("tolerance_ms")) {
    base.tolerance = std::chrono::milliseconds(int_field(json, "tolerance_ms", where));
  }
  return base;
}

void apply_scenario(BotApiState& state, const Json& scenario, const std::vector<std::string>& known_tokens) {
  check_keys(scenario, "top level", {"open_world", "limits", "bots", "users", "groups", "updates", "faults"});
  std::vector<Action> actions;
  BotNames names;
  for (const auto& token : known_tokens) names.add(token, {});

  if (scenario.contains("open_world")) {
    if (!scenario["open_world"].is_boolean()) throw ScenarioError("open_world", "must be true or false");
    const bool open = scenario["open_world"].get<bool>();
    actions.push_back([open](BotApiState& s) { s.set_open_world(open); });
  }
  BotApiLimits default_limits;
  if (scenario.contains("limits")) {
    default_limits = limits_from_json(scenario["limits"], default_limits);
    actions.push_back([default_limits](BotApiState& s) { s.set_default_limits(default_limits); });
  }

  const auto& bots = array_field(scenario, "bots", "top level");
  for (std::size_t i = 0; i < bots.size(); ++i) {
    const auto where = fmt::format("bots[{}]", i);
    check_keys(bots[i], where, {"token", "username", "first_name", "limits"});
    const auto token = string_field(bots[i], "token", where);
    if (token.empty()) throw ScenarioError(where, "\"token\" is required");
    const auto username = string_field(bots[i], "username", where);
    const auto first_name = string_field(bots[i], "first_name", where);
    std::optional<BotApiLimits> limits;
    if (bots[i].contains("limits")) limits = limits_from_json(bots[i]["limits"], default_limits);
    names.add(token, username);
    actions.push_back([=](BotApiState& s) {
      s.add_token(token);
      s.name_bot(token, username, first_name);
      if (limits) s.set_limits(token, *limits);
    });
  }

  const auto& users = array_field(scenario, "users", "top level");
  for (std::size_t i = 0; i < users.size(); ++i) {
    const auto where = fmt::format("users[{}]", i);
    check_keys(users[i], where, {"id", "first_name", "username", "started", "blocked"});
    const auto id = int_field(users[i], "id", where);
    if (id <= 0) throw ScenarioError(where, "a user id is positive");
    auto first_name = string_field(users[i], "first_name", where, "Sim User");
    auto username = string_field(users[i], "username", where);
    actions.push_back([=](BotApiState& s) { s.add_user(id, first_name, username); });
    for (const auto& ref : array_field(users[i], "started", where)) {
      const auto token = names.resolve(ref, where + ".started");
      actions.push_back([=](BotApiState& s) { s.start_bot(token, id); });
    }
    for (const auto& ref : array_field(users[i], "blocked", where)) {
      const auto token = names.resolve(ref, where + ".blocked");
      actions.push_back([=](BotApiState& s) { s.block_bot(token, id); });
    }
  }

  const auto& groups = array_field(scenario, "groups", "top level");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const auto where = fmt::format("groups[{}]", i);
    check_keys(groups[i], where, {"id", "type", "title", "members", "kicked", "migrated_to"});
    const auto id = int_field(groups[i], "id", where);
    if (id >= 0) throw ScenarioError(where, "a group id is negative");
    const auto type = chat_type_from(string_field(groups[i], "type", where, "group"), where);
    auto title = string_field(groups[i], "title", where, "Sim Group");
    actions.push_back([=](BotApiState& s) { s.add_group(id, type, title); });
    for (const auto& ref : array_field(groups[i], "members", where)) {
      const auto token = names.resolve(ref, where + ".members");
      actions.push_back([=](BotApiState& s) { s.add_member(token, id); });
    }
    for (const auto& ref : array_field(groups[i], "kicked", where)) {
      const auto token = names.resolve(ref, where + ".kicked");
      actions.push_back([=](BotApiState& s) { s.kick_bot(token, id); });
    }
    if (groups[i].contains("migrated_to")) {
      const auto to = int_field(groups[i], "migrated_to", where);
      if (to > -1000000000000) throw ScenarioError(where, "\"migrated_to\" is a supergroup id (-100...)");
      actions.push_back([=](BotApiState& s) { s.migrate_chat(id, to); });
    }
  }

  const auto& updates = array_field(scenario, "updates", "top level");
  for (std::size_t i = 0; i < updates.size(); ++i) {
    const auto where = fmt::format("updates[{}]", i);
    check_keys(updates[i], where, {"bot", "message", "callback_query", "update"});
    if (!updates[i].contains("bot")) throw ScenarioError(where, "\"bot\" is required");
    const auto token = names.resolve(updates[i]["bot"], where + ".bot");
    if (updates[i].contains("message")) {
      const auto& message = updates[i]["message"];
      check_keys(message, where + ".message", {"chat_id", "from", "text"});
      const auto chat_id = int_field(message, "chat_id", where + ".message");
      const auto from = message.contains("from") ? int_field(message, "from", where + ".message") : chat_id;
      if (from <= 0) throw ScenarioError(where + ".message", "\"from\" is a user id (needed in groups)");
      auto text = string_field(message, "text", where + ".message");
      actions.push_back([=](BotApiState& s) { s.push_message(token, chat_id, from, text); });
    } else if (updates[i].contains("callback_query")) {
      const auto& query = updates[i]["callback_query"];
      check_keys(query, where + ".callback_query", {"from", "data"});
      const auto from = int_field(query, "from", where + ".callback_query");
      auto data = string_field(query, "data", where + ".callback_query");
      actions.push_back([=](BotApiState& s) { s.push_callback_query(token, from, data); });
    } else if (updates[i].contains("update")) {
      if (!updates[i]["update"].is_object()) throw ScenarioError(where, "\"update\" must be an object");
      auto update = updates[i]["update"];
      actions.push_back([=](BotApiState& s) { s.push_update(token, update); });
    } else {
      throw ScenarioError(where, "one of \"message\", \"callback_query\" or \"update\" is required");
    }
  }

  const auto& faults = array_field(scenario, "faults", "top level");
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const auto where = fmt::format("faults[{}]", i);
    check_keys(faults[i], where, {"bot", "kind", "status", "delay_ms", "method", "times"});
    if (!faults[i].contains("bot")) throw ScenarioError(where, "\"bot\" is required");
    const auto token = names.resolve(faults[i]["bot"], where + ".bot");
    const auto fault = fault_from_json(faults[i], where);
    const auto times = faults[i].contains("times") ? int_field(faults[i], "times", where) : 1;
    if (times < 1) throw ScenarioError(where, "\"times\" must be at least 1");
    actions.push_back([=](BotApiState& s) { s.inject(token, fault, static_cast<int>(times)); });
  }

  for (const auto& action : actions) action(state);
}

}  // namespace floodgate::sim::detail
