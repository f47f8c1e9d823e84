#include "form_params.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

namespace floodgate::sim::detail {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Decodes %XX escapes, and '+' as a space in forms (not in paths).
std::optional<std::string> url_decode(std::string_view text, bool plus_is_space = true) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (text[i] == '%') {
      if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
        return std::nullopt;
      }
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The value of `key` among "type; key=value; key2="value"" parameters.
std::string header_parameter(std::string_view header, std::string_view key) {
  std::size_t pos = header.find(';');
  while (pos != std::string_view::npos) {
    const auto next = header.find(';', pos + 1);
    const auto item = trim(header.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1));
    const auto eq = item.find('=');
    if (eq != std::string_view::npos && iequals(trim(item.substr(0, eq)), key)) {
      auto value = trim(item.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      return std::string(value);
    }
    pos = next;
  }
  return {};
}

bool parse_json(std::string_view body, FormParams& params) {
  const auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return false;
  for (const auto& [key, value] : json.items()) {
    params[key].value = value.is_string() ? value.get<std::string>() : value.dump();
  }
  return true;
}

bool parse_multipart(std::string_view body, std::string_view boundary, FormParams& params) {
  if (boundary.empty()) return false;
  const std::string delimiter = "--" + std::string(boundary);
  const std::string next_delimiter = "\r\n" + delimiter;
  std::size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos) return false;
  pos += delimiter.size();
  for (;;) {
    if (body.substr(pos, 2) == "--") return true;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") return false;
    pos += 2;
    const auto headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) return false;
    const auto content_start = headers_end + 4;
    const auto content_end = body.find(next_delimiter, content_start);
    if (content_end == std::string_view::npos) return false;

    FormValue value;
    std::string name;
    for (auto headers = body.substr(pos, headers_end - pos); !headers.empty();) {
      const auto line_end = headers.find("\r\n");
      const auto line = headers.substr(0, line_end);
      headers = line_end == std::string_view::npos ? std::string_view{} : headers.substr(line_end + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) return false;
      const auto header_name = trim(line.substr(0, colon));
      const auto header_value = trim(line.substr(colon + 1));
      if (iequals(header_name, "Content-Disposition")) {
        name = header_parameter(header_value, "name");
        value.filename = header_parameter(header_value, "filename");
        value.is_file = header_value.find("filename=") != std::string_view::npos;
      } else if (iequals(header_name, "Content-Type")) {
        value.content_type = std::string(header_value);
      }
    }
    if (name.empty()) return false;
    value.value = std::string(body.substr(content_start, content_end - content_start));
    params[name] = std::move(value);
    pos = content_end + next_delimiter.size();
  }
}

}  // namespace

std::optional<std::string> percent_decode_path(std::string_view path) { return url_decode(path, false); }

bool parse_urlencoded(std::string_view text, FormParams& params) {
  while (!text.empty()) {
    const auto amp = text.find('&');
    const auto pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq));
    auto value = url_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    if (!key || !value) return false;
    params[*key].value = std::move(*value);
  }
  return true;
}

bool parse_body(std::string_view content_type, std::string_view body, FormParams& params) {
  const auto media_type = trim(content_type.substr(0, content_type.find(';')));
  if (body.empty()) return true;
  if (iequals(media_type, "application/json")) return parse_json(body, params);
  if (iequals(media_type, "application/x-www-form-urlencoded")) return parse_urlencoded(body, params);
  if (iequals(media_type, "multipart/form-data")) {
    return parse_multipart(body, header_parameter(content_type, "boundary"), params);
  }
  return false;
}

}  // namespace floodgate::sim::detail
