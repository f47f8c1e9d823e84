// Reading waits out of HTTP answers (http/rate_limit_headers.hpp) and the
// classification table (http/classify.hpp), without I/O: every row of the
// table in docs/http-api-keys.md with a synthetic answer.
#include <catch2/catch.hpp>

#include "floodgate/http/classify.hpp"
#include "floodgate/http/rate_limit_headers.hpp"

using namespace floodgate;
using namespace floodgate::http;
using namespace std::chrono_literals;

namespace {

/// 2026-12-06T03:00:00Z
const WallTime kNow = std::chrono::sys_days{std::chrono::year{2026} / 12 / 6} + 3h;

net::HttpResponse reply(int status, std::string body, net::HttpHeaders headers = {}) {
  net::HttpResponse response;
  response.status = status;
  response.headers = std::move(headers);
  response.headers.emplace_back("Content-Type", "application/json");
  response.body = std::move(body);
  return response;
}

}  // namespace

TEST_CASE("HTTP dates in their three forms are read with the standard calendar") {
  const WallTime expected = std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 37s;
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == expected);
  CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == expected);
  CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == expected);
  CHECK(parse_http_date("Sun, 29 Feb 2026 08:49:37 GMT") == std::nullopt);  // 2026 is not a leap year
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37") == std::nullopt);      // no zone
  CHECK(parse_http_date("yesterday") == std::nullopt);
  CHECK(parse_http_date("") == std::nullopt);
}

TEST_CASE("RFC 3339 times with fractions and offsets") {
  CHECK(parse_rfc3339("2026-12-06T03:00:00Z") == kNow);
  CHECK(parse_rfc3339("2026-12-06t03:00:00z") == kNow);
  CHECK(parse_rfc3339("2026-12-06 04:30:00+01:30") == kNow);
  CHECK(parse_rfc3339("2026-12-05T22:00:00-05:00") == kNow);
  CHECK(parse_rfc3339("2026-12-06T03:00:00.25Z") == kNow + 250ms);
  CHECK(parse_rfc3339("2026-12-06T03:00:00") == std::nullopt);  // no offset
  CHECK(parse_rfc3339("2026-13-06T03:00:00Z") == std::nullopt);
  CHECK(parse_rfc3339("2026-12-6T03:00:00Z") == std::nullopt);
  CHECK(parse_rfc3339("2026-12-06T03:00:00+1:00") == std::nullopt);
}

TEST_CASE("Go-style durations of rate-limit reset headers") {
  CHECK(parse_go_duration("1m30s") == 90s);
  CHECK(parse_go_duration("850ms") == 850ms);
  CHECK(parse_go_duration("2m59.56s") == 179560ms);
  CHECK(parse_go_duration("6m0s") == 6min);
  CHECK(parse_go_duration("1h") == 1h);
  CHECK(parse_go_duration("20us") == 20us);
  CHECK(parse_go_duration("0") == 0s);
  CHECK(parse_go_duration("5") == std::nullopt);  // a unit is required
  CHECK(parse_go_duration("1x") == std::nullopt);
  CHECK(parse_go_duration("s") == std::nullopt);
  CHECK(parse_go_duration("-1s") == std::nullopt);
}

TEST_CASE("Retry-After is delay seconds or an HTTP date") {
  CHECK(parse_retry_after("30", kNow) == 30s);
  CHECK(parse_retry_after(" 0 ", kNow) == 0s);
  CHECK(parse_retry_after("Sun, 06 Dec 2026 03:00:42 GMT", kNow) == 42s);
  CHECK(parse_retry_after("Sun, 06 Dec 2026 02:00:00 GMT", kNow) == 0s);  // in the past
  CHECK(parse_retry_after("99999999999999999999999", kNow) == kMaxServerWait);
  CHECK(parse_retry_after("1.5", kNow) == std::nullopt);  // not RFC 9110
  CHECK(parse_retry_after("soon", kNow) == std::nullopt);
}

TEST_CASE("Dates past 2261 or before 1678 saturate instead of overflowing the clock") {
  // Found by fuzz_rate_limit_headers: a date after 2262 overflowed the
  // nanosecond WallTime (UBSan: signed overflow) and wrapped to the past.
  CHECK(parse_retry_after("Wed, 21 Oct 2326 07:28:00 GMT", kNow) == kMaxServerWait);
  CHECK(parse_reset("9999-12-31T23:59:59.5-23:59", kNow) == kMaxServerWait);
  CHECK(parse_reset("Mon, 01 Jan 0001 00:00:00 GMT", kNow) == 0s);
  const auto far = parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT");
  REQUIRE(far.has_value());
  CHECK(*far > kNow);
  const auto early = parse_rfc3339("0001-01-01T00:00:00+23:00");
  REQUIRE(early.has_value());
  CHECK(*early < kNow);
}

