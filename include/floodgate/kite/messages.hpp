// floodgate/kite/messages.hpp: the Kite ticker's JSON text messages.
//
// Clients steer the ticker with small JSON requests, an action `a` and a value
// `v`:
//
//   {"a":"subscribe","v":[408065,884737]}
//   {"a":"unsubscribe","v":[408065]}
//   {"a":"mode","v":["full",[408065]]}
//
// and the server sends text frames besides the binary ticks, each with a
// `type`: "order" (an order update in `data`), "error" (a message in `data`)
// and "message" (an informational text).
//
//   ws.write(floodgate::kite::subscribe_message(tokens));
//   if (auto msg = floodgate::kite::parse_text_message(text);
//       msg && msg->type == floodgate::kite::TextMessage::Type::error) { ... }
//
// All JSON goes through nlohmann/json; nothing here does I/O.
#pragma once

#include <floodgate/kite/tick.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::kite {

/// {"a":"subscribe","v":[tokens…]}. New subscriptions stream in quote mode.
std::string subscribe_message(std::span<const std::uint32_t> tokens);

/// {"a":"unsubscribe","v":[tokens…]}.
std::string unsubscribe_message(std::span<const std::uint32_t> tokens);

/// {"a":"mode","v":["ltp"|"quote"|"full",[tokens…]]}.
std::string mode_message(Mode mode, std::span<const std::uint32_t> tokens);

/// The deepest nesting of objects and arrays the parsers below accept from the
/// other side; deeper messages are refused as malformed (Kite's own messages
/// are a few levels deep).
inline constexpr std::size_t max_json_depth = 32;

/// A text frame sent by the server.
struct TextMessage {
  enum class Type {
    order,    ///< an order update; `data` is the order object
    error,    ///< the server reports an error; `data` is usually a string
    message,  ///< an informational message
    other,    ///< a `type` this library does not know; see `type_name`
  };

  Type type = Type::other;
  std::string type_name;  ///< the `type` field as sent
  nlohmann::json data;    ///< the `data` field (null when absent)
};

/// Parses a server text frame. nullopt when it is not a JSON object with a
/// string `type`, or nests deeper than max_json_depth; never throws on
/// malformed input.
std::optional<TextMessage> parse_text_message(std::string_view text);

/// A client request, as a server (the simulator) reads it.
struct Request {
  enum class Action { subscribe, unsubscribe, mode };

  Action action = Action::subscribe;
  Mode mode = Mode::quote;  ///< meaningful for Action::mode only
  std::vector<std::uint32_t> tokens;
};

/// Parses a client request built by the functions above (or by any other Kite
/// client). nullopt for anything else, including tokens that are not unsigned
/// 32-bit integers and JSON nested deeper than max_json_depth; never throws on
/// malformed input.
std::optional<Request> parse_request(std::string_view text);

}  // namespace floodgate::kite
