// floodgate/telegram/flood_errors.hpp: what a Telegram error means for the caller.
//
// Telegram reports "slow down" in several spellings, depending on the layer
// that produced it:
//
//   {"@type":"error","code":429,"message":"Too Many Requests: retry after 35"}   TDLib, Bot API
//   {"@type":"error","code":420,"message":"FLOOD_WAIT_35"}                       raw MTProto
//   {"@type":"error","code":420,"message":"FLOOD_PREMIUM_WAIT_35"}               raw MTProto
//   {"@type":"error","code":420,"message":"SLOWMODE_WAIT_35"}                    one chat only
//
// `classify_td_error` turns any of them, and the other error families, into
// the library's one vocabulary (core/outcome.hpp), keeping the code and text:
//
//   if (auto e = telegram::classify_td_response(reply)) lease.report(e->outcome());
//
//   FLOOD_WAIT_N, FLOOD_PREMIUM_WAIT_N, 420/429 "retry after N"  flood_wait, the whole credential
//   SLOWMODE_WAIT_N                                            flood_wait, the chat only
//   revoked/unregistered/banned names, 401                      auth_failed
//   other 4xx                                                  rejected (bad_request)
//   5xx, negative codes (Telegram's internal timeouts), other  maybe_applied: the server may have
//                                                              acted on the request before failing
//
// Waits are clamped to kMaxServerWait. Pure functions: no I/O, no allocation
// beyond the copied message.
#pragma once

#include "floodgate/core/outcome.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace floodgate::telegram {

/// One classified error. `message` is the server's text, unchanged.
struct TdError {
  OutcomeKind kind = OutcomeKind::maybe_applied;
  std::chrono::seconds retry_after{0};  ///< flood_wait only
  bool chat_scoped = false;  ///< the wait binds only the chat the request targeted (slow mode)
  int code = 0;
  std::string message;

  /// The error as an outcome; `has_chat`: the request targeted a chat, so a
  /// chat-scoped wait cools only that chat (otherwise the whole credential).
  template <class T = void>
  Outcome<T> outcome(bool has_chat = true) const {
    if (kind == OutcomeKind::flood_wait) {
      const auto scope = chat_scoped && has_chat ? CooldownScope::destination : CooldownScope::credential;
      return Outcome<T>::flood_wait(retry_after, scope, message);
    }
    if (kind == OutcomeKind::auth_failed) return Outcome<T>::auth_failed(message);
    if (kind == OutcomeKind::rejected) return Outcome<T>::rejected(message);
    return Outcome<T>::maybe_applied(message);
  }
};

namespace detail {

/// Parses the decimal number that makes up all of `digits` (no sign, no
/// spaces), saturating at kMaxServerWait; nullopt when empty or not a number.
inline std::optional<std::chrono::seconds> parse_seconds(std::string_view digits) {
  std::int64_t value = 0;
  const auto* end = digits.data() + digits.size();
  const auto [ptr, ec] = std::from_chars(digits.data(), end, value);
  if (digits.empty() || ptr != end) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return kMaxServerWait;  // all digits, too many of them
  if (ec != std::errc{} || value < 0) return std::nullopt;
  return clamp_server_wait(value);
}

/// Telegram's flood errors are "<PREFIX>_<N>". SLOWMODE binds one chat.
struct FloodPrefix {
  std::string_view prefix;
  bool chat_scoped;
};
inline constexpr std::array<FloodPrefix, 3> flood_prefixes{{
    {"FLOOD_WAIT_", false},
    {"FLOOD_PREMIUM_WAIT_", false},
    {"SLOWMODE_WAIT_", true},
}};

/// Errors that mean the credential (not the request) is unusable, whatever
/// code they arrive with: e.g. API_ID_INVALID comes as a 400.
inline constexpr std::array<std::string_view, 12> credential_errors{
    "AUTH_KEY_UNREGISTERED", "AUTH_KEY_INVALID",  "AUTH_KEY_DUPLICATED", "SESSION_REVOKED",
    "SESSION_EXPIRED",       "USER_DEACTIVATED",  "USER_DEACTIVATED_BAN", "ACCESS_TOKEN_INVALID",
    "ACCESS_TOKEN_EXPIRED",  "API_ID_INVALID",    "API_ID_PUBLISHED_FLOOD", "PHONE_NUMBER_BANNED",
};

}  // namespace detail

/// The N of "... retry after N" (Bot API descriptions and TDLib's 429
/// messages), or nullopt when the message does not say.
inline std::optional<std::chrono::seconds> parse_retry_after(std::string_view message) {
  constexpr std::string_view marker = "retry after ";
  const auto at = message.find(marker);
  if (at == std::string_view::npos) return std::nullopt;
  auto digits = message.substr(at + marker.size());
  digits = digits.substr(0, digits.find_first_not_of("0123456789"));
  return detail::parse_seconds(digits);
}

/// Classifies an error from its code and message.
inline TdError classify_td_error(int code, std::string_view message) {
  TdError error{OutcomeKind::maybe_applied, std::chrono::seconds{0}, false, code, std::string(message)};

  for (const auto& flood : detail::flood_prefixes) {
    if (message.starts_with(flood.prefix)) {
      if (auto seconds = detail::parse_seconds(message.substr(flood.prefix.size()))) {
        error.kind = OutcomeKind::flood_wait;
        error.retry_after = *seconds;
        error.chat_scoped = flood.chat_scoped;
        return error;
      }
    }
  }
  if (code == 429 || code == 420) {
    // A flood error whose wait we cannot read: the request was refused, so
    // not applied; back off, but do not guess a cooldown.
    error.kind = OutcomeKind::not_sent;
    if (auto seconds = parse_retry_after(message)) {
      error.kind = OutcomeKind::flood_wait;
      error.retry_after = *seconds;
    }
    return error;
  }
  for (auto name : detail::credential_errors) {
    if (message.find(name) != std::string_view::npos) {
      error.kind = OutcomeKind::auth_failed;
      return error;
    }
  }
  if (code == 401) {
    error.kind = OutcomeKind::auth_failed;
  } else if (code >= 400 && code < 500) {
    error.kind = OutcomeKind::rejected;
  }
  // 5xx, negative codes (Telegram's internal timeouts) and anything unknown
  // stay maybe_applied: the server may have acted before it failed.
  return error;
}

/// Classifies a TDLib reply: nullopt when it is not `{"@type":"error",...}`.
/// An error object with missing or mistyped fields is classified as maybe_applied.
inline std::optional<TdError> classify_td_response(const nlohmann::json& reply) {
  if (!reply.is_object()) return std::nullopt;
  const auto type = reply.find("@type");
  if (type == reply.end() || !type->is_string() || type->get_ref<const std::string&>() != "error") {
    return std::nullopt;
  }
  const auto code = reply.find("code");
  const auto message = reply.find("message");
  return classify_td_error(
      code != reply.end() && code->is_number_integer() ? code->get<int>() : 0,
      message != reply.end() && message->is_string() ? message->get_ref<const std::string&>()
                                                     : std::string_view{});
}

}  // namespace floodgate::telegram