TEST_CASE("Reset values: durations, delay or epoch seconds, RFC 3339 and HTTP dates") {
  const auto epoch = std::chrono::duration_cast<std::chrono::seconds>(kNow.time_since_epoch()).count();
  CHECK(parse_reset("1m30s", kNow) == 90s);
  CHECK(parse_reset("20", kNow) == 20s);
  CHECK(parse_reset("0.5", kNow) == 500ms);
  CHECK(parse_reset(std::to_string(epoch + 60), kNow) == 60s);
  CHECK(parse_reset("2026-12-06T03:01:00Z", kNow) == 60s);
  CHECK(parse_reset("Sun, 06 Dec 2026 03:00:10 GMT", kNow) == 10s);
  CHECK(parse_reset("garbage", kNow) == std::nullopt);
  CHECK(parse_reset("1e300", kNow) == kMaxServerWait);  // far in the future: clamped, no overflow
}

TEST_CASE("A remaining count of 0 announces a cooldown in every common header family") {
  CHECK(announced_cooldown({{"x-ratelimit-remaining-requests", "0"}, {"x-ratelimit-reset-requests", "1m30s"},
                            {"x-ratelimit-remaining-tokens", "5000"}, {"x-ratelimit-reset-tokens", "6m0s"}},
                           kNow) == 90s);
  const auto epoch = std::chrono::duration_cast<std::chrono::seconds>(kNow.time_since_epoch()).count();
  CHECK(announced_cooldown({{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", std::to_string(epoch + 12)}}, kNow) ==
        12s);
  CHECK(announced_cooldown({{"anthropic-ratelimit-requests-remaining", "0"},
                            {"anthropic-ratelimit-requests-reset", "2026-12-06T03:00:30Z"}},
                           kNow) == 30s);
  CHECK(announced_cooldown({{"X-Rate-Limit-Remaining", "0"}, {"X-Rate-Limit-Reset", "7"}}, kNow) == 7s);
  CHECK(announced_cooldown({{"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "50"}}, kNow) == 50s);
  CHECK(announced_cooldown({{"RateLimit", "limit=100, remaining=0, reset=50"}}, kNow) == 50s);
  CHECK(announced_cooldown({{"x-ratelimit-remaining", "0"}, {"x-ratelimit-reset-after", "2.5"}}, kNow) == 2500ms);
  // The longest exhausted family wins; families with something left do not count.
  CHECK(announced_cooldown({{"x-ratelimit-remaining-requests", "0"}, {"x-ratelimit-reset-requests", "1s"},
                            {"x-ratelimit-remaining-tokens", "0"}, {"x-ratelimit-reset-tokens", "20s"}},
                           kNow) == 20s);
  CHECK(announced_cooldown({{"x-ratelimit-remaining-requests", "3"}, {"x-ratelimit-reset-requests", "1s"}}, kNow) ==
        std::nullopt);
  CHECK(announced_cooldown({{"x-ratelimit-remaining-requests", "0"}}, kNow) == std::nullopt);  // no reset: unknown
  CHECK(announced_cooldown({{"x-ratelimit-remaining", "zero"}, {"x-ratelimit-reset", "1s"}}, kNow) == std::nullopt);
}

TEST_CASE("Classification: 2xx") {
  auto ok = classify_reply(reply(200, R"({"text":"hi"})"), kNow);
  CHECK(ok.outcome.kind() == OutcomeKind::success);
  CHECK(ok.json["text"] == "hi");
  CHECK_FALSE(ok.rest);
  auto last = classify_reply(
      reply(200, "{}", {{"x-ratelimit-remaining-requests", "0"}, {"x-ratelimit-reset-requests", "850ms"}}), kNow);
  CHECK(last.outcome.kind() == OutcomeKind::success);
  CHECK(last.rest == 850ms);
  // The server had the request, but its answer cannot be read: it may have acted.
  CHECK(classify_reply(reply(200, "{\"text\":"), kNow).outcome.kind() == OutcomeKind::maybe_applied);
}

TEST_CASE("Classification: 429 with Retry-After seconds, date, reset headers or nothing") {
  auto seconds = classify_reply(reply(429, "{}", {{"Retry-After", "17"}}), kNow);
  CHECK(seconds.outcome.kind() == OutcomeKind::flood_wait);
  CHECK(seconds.outcome.wait() == 17s);
  CHECK_FALSE(seconds.quota_exhausted);
  auto date = classify_reply(reply(429, "{}", {{"Retry-After", "Sun, 06 Dec 2026 03:02:00 GMT"}}), kNow);
  CHECK(date.outcome.wait() == 120s);
  auto reset = classify_reply(
      reply(429, "{}", {{"x-ratelimit-remaining-requests", "0"}, {"x-ratelimit-reset-requests", "1m30s"}}), kNow);
  CHECK(reset.outcome.wait() == 90s);
  auto nothing = classify_reply(reply(429, "{}"), kNow, {.default_wait = 3s});
  CHECK(nothing.outcome.wait() == 3s);
  auto garbage = classify_reply(reply(429, "{}", {{"Retry-After", "tomorrow-ish"}}), kNow, {.default_wait = 3s});
  CHECK(garbage.outcome.wait() == 3s);
}

TEST_CASE("Classification: exhausted quota rests the key until the reset") {
  const ClassifyOptions options{.default_wait = 1s, .quota_wait = 24h};
  const std::string openai =
      R"({"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota"}})";
  auto quota = classify_reply(reply(429, openai), kNow, options);
  CHECK(quota.quota_exhausted);
  CHECK(quota.outcome.kind() == OutcomeKind::flood_wait);
  CHECK(quota.outcome.wait() == 24h);
  CHECK(quota.outcome.description().find("quota exhausted") == 0);
  auto told = classify_reply(reply(429, openai, {{"Retry-After", "3600"}}), kNow, options);
  CHECK(told.outcome.wait() == 1h);
  auto payment = classify_reply(reply(402, R"({"message":"Payment Required"})"), kNow, options);
  CHECK(payment.quota_exhausted);
  CHECK(payment.outcome.wait() == 24h);
  auto forbidden = classify_reply(reply(403, R"({"error":"Your credit balance is too low"})"), kNow, options);
  CHECK(forbidden.quota_exhausted);
  CHECK(forbidden.outcome.kind() == OutcomeKind::flood_wait);
}

TEST_CASE("Classification: 401 and 403 disable the key") {
  CHECK(classify_reply(reply(401, R"({"error":{"message":"Incorrect API key"}})"), kNow).outcome.kind() ==
        OutcomeKind::auth_failed);
  CHECK(classify_reply(reply(403, R"({"error":"forbidden"})"), kNow).outcome.kind() == OutcomeKind::auth_failed);
}

TEST_CASE("Classification: 408, 503 and 529 were not processed, other 5xx may have been") {
  CHECK(classify_reply(reply(408, "{}"), kNow).outcome.kind() == OutcomeKind::not_sent);
  CHECK(classify_reply(reply(503, "{}"), kNow).outcome.kind() == OutcomeKind::not_sent);
  CHECK(classify_reply(reply(529, R"({"type":"overloaded_error"})"), kNow).outcome.kind() == OutcomeKind::not_sent);
  auto busy = classify_reply(reply(503, "{}", {{"Retry-After", "4"}}), kNow);
  CHECK(busy.outcome.kind() == OutcomeKind::flood_wait);
  CHECK(busy.outcome.wait() == 4s);
  for (int status : {500, 502, 504}) {
    CHECK(classify_reply(reply(status, "{}"), kNow).outcome.kind() == OutcomeKind::maybe_applied);
  }
}

TEST_CASE("Classification: 400, 404 and 422 end the call with the provider's words") {
  auto bad = classify_reply(reply(400, R"({"error":{"message":"model not found","type":"invalid_request_error"}})"), kNow);
  CHECK(bad.outcome.kind() == OutcomeKind::rejected);
  CHECK(bad.outcome.error() == errc::bad_request);
  CHECK(bad.outcome.description() == "HTTP 400: model not found");
  CHECK(classify_reply(reply(404, R"({"message":"Not Found"})"), kNow).outcome.description() == "HTTP 404: Not Found");
  auto fastapi = classify_reply(reply(422, R"({"detail":[{"loc":["body","audio"],"msg":"field required"}]})"), kNow);
  CHECK(fastapi.outcome.kind() == OutcomeKind::rejected);
  CHECK(fastapi.outcome.description().find("field required") != std::string::npos);
  auto html = reply(404, "<html>\r\nnot here</html>");
  html.headers = {{"Content-Type", "text/html"}};
  CHECK(classify_reply(html, kNow).outcome.description() == "HTTP 404: <html>  not here</html>");
  CHECK(classify_reply(reply(418, ""), kNow).outcome.description() == "HTTP 418");
}

TEST_CASE("Provider messages are clipped and keys are redacted from them") {
  const std::string long_body(5000, 'x');
  CHECK(provider_message(500, nullptr, long_body).size() < 320);
  const std::string key = "sk-live-1234567890";
  const auto text = redact("Incorrect API key provided: sk-live-1234567890.", key);
  CHECK(text.find(key) == std::string::npos);
  CHECK(text.find("****") != std::string::npos);
}
