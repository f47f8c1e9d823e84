// floodgate/core/env.hpp: credentials from the environment, with the variable
// names bots and trading scripts already use.
//
//   Telegram Bot API   TELEGRAM_BOT_TOKEN, MULTITOKEN1 … MULTITOKEN10
//                      ids "token-0" (TELEGRAM_BOT_TOKEN), "token-1" …
//   Telegram MTProto   TELEGRAM_API_ID + TELEGRAM_API_HASH, then _2 … _10
//                      ids "account1", "account2" …
//   Kite ticker        KITE_API_KEY_N + KITE_ACCESS_TOKEN_N, N = 1 … 10
//                      (KITE_API_KEY + KITE_ACCESS_TOKEN count as N = 1)
//                      ids "API-1", "API-2" …
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

#include "floodgate/core/credential.hpp"
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
      const char* v = std::getenv(std::string(name).c_str());  // NOLINT(concurrency-mt-unsafe)
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

/// Bot tokens: TELEGRAM_BOT_TOKEN ("token-0") and MULTITOKEN1..10 ("token-N").
/// The same token under two names is an error naming both variables.
inline std::vector<Credential<BotToken>> bot_tokens_from(const Environment& env) {
  std::vector<Credential<BotToken>> out;
  std::vector<std::string> names;
  auto take = [&](const std::string& name, std::string id) {
    auto value = env.get(name);
    if (!value) return;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i].payload.token.reveal() == *value) {
        throw EnvError(fmt::format("{} repeats the token already given in {}", name, names[i]));
      }
    }
    out.push_back({std::move(id), {Secret(std::move(*value))}});
    names.push_back(name);
  };
  take("TELEGRAM_BOT_TOKEN", "token-0");
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) take(fmt::format("MULTITOKEN{}", n), fmt::format("token-{}", n));
  return out;
}

/// MTProto apps: TELEGRAM_API_ID/TELEGRAM_API_HASH ("account1"), then the
/// `_2` … `_10` pairs ("account2" …).
inline std::vector<Credential<MtprotoApp>> mtproto_apps_from(const Environment& env) {
  std::vector<Credential<MtprotoApp>> out;
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) {
    const std::string suffix = n == 1 ? "" : fmt::format("_{}", n);
    const std::string id_name = "TELEGRAM_API_ID" + suffix, hash_name = "TELEGRAM_API_HASH" + suffix;
    auto api_id = env.get(id_name);
    auto api_hash = env.get(hash_name);
    if (!api_id && !api_hash) continue;
    if (!api_hash) throw EnvError(fmt::format("{} is missing ({} is set)", hash_name, id_name));
    if (!api_id) throw EnvError(fmt::format("{} is missing ({} is set)", id_name, hash_name));
    std::int64_t number = 0;
    const auto [end, ec] = std::from_chars(api_id->data(), api_id->data() + api_id->size(), number);
    if (ec != std::errc{} || end != api_id->data() + api_id->size() || number <= 0) {
      throw EnvError(fmt::format("{} must be a positive integer", id_name));
    }
    out.push_back({fmt::format("account{}", n), {number, Secret(std::move(*api_hash))}});
  }
  return out;
}

/// Kite keys: KITE_API_KEY_N/KITE_ACCESS_TOKEN_N ("API-N"), N = 1 … 10;
/// unnumbered KITE_API_KEY/KITE_ACCESS_TOKEN stand for N = 1.
inline std::vector<Credential<KiteKey>> kite_keys_from(const Environment& env) {
  std::vector<Credential<KiteKey>> out;
  for (int n = 1; n <= kMaxNumberedCredentials; ++n) {
    std::string key_name = fmt::format("KITE_API_KEY_{}", n), token_name = fmt::format("KITE_ACCESS_TOKEN_{}", n);
    auto key = env.get(key_name);
    auto token = env.get(token_name);
    if (n == 1 && !key && !token) {
      key_name = "KITE_API_KEY";
      token_name = "KITE_ACCESS_TOKEN";
      key = env.get(key_name);
      token = env.get(token_name);
    }
    if (!key && !token) continue;
    if (!token) throw EnvError(fmt::format("{} is missing ({} is set)", token_name, key_name));
    if (!key) throw EnvError(fmt::format("{} is missing ({} is set)", key_name, token_name));
    out.push_back({fmt::format("API-{}", n), {Secret(std::move(*key)), Secret(std::move(*token))}});
  }
  return out;
}

}  // namespace floodgate
