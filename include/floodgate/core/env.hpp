// floodgate/core/env.hpp: configuration from the environment and `.env` files.
//
// The adapters read their credentials from here with the variable names bots
// and trading scripts already use: `bot_tokens_from` and `mtproto_apps_from`
// (telegram/credentials.hpp), `kite_keys_from` (kite/credentials.hpp).
//
// Values come from the process environment and, optionally, a `.env` file
// (`# comments`, `export KEY=value`, 'single' and "double" quotes, a
// `# comment` after a space or tab, a leading UTF-8 byte order mark); the
// process environment wins, as with python-dotenv. Gaps in the numbering are
// fine. A half-configured pair (an api_id without its hash) is an `EnvError`
// that names the variable; error messages never contain values.
//
//   auto env = floodgate::Environment::from_process();
//   env.load_dotenv(".env");
//   for (auto& c : floodgate::bot_tokens_from(env)) pool.add(std::move(c));
#pragma once

#include "floodgate/core/error.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate {

class EnvError : public Error {
 public:
  using Error::Error;
};

class Environment {
 public:
  /// Reads the process environment (at each `get`).
  static Environment from_process() {
    Environment env;
    env.use_process_ = true;
    return env;
  }

  /// A fixed set of values, for tests and for applications with their own config.
  static Environment from_values(std::map<std::string, std::string, std::less<>> values) {
    Environment env;
    env.file_values_ = std::move(values);
    return env;
  }

  /// Adds the variables of a .env file; values already present (from the
  /// process or an earlier file) win. Returns false if the file does not
  /// exist; throws `EnvError` (with the line number) for a malformed line.
  bool load_dotenv(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return false;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      // Editors on Windows start UTF-8 files with a byte order mark.
      if (number == 1 && line.starts_with(kUtf8Bom)) line.erase(0, kUtf8Bom.size());
      auto parsed = parse_line(line);
      if (!parsed) throw EnvError(fmt::format("{}:{}: expected KEY=value", path.string(), number));
      if (parsed->first.empty()) continue;  // blank or comment
      file_values_.try_emplace(std::move(parsed->first), std::move(parsed->second));
    }
    return true;
  }

  /// The value of `name`, if set and not empty.
  std::optional<std::string> get(std::string_view name) const {
    if (use_process_) {
      // floodgate only reads the environment; a program that calls setenv
      // while other threads read it has that race with or without floodgate.
      const char* v = std::getenv(std::string(name).c_str());
      if (v && *v) return std::string(v);
    }
    if (auto it = file_values_.find(name); it != file_values_.end() && !it->second.empty()) return it->second;
    return std::nullopt;
  }

  /// Parses one .env line into (key, value); ("", "") for a blank or comment
  /// line; nothing if the line is malformed.
  static std::optional<std::pair<std::string, std::string>> parse_line(std::string_view line) {
    line = trim(line);
    if (line.empty() || line.front() == '#') return std::pair<std::string, std::string>{};
    if (line.starts_with("export ")) line = trim(line.substr(7));
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const auto key = trim(line.substr(0, eq));
    if (!valid_name(key)) return std::nullopt;
    auto value = trim(line.substr(eq + 1));
    std::string out;
    if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
      const char quote = value.front();
      std::size_t i = 1;
      for (; i < value.size() && value[i] != quote; ++i) {
        if (quote == '"' && value[i] == '\\' && i + 1 < value.size()) {
          const char next = value[++i];
          out += next == 'n' ? '\n' : next;
        } else {
          out += value[i];
        }
      }
      if (i == value.size()) return std::nullopt;  // unterminated quote
      const auto rest = trim(value.substr(i + 1));
      if (!rest.empty() && rest.front() != '#') return std::nullopt;
    } else {
      // An unquoted value ends at a '#' after a blank (space or tab): an inline comment.
      for (std::size_t hash = value.find('#'); hash != std::string_view::npos; hash = value.find('#', hash + 1)) {
        if (hash > 0 && (value[hash - 1] == ' ' || value[hash - 1] == '\t')) {
          value = trim(value.substr(0, hash));
          break;
        }
      }
      out = std::string(value);
    }
    return std::pair{std::string(key), std::move(out)};
  }

 private:
  static constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

  static std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
  }
  static bool valid_name(std::string_view key) {
    if (key.empty() || std::isdigit(static_cast<unsigned char>(key.front()))) return false;
    for (char c : key) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    }
    return true;
  }

  bool use_process_ = false;
  std::map<std::string, std::string, std::less<>> file_values_;
};

/// Numbered variables go up to this suffix (MULTITOKEN10, TELEGRAM_API_ID_10, …).
inline constexpr int kMaxNumberedCredentials = 10;

}  // namespace floodgate
