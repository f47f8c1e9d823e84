// floodgate/redis/fmt.hpp: {fmt} formatters for the Redis layer's values.
//
//   fmt::print("{}", floodgate::redis::errc::unavailable);   // its message
//   fmt::print("{}", FailurePolicy::fail_open);              // "fail_open"
//   fmt::print("{}", RedisReply::Type::status);              // "status"
//   fmt::print("{}", url);    // RedisUrl, password redacted: "redis://app:****@127.0.0.1:6379/0"
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/reply.hpp"
#include "floodgate/redis/url.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace floodgate::redis::detail {
inline std::string errc_text(const errc& e) { return make_error_code(e).message(); }
inline std::string_view failure_policy_text(const FailurePolicy& p) { return to_string(p); }
inline std::string_view reply_type_text(const RedisReply::Type& type) {
  switch (type) {
    case RedisReply::Type::nil: return "nil";
    case RedisReply::Type::integer: return "integer";
    case RedisReply::Type::string: return "string";
    case RedisReply::Type::status: return "status";
    case RedisReply::Type::error: return "error";
    case RedisReply::Type::array: return "array";
  }
  return "?";
}
inline std::string url_text(const RedisUrl& url) { return url.redacted(); }
}  // namespace floodgate::redis::detail

template <>
struct fmt::formatter<floodgate::redis::errc>
    : floodgate::detail::TextFormatter<floodgate::redis::errc, floodgate::redis::detail::errc_text> {};
template <>
struct fmt::formatter<floodgate::redis::FailurePolicy>
    : floodgate::detail::TextFormatter<floodgate::redis::FailurePolicy, floodgate::redis::detail::failure_policy_text> {};
template <>
struct fmt::formatter<floodgate::redis::RedisReply::Type>
    : floodgate::detail::TextFormatter<floodgate::redis::RedisReply::Type, floodgate::redis::detail::reply_type_text> {};
template <>
struct fmt::formatter<floodgate::redis::RedisUrl>
    : floodgate::detail::TextFormatter<floodgate::redis::RedisUrl, floodgate::redis::detail::url_text> {};
