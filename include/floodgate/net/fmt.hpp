// floodgate/net/fmt.hpp: {fmt} formatters for the net layer's values.
//
//   fmt::print("{}", endpoint);                    // "https://api.telegram.org:443"
//   fmt::print("{}", floodgate::net::errc::timeout);   // its message
//   fmt::print("{}", floodgate::net::HttpMethod::post); // "POST"
//
// `RequestTarget` formats itself, redacted (net/endpoint.hpp).
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/net/endpoint.hpp"
#include "floodgate/net/error.hpp"
#include "floodgate/net/http_client.hpp"

#include <fmt/format.h>

#include <string>

namespace floodgate::net::detail {
inline std::string endpoint_text(const Endpoint& endpoint) { return endpoint.to_string(); }
inline std::string errc_text(const errc& e) { return make_error_code(e).message(); }
inline const char* method_text(const HttpMethod& method) { return method == HttpMethod::get ? "GET" : "POST"; }
}  // namespace floodgate::net::detail

template <>
struct fmt::formatter<floodgate::net::Endpoint>
    : floodgate::detail::TextFormatter<floodgate::net::Endpoint, floodgate::net::detail::endpoint_text> {};
template <>
struct fmt::formatter<floodgate::net::errc>
    : floodgate::detail::TextFormatter<floodgate::net::errc, floodgate::net::detail::errc_text> {};
template <>
struct fmt::formatter<floodgate::net::HttpMethod>
    : floodgate::detail::TextFormatter<floodgate::net::HttpMethod, floodgate::net::detail::method_text> {};
