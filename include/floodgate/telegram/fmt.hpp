// floodgate/telegram/fmt.hpp: {fmt} formatters for the Telegram adapters'
// values and enums.
//
//   fmt::print("{}", MediaKind::photo);                  // "photo"
//   fmt::print("{}", MtprotoSession::State::ready);      // "ready"
//   fmt::print("{}", AuthStep::phone_number);            // "phone_number"
//   fmt::print("{}", PollState::cooling);                // "cooling"
//   fmt::print("{}", TdjsonLibrary::Interface::legacy);  // "legacy"
//   fmt::print("{}", status);   // BotPollStatus: "token-0 polling next_offset=42 requests=7 delivered=40 conflicts=0"
//   fmt::print("{}", stats);    // TdjsonClient::Stats: "received=12 malformed=0 unmatched=1 pending=2"
//   fmt::print("{}", BotToken{...});                     // the token redacted: "2402****"
//   fmt::print("{}", MtprotoApp{...});                   // "api_id=12345 api_hash=0123****"
//
// Secrets only ever print redacted (core/secret.hpp).
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/telegram/bot_api_client.hpp"
#include "floodgate/telegram/credentials.hpp"
#include "floodgate/telegram/mtproto_session.hpp"
#include "floodgate/telegram/tdjson_client.hpp"
#include "floodgate/telegram/tdjson_library.hpp"
#include "floodgate/telegram/update_poller.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace floodgate::telegram::detail {
inline std::string_view media_kind_text(const MediaKind& kind) { return to_string(kind); }
inline std::string_view session_state_text(const MtprotoSession::State& state) { return to_string(state); }
inline std::string_view auth_step_text(const AuthStep& step) { return to_string(step); }
inline std::string_view poll_state_text(const PollState& state) { return to_string(state); }
inline std::string_view interface_text(const TdjsonLibrary::Interface& interface) {
  return interface == TdjsonLibrary::Interface::client_id ? "client_id" : "legacy";
}
inline std::string poll_status_text(const BotPollStatus& s) {
  std::string text = fmt::format("{} {} next_offset={} requests={} delivered={} conflicts={}", s.token_id,
                                 to_string(s.state), s.next_offset, s.requests, s.delivered, s.conflicts);
  if (!s.description.empty()) text += fmt::format(" description=\"{}\"", s.description);
  return text;
}
inline std::string tdjson_stats_text(const TdjsonClient::Stats& s) {
  return fmt::format("received={} malformed={} unmatched={} pending={}", s.received, s.malformed, s.unmatched,
                     s.pending);
}
inline std::string credentials_text(const MtprotoCredentials& c) {
  return fmt::format("api_id={} api_hash={}", c.api_id, c.api_hash.redacted());
}
}  // namespace floodgate::telegram::detail

namespace floodgate::detail {
inline std::string bot_token_text(const BotToken& token) { return token.token.redacted(); }
inline std::string mtproto_app_text(const MtprotoApp& app) {
  return fmt::format("api_id={} api_hash={}", app.api_id, app.api_hash.redacted());
}
}  // namespace floodgate::detail

template <>
struct fmt::formatter<floodgate::telegram::MediaKind>
    : floodgate::detail::TextFormatter<floodgate::telegram::MediaKind, floodgate::telegram::detail::media_kind_text> {};
template <>
struct fmt::formatter<floodgate::telegram::MtprotoSession::State>
    : floodgate::detail::TextFormatter<floodgate::telegram::MtprotoSession::State,
                                       floodgate::telegram::detail::session_state_text> {};
template <>
struct fmt::formatter<floodgate::telegram::AuthStep>
    : floodgate::detail::TextFormatter<floodgate::telegram::AuthStep, floodgate::telegram::detail::auth_step_text> {};
template <>
struct fmt::formatter<floodgate::telegram::PollState>
    : floodgate::detail::TextFormatter<floodgate::telegram::PollState, floodgate::telegram::detail::poll_state_text> {};
template <>
struct fmt::formatter<floodgate::telegram::TdjsonLibrary::Interface>
    : floodgate::detail::TextFormatter<floodgate::telegram::TdjsonLibrary::Interface,
                                       floodgate::telegram::detail::interface_text> {};
template <>
struct fmt::formatter<floodgate::telegram::BotPollStatus>
    : floodgate::detail::TextFormatter<floodgate::telegram::BotPollStatus,
                                       floodgate::telegram::detail::poll_status_text> {};
template <>
struct fmt::formatter<floodgate::telegram::TdjsonClient::Stats>
    : floodgate::detail::TextFormatter<floodgate::telegram::TdjsonClient::Stats,
                                       floodgate::telegram::detail::tdjson_stats_text> {};
template <>
struct fmt::formatter<floodgate::telegram::MtprotoCredentials>
    : floodgate::detail::TextFormatter<floodgate::telegram::MtprotoCredentials,
                                       floodgate::telegram::detail::credentials_text> {};
template <>
struct fmt::formatter<floodgate::BotToken>
    : floodgate::detail::TextFormatter<floodgate::BotToken, floodgate::detail::bot_token_text> {};
template <>
struct fmt::formatter<floodgate::MtprotoApp>
    : floodgate::detail::TextFormatter<floodgate::MtprotoApp, floodgate::detail::mtproto_app_text> {};
