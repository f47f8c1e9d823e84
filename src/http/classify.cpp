#include "floodgate/http/classify.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

namespace floodgate::http {

namespace {

constexpr std::size_t kMaxMessage = 300;

bool contains_ci(std::string_view haystack, std::string_view lowercase_needle) {
  return std::search(haystack.begin(), haystack.end(), lowercase_needle.begin(), lowercase_needle.end(),
                     [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }) !=
         haystack.end();
}

bool is_json(const net::HttpResponse& response) { return contains_ci(response.header("Content-Type"), "json"); }

/// Printable, single-line, at most kMaxMessage characters.
std::string clip(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, kMaxMessage)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  if (text.size() > kMaxMessage) out += "...";
  return out;
}

const nlohmann::json* string_field(const nlohmann::json& json, const char* name) {
  const auto it = json.find(name);
  return it != json.end() && it->is_string() ? &*it : nullptr;
}

/// When the server says to come back: Retry-After, else the rate-limit reset headers.
std::optional<std::chrono::nanoseconds> server_wait(const net::HttpResponse& response, WallTime now) {
  if (const auto value = response.header("Retry-After"); !value.empty()) {
    if (auto wait = parse_retry_after(value, now)) return wait;
  }
  return announced_cooldown(response.headers, now);
}

}  // namespace

std::string provider_message(int status, const nlohmann::json& json, std::string_view body) {
  std::string words;
  if (json.is_object()) {
    if (const auto error = json.find("error"); error != json.end()) {
      if (error->is_string()) words = error->get<std::string>();
      else if (error->is_object()) {
        if (const auto* message = string_field(*error, "message")) words = message->get<std::string>();
      }
    }
    for (const char* name : {"message", "detail", "description", "error_description"}) {
      if (!words.empty()) break;
      if (const auto* field = string_field(json, name)) words = field->get<std::string>();
    }
    if (words.empty()) {
      if (const auto detail = json.find("detail"); detail != json.end() && !detail->is_null()) words = detail->dump();
    }
  }
  if (words.empty()) words = std::string(body);
  words = clip(words);
  return words.empty() ? fmt::format("HTTP {}", status) : fmt::format("HTTP {}: {}", status, words);
}

bool says_quota_exhausted(std::string_view body) {
  static constexpr std::array kPhrases = {
      std::string_view("insufficient_quota"), std::string_view("quota_exceeded"), std::string_view("quota exceeded"),
      std::string_view("exceeded your current quota"), std::string_view("quota exhausted"),
      std::string_view("quota_exhausted"), std::string_view("billing"), std::string_view("credit balance"),
      std::string_view("out of credits"), std::string_view("insufficient credits"),
      std::string_view("insufficient_credits"), std::string_view("payment required")};
  return std::any_of(kPhrases.begin(), kPhrases.end(), [&](std::string_view p) { return contains_ci(body, p); });
}

std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  const std::string hidden = fmt::format("{}", Secret(std::string(secret)));
  for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + hidden.size())) {
    text.replace(at, secret.size(), hidden);
  }
  return text;
}

Verdict classify_reply(const net::HttpResponse& response, WallTime now, const ClassifyOptions& options) {
  const int status = response.status;
  nlohmann::json json;
  bool unreadable = false;
  if (is_json(response) && !response.body.empty()) {
    json = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) {
      json = nullptr;
      unreadable = true;
    }
  }
  auto verdict = [&](Outcome<> outcome) { return Verdict{std::move(outcome), false, std::nullopt, std::move(json)}; };

  if (status >= 200 && status < 300) {
    if (unreadable) return verdict(Outcome<>::maybe_applied(fmt::format("HTTP {} with a body that is not valid JSON", status)));
    auto result = verdict(Outcome<>::success());
    result.rest = announced_cooldown(response.headers, now);
    return result;
  }
  const std::string message = provider_message(status, json, response.body);
  const bool quota = (status == 402 || status == 429 || status == 403) && says_quota_exhausted(response.body);
  if (status == 402 || quota) {
    auto result = verdict(Outcome<>::flood_wait(server_wait(response, now).value_or(options.quota_wait),
                                                CooldownScope::credential, "quota exhausted: " + message));
    result.quota_exhausted = true;
    return result;
  }
  if (status == 429) {
    return verdict(Outcome<>::flood_wait(server_wait(response, now).value_or(options.default_wait),
                                         CooldownScope::credential, message));
  }
  if (status == 401 || status == 403) return verdict(Outcome<>::auth_failed(message));
  if (status == 503 || status == 529) {  // overloaded: the request was not processed
    if (const auto value = response.header("Retry-After"); !value.empty()) {
      if (const auto wait = parse_retry_after(value, now)) {
        return verdict(Outcome<>::flood_wait(*wait, CooldownScope::credential, message));
      }
    }
    return verdict(Outcome<>::not_sent(message));
  }
  if (status == 408) return verdict(Outcome<>::not_sent(message));  // the server gave up reading the request
  if (status >= 500) return verdict(Outcome<>::maybe_applied(message));
  return verdict(Outcome<>::rejected(message));
}

}  // namespace floodgate::http
