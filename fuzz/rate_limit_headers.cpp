// libFuzzer target for the HTTP rate-limit headers (http/rate_limit_headers.hpp)
// and the classification of a reply that carries them (http/classify.hpp).
// Input: two bytes pick the HTTP status, then header lines "name: value"
// separated by '\n' up to an empty line, then the body. Every header value
// also goes through each parser on its own.
//
// Beyond "no crash": every wait a parser returns is within [0, kMaxServerWait]
// (saturated, never wrapped or negative); a Retry-After of plain digits is
// exactly that many seconds (clamped); a date parses to a time that a Retry-After
// of it turns into a wait, never a negative one; the reply's verdict waits no
// longer than kMaxServerWait either.
#include "floodgate/core/outcome.hpp"
#include "floodgate/http/classify.hpp"
#include "floodgate/http/rate_limit_headers.hpp"

#include "fuzz_support.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace http = floodgate::http;
using std::chrono::nanoseconds;

namespace {

// A fixed "now" (2026-12-06T05:00:00Z), so a run is reproducible.
const http::WallTime kNow{std::chrono::seconds(1796533200)};

bool in_range(const std::optional<nanoseconds>& wait) {
  return !wait || (*wait >= nanoseconds::zero() && *wait <= floodgate::kMaxServerWait);
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void check_value(std::string_view value) {
  const auto retry_after = http::parse_retry_after(value, kNow);
  FUZZ_REQUIRE(in_range(retry_after));
  if (all_digits(value)) {
    // Delay seconds: exactly that many, saturating at the maximum.
    FUZZ_REQUIRE(retry_after.has_value());
    const std::string_view significant = value.substr(std::min(value.find_first_not_of('0'), value.size()));
    const bool huge = significant.size() > 12;  // more than 366 days of seconds whatever the digits
    if (!huge) {
      const auto seconds = std::stoll(std::string(significant.empty() ? "0" : significant));
      // Compared in seconds: 10^10 s would overflow as nanoseconds.
      FUZZ_REQUIRE(*retry_after == (seconds >= floodgate::kMaxServerWait.count() ? floodgate::kMaxServerWait
                                                                                : std::chrono::seconds(seconds)));
    } else {
      FUZZ_REQUIRE(*retry_after == floodgate::kMaxServerWait);
    }
  }
  FUZZ_REQUIRE(in_range(http::parse_reset(value, kNow)));
  const auto go = http::parse_go_duration(value);
  if (go) FUZZ_REQUIRE(*go >= nanoseconds::zero());
  if (const auto date = http::parse_http_date(value)) {
    // A date a server sends as Retry-After is a wait until then: never negative, never past the maximum.
    FUZZ_REQUIRE(in_range(http::parse_retry_after(value, kNow)));
  }
  (void)http::parse_rfc3339(value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  floodgate::net::HttpResponse response;
  response.status = 100 + (data[0] << 8 | data[1]) % 500;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (line.empty()) break;  // the body follows
    const auto colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    check_value(value);
    response.headers.emplace_back(name, value);
  }
  response.body = rest;
  response.body_bytes = rest.size();

  FUZZ_REQUIRE(in_range(http::announced_cooldown(response.headers, kNow)));
  const http::Verdict verdict = http::classify_reply(response, kNow);
  FUZZ_REQUIRE(verdict.outcome.wait() >= nanoseconds::zero());
  FUZZ_REQUIRE(verdict.outcome.wait() <= floodgate::kMaxServerWait);
  FUZZ_REQUIRE(in_range(verdict.rest));
  return 0;
}
