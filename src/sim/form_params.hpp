// Private to floodgate_sim: decoding Bot API request parameters, which may
// arrive as a query string, an urlencoded form, a JSON object or
// multipart/form-data (with files). Pure functions, no I/O.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace floodgate::sim::detail {

struct FormValue {
  std::string value;         ///< the text, or the file's bytes
  std::string filename;      ///< set for uploaded files
  std::string content_type;  ///< as sent with an uploaded file
  bool is_file = false;
};

using FormParams = std::map<std::string, FormValue, std::less<>>;

/// Adds "a=1&b=x%20y" pairs. Returns false on a malformed escape.
bool parse_urlencoded(std::string_view text, FormParams& params);

/// Decodes %XX escapes in a URL path ('+' stays '+'); nullopt on a malformed escape.
std::optional<std::string> percent_decode_path(std::string_view path);

/// Adds the parameters of a request body according to its Content-Type
/// (JSON: non-string values keep their JSON text, as Telegram accepts both).
/// Returns false when the body does not match its type.
bool parse_body(std::string_view content_type, std::string_view body, FormParams& params);

}  // namespace floodgate::sim::detail
