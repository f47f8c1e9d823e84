// floodgate/http/classify.hpp: what an HTTP API's answer means for the key
// that sent it and for the call.
//
// `classify_reply` is the classification table of docs/http-api-keys.md in
// code. It reads the status, the waiting headers (http/rate_limit_headers.hpp)
// and the JSON error body of any JSON-over-HTTPS API and returns one
// `Outcome` (core/outcome.hpp); the pool and the retry executor act on it.
//
//   status            outcome                                    the key
//   2xx               success (unreadable JSON: maybe_applied)   rests if a remaining-* header says 0
//   429               flood_wait: Retry-After (seconds or date), cools exactly that long
//                     else the reset headers, else default_wait
//   429/403 "quota"   flood_wait until the quota resets          rests until Retry-After/reset, else quota_wait
//   402               the same                                   the same
//   401, other 403    auth_failed                                disabled
//   408, 503, 529     not_sent (503/529 with Retry-After: flood_wait)  retried anywhere after a backoff
//   other 5xx         maybe_applied                              retried only if the call is idempotent
//   400, 404, 422,    rejected with the provider's message       untouched
//   other statuses
//
// Transport failures (no complete answer) are net::failure_outcome's table.
// A description never contains the key: `redact` removes it if a provider
// echoes it back.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "floodgate/core/outcome.hpp"
#include "floodgate/http/rate_limit_headers.hpp"
#include "floodgate/net/http_client.hpp"

namespace floodgate::http {

struct ClassifyOptions {
  /// The cooldown after a 429 that says nothing about when to come back.
  std::chrono::nanoseconds default_wait = std::chrono::seconds(1);
  /// How long a key whose quota ran out rests when the reply does not say
  /// when the quota resets (a monthly credit: set it to the billing period).
  std::chrono::nanoseconds quota_wait = std::chrono::hours(1);
};

/// One reply, classified.
struct Verdict {
  Outcome<> outcome;
  /// The reply said the key's quota or billing is exhausted.
  bool quota_exhausted = false;
  /// A success whose rate-limit headers say the key has nothing left: it
  /// should rest this long before it sends again.
  std::optional<std::chrono::nanoseconds> rest;
  /// The body parsed as JSON (null when it is empty or not JSON).
  nlohmann::json json;
};

/// Classifies a complete HTTP answer (see the table above). `now` is wall time, for dates.
Verdict classify_reply(const net::HttpResponse& response, WallTime now, const ClassifyOptions& options = {});

/// The provider's own words for an error: error.message, message, error,
/// detail or description of a JSON body, else the start of the body;
/// prefixed with the status ("HTTP 422: ..."). At most ~300 characters.
std::string provider_message(int status, const nlohmann::json& json, std::string_view body);

/// Whether an error body says the quota, credit or billing is exhausted.
bool says_quota_exhausted(std::string_view body);

/// `text` with every occurrence of `secret` replaced by its redacted form.
std::string redact(std::string text, std::string_view secret);

}  // namespace floodgate::http
