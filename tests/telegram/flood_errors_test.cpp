#include <floodgate/telegram/flood_errors.hpp>

#include <catch2/catch.hpp>

using floodgate::telegram::classify_td_error;
using floodgate::telegram::classify_td_response;
using floodgate::telegram::parse_retry_after;
using floodgate::OutcomeKind;
using namespace std::chrono_literals;

TEST_CASE("flood errors: every spelling becomes a wait of exactly N seconds", "[telegram][flood]") {
  struct Case {
    int code;
    const char* message;
    std::chrono::seconds wait;
    bool chat_scoped;
  };
  const Case cases[] = {
      {429, "Too Many Requests: retry after 35", 35s, false},
      {420, "FLOOD_WAIT_7", 7s, false},
      {420, "FLOOD_PREMIUM_WAIT_120", 120s, false},
      {420, "SLOWMODE_WAIT_30", 30s, true},
      {400, "FLOOD_WAIT_86400", 86400s, false},  // the spelling decides, whatever the code
      {429, "Too Many Requests: retry after 0", 0s, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.code, c.message);
    const auto e = classify_td_error(c.code, c.message);
    CHECK(e.kind == OutcomeKind::flood_wait);
    CHECK(e.retry_after == c.wait);
    CHECK(e.chat_scoped == c.chat_scoped);
    CHECK(e.code == c.code);
    CHECK(e.message == c.message);
  }
}

TEST_CASE("flood errors: TDLib reply objects are classified, other replies are not errors", "[telegram][flood]") {
  const auto flood = classify_td_response(
      nlohmann::json::parse(R"({"@type":"error","code":420,"message":"SLOWMODE_WAIT_9","@extra":5})"));
  REQUIRE(flood);
  CHECK(flood->kind == OutcomeKind::flood_wait);
  CHECK(flood->retry_after == 9s);
  CHECK(flood->chat_scoped);

  CHECK_FALSE(classify_td_response(nlohmann::json::parse(R"({"@type":"ok"})")));
  CHECK_FALSE(classify_td_response(nlohmann::json::parse(R"([1,2])")));
  CHECK_FALSE(classify_td_response(nlohmann::json::parse(R"({"@type":5})")));

  // An error object with missing or mistyped fields: back off, never crash.
  const auto broken = classify_td_response(nlohmann::json::parse(R"({"@type":"error","code":"x"})"));
  REQUIRE(broken);
  CHECK(broken->kind == OutcomeKind::maybe_applied);
}

TEST_CASE("flood errors: auth, bad request and transient families", "[telegram][flood]") {
  CHECK(classify_td_error(401, "Unauthorized").kind == OutcomeKind::auth_failed);
  CHECK(classify_td_error(401, "AUTH_KEY_UNREGISTERED").kind == OutcomeKind::auth_failed);
  CHECK(classify_td_error(401, "SESSION_REVOKED").kind == OutcomeKind::auth_failed);
  CHECK(classify_td_error(403, "USER_DEACTIVATED_BAN").kind == OutcomeKind::auth_failed);
  CHECK(classify_td_error(400, "API_ID_INVALID").kind == OutcomeKind::auth_failed);
  CHECK(classify_td_error(400, "CHAT_ID_INVALID").kind == OutcomeKind::rejected);
  CHECK(classify_td_error(403, "CHAT_WRITE_FORBIDDEN").kind == OutcomeKind::rejected);
  CHECK(classify_td_error(404, "Not Found").kind == OutcomeKind::rejected);
  CHECK(classify_td_error(500, "Request aborted").kind == OutcomeKind::maybe_applied);
  CHECK(classify_td_error(-503, "Timeout").kind == OutcomeKind::maybe_applied);
  CHECK(classify_td_error(0, "").kind == OutcomeKind::maybe_applied);
}

TEST_CASE("flood errors: unreadable waits back off without inventing a cooldown", "[telegram][flood]") {
  for (const char* message : {"FLOOD_WAIT_", "FLOOD_WAIT_X", "FLOOD_WAIT_-5",
                              "Too Many Requests", "Too Many Requests: retry after ", "SLOWMODE_WAIT_1 2"}) {
    CAPTURE(message);
    const auto e = classify_td_error(420, message);
    CHECK(e.kind == OutcomeKind::not_sent);  // refused, so not applied: back off and retry
    CHECK(e.retry_after == 0s);
  }
}

TEST_CASE("flood errors: parse_retry_after reads Bot API descriptions", "[telegram][flood]") {
  CHECK(parse_retry_after("Too Many Requests: retry after 35") == 35s);
  CHECK(parse_retry_after("Too Many Requests: retry after 7 (chat limit)") == 7s);
  CHECK_FALSE(parse_retry_after("Too Many Requests"));
  CHECK_FALSE(parse_retry_after("retry after soon"));
  CHECK_FALSE(parse_retry_after(""));
}

TEST_CASE("flood errors: huge waits saturate at kMaxServerWait instead of overflowing", "[telegram][flood]") {
  for (const char* message : {"FLOOD_WAIT_9300000000", "FLOOD_WAIT_99999999999999999999999",
                              "Too Many Requests: retry after 10000000000"}) {
    CAPTURE(message);
    const auto e = classify_td_error(420, message);
    CHECK(e.kind == OutcomeKind::flood_wait);
    CHECK(e.retry_after == floodgate::kMaxServerWait);
    // The outcome's wait in nanoseconds is the clamp too, not a wrapped value.
    CHECK(e.outcome().wait() == floodgate::kMaxServerWait);
  }
  CHECK(classify_td_error(420, "FLOOD_WAIT_35").outcome().wait() == 35s);
}
