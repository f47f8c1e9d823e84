// Private to floodgate_sim: how Telegram reads a message's formatting
// (parse_mode HTML, MarkdownV2 or Markdown) and measures its length, so the
// simulator refuses what Telegram refuses, with TDLib's error texts.
// Pure functions, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace floodgate::sim::detail {

struct FormattedText {
  std::string plain;  ///< the text as shown, markup removed and entities decoded
  std::string error;  ///< set when the markup is malformed: the full Bot API description
};

/// Parses `text` with `parse_mode` ("", "HTML", "MarkdownV2", "Markdown"; any
/// case). On malformed markup, `error` is e.g. "Bad Request: can't parse
/// entities: Unsupported start tag \"foo\" at byte offset 0".
FormattedText parse_formatted_text(std::string_view text, std::string_view parse_mode);

/// The length Telegram's limits count: UTF-16 code units.
std::size_t utf16_length(std::string_view utf8);

}  // namespace floodgate::sim::detail
