// floodgate/net/fmt.hpp: {fmt} formatters for the net layer's values.
//
//   fmt::print("{}", endpoint);                    // "https://api.telegram.org:443"
//   fmt::print("{}", floodgate::net::errc::timeout);   // its message
//   fmt::print("{}", floodgate::net::HttpMethod::post); // "POST"
//   fmt::print("{}", http.stats());   // "connections_opened=2 connections_reused=9 requests=11 failures=0"
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
inline std::string http_stats_text(const HttpClientStats& s) {
  return fmt::format("connections_opened={} connections_reused={} requests={} failures={}", s.connections_opened,
                     s.connections_reused, s.requests, s.failures);
}
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
template <>
struct fmt::formatter<floodgate::net::HttpClientStats>
    : floodgate::detail::TextFormatter<floodgate::net::HttpClientStats, floodgate::net::detail::http_stats_text> {};
