// floodgate/sim/http_api_server.hpp: a local rate-limited JSON API with API
// keys, for tests and demos of http::ApiKeyPool (or any client).
//
// `HttpApiServer` listens on 127.0.0.1 over real HTTPS (or plain HTTP) and
// serves a small transcription-style API:
//
//   POST /v1/transcribe   JSON {"audio": "...", "seconds": N, "id": "..."}, a
//                         multipart form or raw bytes -> 200
//                         {"text": ..., "bytes": <body bytes>, "request": <n>}
//                         invalid JSON: 400; JSON without "audio": 422
//   GET  /v1/ping         -> {"ok": true}
//   anything else         -> 404
//
// A key is accepted as `Authorization: Bearer K`, `x-api-key: K`, or the
// query parameter `key=K`; a missing or unknown key gets 401 (its body echoes
// the key, as some providers do, so clients must keep it out of their logs).
//
// Limits per key, in a fixed window: over the limit a request gets 429 with
// `Retry-After` in seconds or as an HTTP date (`RetryAfterForm`), and every
// answer carries the remaining/reset headers of the chosen family
// (`RateLimitHeaders`): OpenAI's x-ratelimit-remaining-requests /
// x-ratelimit-reset-requests ("1m30s", "850ms"), GitHub's x-ratelimit-remaining
// / x-ratelimit-reset (epoch seconds) or Anthropic's
// anthropic-ratelimit-requests-remaining / -reset (RFC 3339). A quota counts
// successful calls per key; once spent, the key gets 429 "insufficient_quota"
// (or 402) until `reset_quota`. `inject` makes the next requests of a key
// fail: any status (with a Retry-After if wanted), a dropped connection, a
// reply cut off after the request was applied, or a slow reply.
// `rate_limit_probability` answers a seeded random share of requests 429.
//
// The server remembers what it told each key: a request that arrives while
// the key was told to wait (429, or remaining 0 until the reset) counts in
// `sent_during_cooldown`; one on a spent quota in `sent_while_exhausted`.
// Every applied JSON request's "id" is recorded (`applied_ids`), so a test can
// check that each call was applied exactly once.
//
// The server runs on its own thread; every public member is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "floodgate/core/clock.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/net/endpoint.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/sim/test_certificates.hpp"

namespace floodgate::sim {

enum class RetryAfterForm { seconds, http_date, none };
enum class RateLimitHeaders { none, openai, github, anthropic };

/// A misbehaviour for the next requests of a key.
struct HttpFault {
  enum class Kind {
    status,              ///< answer `status` with a JSON error body (and `retry_after` if set); not applied
    drop_connection,     ///< read the request, close without an answer; not applied
    truncated_response,  ///< apply the request, cut its answer in the middle, close
    slow_reply,          ///< apply the request, answer after `delay`
  };
  Kind kind = Kind::status;
  int status = 500;
  std::string retry_after;  ///< the Retry-After header's value ("" = none)
  std::string message = "simulated failure";
  std::chrono::milliseconds delay{0};

  static HttpFault answer(int status, std::string message = "simulated failure", std::string retry_after = {}) {
    return {Kind::status, status, std::move(retry_after), std::move(message)};
  }
  static HttpFault drop_connection() { return {Kind::drop_connection}; }
  static HttpFault truncated_response() { return {Kind::truncated_response}; }
  static HttpFault slow_reply(std::chrono::milliseconds delay) { return {Kind::slow_reply, 200, {}, {}, delay}; }
};

/// What the server saw from one key.
struct HttpKeyStats {
  std::uint64_t requests = 0;              ///< every request with this key
  std::uint64_t succeeded = 0;             ///< applied (answered 200, or cut off / slow after applying)
  std::uint64_t rate_limited = 0;          ///< answered 429 for the rate limit
  std::uint64_t quota_refused = 0;         ///< answered "quota exhausted"
  std::uint64_t sent_during_cooldown = 0;  ///< arrived while the key was told to wait
  std::uint64_t sent_while_exhausted = 0;  ///< arrived after its quota was reported spent
  std::uint64_t unauthorized = 0;          ///< 401 (revoked)
  std::uint64_t forbidden = 0;             ///< 403
  std::uint64_t invalid = 0;               ///< 400/404/422
  std::uint64_t faults = 0;                ///< answered with an injected fault
  std::uint64_t cost = 0;                  ///< sum of the "seconds" fields of applied JSON requests
  std::uint64_t body_bytes = 0;            ///< request body bytes of applied requests
};

struct HttpApiServerOptions {
  std::vector<Secret> keys;  ///< accepted keys; others get 401
  /// Requests per key in a fixed window; empty: unlimited.
  std::optional<Rate> limit = Rate{10, std::chrono::seconds(1)};
  /// Successful calls per key before its quota is spent; empty: unlimited.
  std::optional<std::uint64_t> quota;
  int quota_status = 429;  ///< 429 with "insufficient_quota", or 402
  RetryAfterForm retry_after = RetryAfterForm::seconds;
  RateLimitHeaders headers = RateLimitHeaders::none;
  /// Share of requests answered 429 at random (seeded), Retry-After 1 s.
  double rate_limit_probability = 0;
  std::uint64_t seed = 1;
  bool tls = true;
  std::optional<TestCertificates> certificates;  ///< generated when empty
  std::uint16_t port = 0;
};

class HttpApiServer {
 public:
  using TimeSource = std::function<std::chrono::nanoseconds()>;

  explicit HttpApiServer(HttpApiServerOptions options = {});
  ~HttpApiServer();
  HttpApiServer(const HttpApiServer&) = delete;
  HttpApiServer& operator=(const HttpApiServer&) = delete;

  /// Binds 127.0.0.1 and serves on a new thread. Throws floodgate::Error.
  void start();
  /// Closes the listener and every connection, joins the thread. Idempotent.
  void stop();

  std::uint16_t port() const;
  std::string url() const;  ///< "https://127.0.0.1:<port>"
  net::Endpoint endpoint() const;
  const std::string& ca_pem() const;  ///< empty in plain-HTTP mode

  void add_key(const Secret& key);
  void revoke_key(const Secret& key);   ///< 401 from now on
  void forbid_key(const Secret& key);   ///< 403 from now on
  void set_limit(const Secret& key, std::optional<Rate> limit);
  void set_quota(const Secret& key, std::optional<std::uint64_t> calls);
  void reset_quota(const Secret& key);  ///< a spent quota is whole again
  void inject(const Secret& key, const HttpFault& fault, int times = 1);

  HttpKeyStats stats(const Secret& key) const;
  /// "id" field of every applied JSON request, with how often it was applied.
  std::map<std::string, int> applied_ids() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace floodgate::sim
