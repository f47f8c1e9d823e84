// floodgate/redis/fmt.hpp: {fmt} formatters for the Redis layer's values.
//
//   fmt::print("{}", floodgate::redis::errc::unavailable);   // its message
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/redis/error.hpp"

#include <fmt/format.h>

#include <string>

namespace floodgate::redis::detail {
inline std::string errc_text(const errc& e) { return make_error_code(e).message(); }
}  // namespace floodgate::redis::detail

template <>
struct fmt::formatter<floodgate::redis::errc>
    : floodgate::detail::TextFormatter<floodgate::redis::errc, floodgate::redis::detail::errc_text> {};
