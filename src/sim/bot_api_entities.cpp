#include "bot_api_entities.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

namespace floodgate::sim::detail {
namespace {

constexpr std::string_view kParseError = "Bad Request: can't parse entities: ";

FormattedText failed(const std::string& message) { return {{}, std::string(kParseError) + message}; }

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Appends the UTF-8 encoding of `code_point`.
void append_utf8(std::string& out, unsigned code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

// Decodes the HTML entity at text[i] == '&' into `out`; returns the bytes it
// used, or 0 when it is not an entity Telegram knows (then '&' is plain text).
std::size_t decode_html_entity(std::string_view text, std::size_t i, std::string& out) {
  const auto semicolon = text.find(';', i);
  if (semicolon == std::string_view::npos || semicolon - i > 12) return 0;
  const auto name = text.substr(i + 1, semicolon - i - 1);
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 4> named{
      {{"lt", "<"}, {"gt", ">"}, {"amp", "&"}, {"quot", "\""}}};
  for (const auto& [entity, value] : named) {
    if (name == entity) {
      out += value;
      return semicolon - i + 1;
    }
  }
  if (name.size() < 2 || name[0] != '#') return 0;
  const bool hex = name[1] == 'x' || name[1] == 'X';
  const auto digits = name.substr(hex ? 2 : 1);
  if (digits.empty()) return 0;
  unsigned code_point = 0;
  for (const char c : digits) {
    if (hex ? !std::isxdigit(static_cast<unsigned char>(c)) : !std::isdigit(static_cast<unsigned char>(c))) return 0;
    code_point = code_point * (hex ? 16 : 10) +
                 static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10);
    if (code_point > 0x10FFFF) return 0;
  }
  append_utf8(out, code_point);
  return semicolon - i + 1;
}

bool is_tag_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

// Telegram's HTML: a fixed set of tags, properly nested; attributes are read
// but only their syntax is checked.
FormattedText parse_html(std::string_view text) {
  static constexpr std::array<std::string_view, 17> kTags{"a",    "b",   "strong", "i",   "em",         "s",
                                                          "strike", "del", "u",      "ins", "tg-spoiler", "tg-emoji",
                                                          "span", "code", "pre",    "blockquote", "tg-time"};
  std::vector<std::string> open;
  std::string plain;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '&') {
      const auto used = decode_html_entity(text, i, plain);
      if (used == 0) {
        plain += c;
      } else {
        i += used - 1;
      }
      continue;
    }
    if (c != '<') {
      plain += c;
      continue;
    }
    const auto begin = i;
    if (i + 1 < text.size() && text[i + 1] == '/') {  // an end tag
      if (open.empty()) return failed(fmt::format("Unexpected end tag at byte offset {}", begin));
      i += 2;
      const auto name_begin = i;
      while (i < text.size() && text[i] != '>' && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      const auto name = lower(text.substr(name_begin, i - name_begin));
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= text.size() || text[i] != '>') return failed(fmt::format("Unclosed end tag at byte offset {}", begin));
      if (!name.empty() && name != open.back()) {
        return failed(fmt::format("Unmatched end tag at byte offset {}, expected \"</{}>\", found \"</{}>\"", begin,
                                  open.back(), name));
      }
      open.pop_back();
      continue;
    }
    ++i;
    const auto name_begin = i;
    while (i < text.size() && is_tag_name_char(text[i])) ++i;
    if (i >= text.size()) return failed(fmt::format("Unclosed start tag at byte offset {}", begin));
    const auto name = lower(text.substr(name_begin, i - name_begin));
    if (std::find(kTags.begin(), kTags.end(), name) == kTags.end()) {
      return failed(fmt::format("Unsupported start tag \"{}\" at byte offset {}", name, begin));
    }
    // Attributes: name="value", name='value', name=value or a bare name, up to '>'.
    char quote = 0;
    while (i < text.size() && (quote != 0 || text[i] != '>')) {
      if (quote != 0 && text[i] == quote) {
        quote = 0;
      } else if (quote == 0 && (text[i] == '"' || text[i] == '\'')) {
        quote = text[i];
      }
      ++i;
    }
    if (i >= text.size()) return failed(fmt::format("Unclosed start tag \"{}\" at byte offset {}", name, begin));
    open.push_back(name);
  }
  if (!open.empty()) {
    return failed(fmt::format("Can't find end tag corresponding to start tag \"{}\"", open.back()));
  }
  return {std::move(plain), {}};
}

