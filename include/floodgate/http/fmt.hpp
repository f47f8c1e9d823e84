// floodgate/http/fmt.hpp: {fmt} formatters for ApiKeyPool's values.
//
//   fmt::print("{}", KeyAuth::Style::bearer);        // "bearer"
//   fmt::print("{}", KeyAuth::header("x-api-key"));  // "header x-api-key"
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/http/api_key_pool.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace floodgate::http::detail {
inline std::string_view auth_style_text(const KeyAuth::Style& style) {
  switch (style) {
    case KeyAuth::Style::bearer: return "bearer";
    case KeyAuth::Style::header: return "header";
    case KeyAuth::Style::query: return "query";
  }
  return "?";
}
inline std::string key_auth_text(const KeyAuth& auth) {
  return auth.style == KeyAuth::Style::bearer ? std::string("bearer")
                                              : fmt::format("{} {}", auth_style_text(auth.style), auth.name);
}
}  // namespace floodgate::http::detail

template <>
struct fmt::formatter<floodgate::http::KeyAuth::Style>
    : floodgate::detail::TextFormatter<floodgate::http::KeyAuth::Style, floodgate::http::detail::auth_style_text> {};
template <>
struct fmt::formatter<floodgate::http::KeyAuth>
    : floodgate::detail::TextFormatter<floodgate::http::KeyAuth, floodgate::http::detail::key_auth_text> {};
