// floodgate/core/fmt.hpp: {fmt} formatters for the core's values and enums.
//
//   fmt::print("{}", floodgate::errc::all_credentials_cooling);  // "all credentials are cooling down"
//   fmt::print("{}", ec);                       // std::error_code: "floodgate:3" (category:value, as
//                                               // fmt 10's fmt/std.h and std::ostream print it)
//   fmt::print("{}", CredentialState::cooling); // "cooling"
//   fmt::print("{}", OutcomeKind::flood_wait);  // "flood_wait"
//   fmt::print("{}", CooldownScope::destination);  // "destination"
//   fmt::print("{}", LogLevel::warning);        // "warning"
//
// Also formattable, from their own headers: `Rate` ("30/s", core/rate.hpp),
// `Secret` (redacted: "2402****", core/secret.hpp), `HealthSnapshot`
// (core/format.hpp). Every formatter takes the string format spec (width,
// alignment: "{:>10}"). Light: the core's own headers and fmt/format.h only;
// floodgate/fmt.hpp gathers every area's formatters.
#pragma once

#include "floodgate/core/error.hpp"
#include "floodgate/core/health.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/core/outcome.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/core/secret.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <system_error>

namespace floodgate::detail {

/// Formats a value as the text `to_text(value)` gives, with the string format spec.
template <class T, auto to_text>
struct TextFormatter : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const T& value, FormatContext& ctx) const {
    const auto text = to_text(value);
    return fmt::formatter<std::string_view>::format(std::string_view(text), ctx);
  }
};

inline std::string errc_text(const errc& e) { return make_error_code(e).message(); }
inline const char* state_text(const CredentialState& s) { return to_string(s); }
inline const char* outcome_kind_text(const OutcomeKind& k) { return to_string(k); }
inline const char* scope_text(const CooldownScope& s) {
  return s == CooldownScope::credential ? "credential" : "destination";
}
inline const char* log_level_text(const LogLevel& l) { return level_name(l); }
inline std::string error_code_text(const std::error_code& ec) {
  return fmt::format("{}:{}", ec.category().name(), ec.value());
}

}  // namespace floodgate::detail

template <>
struct fmt::formatter<floodgate::errc> : floodgate::detail::TextFormatter<floodgate::errc, floodgate::detail::errc_text> {};
template <>
struct fmt::formatter<floodgate::CredentialState>
    : floodgate::detail::TextFormatter<floodgate::CredentialState, floodgate::detail::state_text> {};
template <>
struct fmt::formatter<floodgate::OutcomeKind>
    : floodgate::detail::TextFormatter<floodgate::OutcomeKind, floodgate::detail::outcome_kind_text> {};
template <>
struct fmt::formatter<floodgate::CooldownScope>
    : floodgate::detail::TextFormatter<floodgate::CooldownScope, floodgate::detail::scope_text> {};
template <>
struct fmt::formatter<floodgate::LogLevel>
    : floodgate::detail::TextFormatter<floodgate::LogLevel, floodgate::detail::log_level_text> {};

#if FMT_VERSION < 100000  // fmt 10's fmt/std.h has its own, with the same output
template <>
struct fmt::formatter<std::error_code>
    : floodgate::detail::TextFormatter<std::error_code, floodgate::detail::error_code_text> {};
#endif