// Telegram's MarkdownV2: nested *bold*, _italic_, __underline__, ~strike~,
// ||spoiler||, `code`, ```pre```, [text](url); every other reserved
// character must be escaped with '\'.
FormattedText parse_markdown_v2(std::string_view text) {
  struct Open {
    std::string_view type;
    std::size_t offset;
  };
  std::vector<Open> open;
  std::string plain;
  const auto reserved = [](char c) { return fmt::format("Character '{}' is reserved and must be escaped with the preceding '\\'", c); };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 127) {
      plain += text[++i];
      continue;
    }
    if (c == '`') {  // code and pre: no markup inside, only \` and \\ escapes
      const bool pre = text.substr(i, 3) == "```";
      const auto start = i;
      i += pre ? 3 : 1;
      const std::string_view end = pre ? "```" : "`";
      for (;; ++i) {
        if (i >= text.size()) {
          return failed(fmt::format("Can't find end of {} entity at byte offset {}", pre ? "Pre" : "Code", start));
        }
        if (text[i] == '\\' && i + 1 < text.size()) {
          plain += text[++i];
        } else if (text.substr(i, end.size()) == end) {
          i += end.size() - 1;
          break;
        } else {
          plain += text[i];
        }
      }
      continue;
    }
    std::string_view type;
    std::size_t width = 1;
    switch (c) {
      case '*': type = "Bold"; break;
      case '~': type = "Strikethrough"; break;
      case '_':
        if (text.substr(i, 2) == "__") {
          type = "Underline";
          width = 2;
        } else {
          type = "Italic";
        }
        break;
      case '|':
        if (text.substr(i, 2) != "||") return failed(reserved(c));
        type = "Spoiler";
        width = 2;
        break;
      case '[': type = "TextUrl"; break;
      case ']': {
        if (open.empty() || open.back().type != "TextUrl") return failed(reserved(c));
        if (i + 1 < text.size() && text[i + 1] == '(') {
          const auto url_begin = i + 2;
          const auto close = text.find(')', url_begin);
          if (close == std::string_view::npos) {
            return failed(fmt::format("Can't find end of a URL at byte offset {}", url_begin));
          }
          i = close;
        }
        open.pop_back();
        continue;
      }
      case '(': case ')': case '>': case '#': case '+': case '-': case '=': case '{': case '}': case '.': case '!':
        if (c == '>' && (i == 0 || text[i - 1] == '\n')) continue;  // a block quote line
        return failed(reserved(c));
      default:
        plain += c;
        continue;
    }
    if (type != "TextUrl" && !open.empty() && open.back().type == type) {
      open.pop_back();
    } else {
      open.push_back({type, i});
    }
    i += width - 1;
  }
  if (!open.empty()) {
    return failed(fmt::format("Can't find end of {} entity at byte offset {}", open.back().type, open.back().offset));
  }
  return {std::move(plain), {}};
}

// The legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url), not nested.
FormattedText parse_markdown(std::string_view text) {
  std::string plain;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    std::string_view end;
    switch (c) {
      case '*': end = "*"; break;
      case '_': end = "_"; break;
      case '`': end = text.substr(i, 3) == "```" ? "```" : "`"; break;
      case '[': end = "]"; break;
      default:
        plain += c;
        continue;
    }
    const auto start = i;
    const auto close = text.find(end, i + end.size());
    if (close == std::string_view::npos) {
      return failed(fmt::format("Can't find end of the entity starting at byte offset {}", start));
    }
    plain += text.substr(i + end.size(), close - i - end.size());
    i = close + end.size() - 1;
    if (c == '[' && i + 1 < text.size() && text[i + 1] == '(') {
      const auto url_end = text.find(')', i + 2);
      if (url_end == std::string_view::npos) {
        return failed(fmt::format("Can't find end of the entity starting at byte offset {}", start));
      }
      i = url_end;
    }
  }
  return {std::move(plain), {}};
}

}  // namespace

FormattedText parse_formatted_text(std::string_view text, std::string_view parse_mode) {
  const auto mode = lower(parse_mode);
  if (mode.empty()) return {std::string(text), {}};
  if (mode == "html") return parse_html(text);
  if (mode == "markdownv2") return parse_markdown_v2(text);
  if (mode == "markdown") return parse_markdown(text);
  return {{}, "Bad Request: unsupported parse_mode"};
}

std::size_t utf16_length(std::string_view utf8) {
  std::size_t units = 0;
  for (const char c : utf8) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte & 0xC0) != 0x80) ++units;  // a character starts here
    if ((byte & 0xF8) == 0xF0) ++units;  // four bytes: outside the BMP, a surrogate pair
  }
  return units;
}

}  // namespace floodgate::sim::detail
