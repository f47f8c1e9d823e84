// floodgate/http/rate_limit_headers.hpp: what HTTP APIs say about waiting, as
// durations.
//
// Servers say "wait" in several dialects; each parser here returns how long
// from `now` (wall-clock time, the only clock dates can be compared with), or
// nothing when the text is not one it knows. Malformed values never throw.
//
//   Retry-After: 30                              RFC 9110: delay in seconds
//   Retry-After: Wed, 21 Oct 2026 07:28:00 GMT   RFC 9110: an HTTP-date
//   x-ratelimit-reset-requests: 1m30s            Go-style durations (OpenAI, Groq): 850ms, 6m0s, 2m59.56s
//   x-ratelimit-reset: 1767225600                epoch seconds (GitHub); a small number is a delay in seconds
//   anthropic-ratelimit-requests-reset: 2026-12-06T03:00:00Z    RFC 3339
//
// `announced_cooldown` reads the `*-remaining*` / `*-reset*` header families
// of a reply (x-ratelimit-, x-rate-limit-, ratelimit-, and any vendor prefix
// such as anthropic-ratelimit-, with or without a -requests / -tokens
// qualifier): when a remaining count is 0, the matching reset says how long
// the key must rest before it would be refused. A key can then be cooled
// *before* the server answers 429.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "floodgate/net/endpoint.hpp"

namespace floodgate::http {

using WallTime = std::chrono::system_clock::time_point;

/// "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate; RFC 850 and asctime forms too).
std::optional<WallTime> parse_http_date(std::string_view text);
/// "2026-12-06T03:00:00Z", "2026-12-06T03:00:00.25+01:00" (RFC 3339; 't'/'z' and a space separator accepted).
std::optional<WallTime> parse_rfc3339(std::string_view text);
/// "1m30s", "850ms", "2m59.56s", "1h", "6m0s", "20us": a sequence of number+unit (h, m, s, ms, us/µs, ns).
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text);

/// A Retry-After value: delay seconds or an HTTP-date (a date in the past is zero).
std::optional<std::chrono::nanoseconds> parse_retry_after(std::string_view value, WallTime now);

/// A rate-limit reset value in any of the forms above: a Go duration, an
/// RFC 3339 or HTTP date, or a number: epoch seconds when it is later than
/// 2001 (1e9), else a delay in seconds (fractions allowed).
std::optional<std::chrono::nanoseconds> parse_reset(std::string_view value, WallTime now);

/// The longest reset among the header families whose remaining count is 0
/// (nothing when none is exhausted, or no reset goes with it).
std::optional<std::chrono::nanoseconds> announced_cooldown(const net::HttpHeaders& headers, WallTime now);

}  // namespace floodgate::http
