// The Kite ticker's JSON text messages, built and read with nlohmann/json.
#include <floodgate/kite/messages.hpp>

#include <limits>

namespace floodgate::kite {
namespace {

using nlohmann::json;

json token_array(std::span<const std::uint32_t> tokens) {
  json array = json::array();
  array.get_ref<json::array_t&>().reserve(tokens.size());
  for (const std::uint32_t token : tokens) array.push_back(token);
  return array;
}

std::string request(std::string_view action, json value) {
  return json{{"a", action}, {"v", std::move(value)}}.dump();
}

// Parses without exceptions: malformed input, and input nested deeper than
// max_json_depth, yield a discarded value. nlohmann's parser itself is not
// recursive, but every later walk of the value is (dump(), comparisons,
// a user's visitor): a 200 KB `[[[[…` would overflow the stack there. The
// callback refuses to build anything below the limit; the parse then runs to
// the end of the text without growing the value, and the result is thrown away.
json parse_lenient(std::string_view text) {
  bool too_deep = false;
  const json::parser_callback_t limit_depth = [&too_deep](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= static_cast<int>(max_json_depth)) {
      too_deep = true;
      return false;
    }
    return !too_deep;
  };
  json parsed = json::parse(text.begin(), text.end(), limit_depth, /*allow_exceptions=*/false);
  return too_deep ? json(json::value_t::discarded) : parsed;
}

std::optional<std::vector<std::uint32_t>> read_tokens(const json& value) {
  if (!value.is_array()) return std::nullopt;
  std::vector<std::uint32_t> tokens;
  tokens.reserve(value.size());
  for (const json& item : value) {
    // Non-negative integers parse as number_unsigned; floats, negatives and
    // strings are not instrument tokens.
    if (!item.is_number_unsigned()) return std::nullopt;
    const auto token = item.get<std::uint64_t>();
    if (token > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
    tokens.push_back(static_cast<std::uint32_t>(token));
  }
  return tokens;
}

}  // namespace

std::string subscribe_message(std::span<const std::uint32_t> tokens) {
  return request("subscribe", token_array(tokens));
}

std::string unsubscribe_message(std::span<const std::uint32_t> tokens) {
  return request("unsubscribe", token_array(tokens));
}

std::string mode_message(Mode mode, std::span<const std::uint32_t> tokens) {
  return request("mode", json::array({to_string(mode), token_array(tokens)}));
}

std::optional<TextMessage> parse_text_message(std::string_view text) {
  json message = parse_lenient(text);
  if (!message.is_object()) return std::nullopt;  // also true for discarded values
  const auto type = message.find("type");
  if (type == message.end() || !type->is_string()) return std::nullopt;

  TextMessage result;
  result.type_name = type->get<std::string>();
  if (result.type_name == "order") {
    result.type = TextMessage::Type::order;
  } else if (result.type_name == "error") {
    result.type = TextMessage::Type::error;
  } else if (result.type_name == "message") {
    result.type = TextMessage::Type::message;
  }
  if (const auto data = message.find("data"); data != message.end()) result.data = std::move(*data);
  return result;
}

std::optional<Request> parse_request(std::string_view text) {
  const json message = parse_lenient(text);
  if (!message.is_object()) return std::nullopt;
  const auto action = message.find("a");
  const auto value = message.find("v");
  if (action == message.end() || !action->is_string() || value == message.end()) return std::nullopt;

  Request result;
  const auto& name = action->get_ref<const std::string&>();
  const json* tokens = &*value;
  if (name == "subscribe") {
    result.action = Request::Action::subscribe;
  } else if (name == "unsubscribe") {
    result.action = Request::Action::unsubscribe;
  } else if (name == "mode") {
    result.action = Request::Action::mode;
    if (!value->is_array() || value->size() != 2 || !(*value)[0].is_string()) return std::nullopt;
    const auto mode = parse_mode((*value)[0].get_ref<const std::string&>());
    if (!mode) return std::nullopt;
    result.mode = *mode;
    tokens = &(*value)[1];
  } else {
    return std::nullopt;
  }

  auto parsed = read_tokens(*tokens);
  if (!parsed) return std::nullopt;
  result.tokens = std::move(*parsed);
  return result;
}

}  // namespace floodgate::kite
