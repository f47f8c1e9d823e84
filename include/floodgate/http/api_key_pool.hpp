// floodgate/http/api_key_pool.hpp: many API keys of many providers behind one
// caller, for any JSON-over-HTTPS API.
//
// Keys are grouped by provider; each provider has its base URL, how the key
// is sent (bearer header, a header of its own, a query parameter), a fallback
// tier and budgets. All keys of all providers live in one `CredentialPool`
// with the `Tiered<Weighted>` strategy, and every call runs through the one
// `RetryExecutor`:
//
// - the keys of the lowest tier that has a usable key share the calls by
//   weight; the next tier is used only while none is usable (all cooling,
//   over budget, out of quota or disabled), and traffic comes back by itself
//   when the primary's cooldowns end. Providers on the same tier share by weight;
// - each reply is classified by http/classify.hpp (docs/http-api-keys.md has
//   the table): a 429 cools the key for exactly its Retry-After (seconds or
//   HTTP date) and the call moves to another key at once; a success whose
//   x-ratelimit-remaining-* says 0 rests the key until the matching reset, so
//   it is not refused at all; a quota or billing exhaustion rests the key
//   until the reply's reset time or `ClassifyOptions::quota_wait`; 401/403
//   disable the key; 400/404/422 end the call with the provider's words;
// - a request that never reached a server (connect failed, 408, 503) is retried
//   after a backoff; a provider that cannot be reached at all rests all its
//   keys for `ApiKeyPoolOptions::unreachable_rest`, so the retry goes to the next; one whose answer was lost after it was sent (timeout,
//   cut-off reply, 500/502/504) is repeated only when `ApiCall::idempotent`
//   says so, else the call ends with `errc::outcome_unknown` and
//   `ApiResult::key_id` names the key that sent it;
// - budgets per key and per provider (requests and caller-supplied cost,
//   per minute and per day; token buckets, checked before sending): a key
//   over budget is skipped until it has room, without a request.
//
// Bodies are replayed on every attempt: JSON or bytes in memory, a multipart
// form, or a file streamed from disk (`ApiCall::post_file`, a form part from
// a path) and read again for each attempt, never loaded whole.
//
//   floodgate::http::ApiKeyPool transcribe(io.get_executor(), http, {
//       {.name = "primary", .base_url = "https://api.primary.example/v1",
//        .keys = {{"p-1", floodgate::Secret(k1)}, {"p-2", floodgate::Secret(k2)}},
//        .budget = {.requests_per_minute = 50, .cost_per_day = 36000}},
//       {.name = "backup", .base_url = "https://backup.example", .auth = KeyAuth::header("x-api-key"),
//        .keys = {{"b-1", floodgate::Secret(k3)}}, .tier = 1}});
//   auto call = ApiCall::post_file("/transcribe", "talk.ogg", "audio/ogg");
//   call.cost = 95;   // audio seconds
//   transcribe.async_call(std::move(call), [](std::error_code ec, ApiResult r) {
//     if (!ec) use(r.json["text"], r.provider);
//     else if (ec == floodgate::errc::all_credentials_cooling) retry_at(*r.earliest);
//     else report(ec.message(), r.description);   // e.g. bad_request, "HTTP 422: language not supported"
//   });
//
// Every call completes exactly once with `void(std::error_code, ApiResult)`.
// Thread-safe. Calls outlive the pool object (a retry waiting out a cooldown
// or a backoff, a request on the wire). ~ApiKeyPool waits for a request being
// started and a write to the pool's CooldownSink in progress; after it nothing
// is sent (a call that would send ends with errc::shut_down instead) and the
// CooldownSink given to `pool().persist_to` is not written (a reply arriving
// later cools, disables or rests the key in memory only). So the HTTPS client
// and the cooldown sink need only outlive the pool object, not its calls. A
// request already on the wire completes as it will, and every call still
// completes exactly once. The sink may not destroy the pool (the destructor
// would wait for itself).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "floodgate/core/health.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/retry_policy.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/core/strategy.hpp"
#include "floodgate/http/classify.hpp"
#include "floodgate/net/http_client.hpp"

namespace floodgate::http {

/// How a key travels with each request.
struct KeyAuth {
  enum class Style { bearer, header, query };
  Style style = Style::bearer;
  std::string name;  ///< the header (header) or query parameter (query); unused for bearer

  static KeyAuth bearer() { return {}; }                                       ///< Authorization: Bearer <key>
  static KeyAuth header(std::string name) { return {Style::header, std::move(name)}; }  ///< <name>: <key>
  static KeyAuth query(std::string name) { return {Style::query, std::move(name)}; }    ///< ?<name>=<key>
};

/// Local budgets, enforced before a request is sent. Each is a token bucket
/// of that size refilled evenly over its period (60/min: 60 at once, then one
/// a second). Unset: no such budget.
struct Budget {
  std::optional<std::uint32_t> requests_per_minute;
  std::optional<std::uint32_t> requests_per_day;
  std::optional<std::uint32_t> cost_per_minute;  ///< in the caller's unit (`ApiCall::cost`)
  std::optional<std::uint32_t> cost_per_day;
};

struct ApiKeySpec {
  std::string id;  ///< unique over all providers; shown in status views and results
  Secret key;
  std::uint32_t weight = 1;  ///< share of its tier's calls
  Budget budget;
};

struct ProviderSpec {
  std::string name;
  /// "https://api.example.com" or with a base path, "https://api.example.com/v1".
  std::string base_url;
  KeyAuth auth;
  std::vector<ApiKeySpec> keys;
  /// Fallback order: tier 0 is the primary; tier n is used only while no key of a lower tier is usable.
  std::uint32_t tier = 0;
  Budget budget;  ///< shared by all the provider's keys, on top of their own
  ClassifyOptions classify;
  net::HttpHeaders headers;  ///< sent with every request to this provider (no secrets: use `auth`)
};

/// The payload of each key in the pool.
struct ApiKey {
  std::string provider;
  Secret key;
};

/// One call, replayed as it is on every attempt (on any key of any provider).
struct ApiCall {
  using Body = std::variant<std::monostate, net::TextBody, net::MultipartForm, net::FileBody>;

  net::HttpMethod method = net::HttpMethod::post;
  std::string path;  ///< appended to the provider's base path: "/audio/transcriptions"
  Body body;
  net::HttpHeaders headers;
  /// Charged to the cost budgets of the key and its provider (audio seconds, tokens...).
  std::uint32_t cost = 0;
  /// Safe to repeat after an answer was lost (the server may have acted on it).
  bool idempotent = false;
  std::optional<SteadyClock::time_point> deadline;  ///< never wait or retry past this
  std::optional<std::chrono::milliseconds> timeout;  ///< one attempt's total time (the client's by default)
  /// Adjusts the request for one provider (another path, model name or field) on each attempt.
  std::function<void(std::string_view provider, net::HttpRequest&)> adapt;

  static ApiCall get(std::string path);
  static ApiCall post_json(std::string path, const nlohmann::json& json);
  static ApiCall post_bytes(std::string path, std::string bytes, std::string content_type);
  static ApiCall post_file(std::string path, std::filesystem::path file, std::string content_type);
  static ApiCall post_form(std::string path, net::MultipartForm form);
};

struct ApiResult {
  int status = 0;             ///< HTTP status of the last answer (0: none came)
  nlohmann::json json;        ///< its body as JSON (null if not JSON)
  std::string body;           ///< its body as received
  net::HttpHeaders headers;   ///< its headers
  std::string provider;       ///< the provider of the last attempt
  std::string key_id;         ///< the key of the last attempt (outcome_unknown: the one that sent it)
  std::string description;    ///< the provider's words for the last failure (never the key)
  std::optional<SteadyClock::time_point> earliest;  ///< all_credentials_cooling: a key is usable again then
  std::uint32_t attempts = 0;  ///< requests sent
};

struct ApiKeyPoolOptions {
  RetryPolicy retry;
  PoolOptions pool;
  /// A provider that cannot be reached (DNS, connect or TLS handshake failed)
  /// fails the same way for every key: all its keys rest this long, so the
  /// next attempt goes to the next provider instead of its other keys.
  std::chrono::nanoseconds unreachable_rest = std::chrono::seconds(10);
};

class ApiKeyPool {
 public:
  using Pool = CredentialPool<ApiKey, Tiered<Weighted>>;
  using Signature = void(std::error_code, ApiResult);

  /// `http` must outlive the pool object (not its calls: see the header
  /// comment). Throws floodgate::Error on a bad base URL,
  /// a duplicate or empty key id, or a provider without keys.
  ApiKeyPool(boost::asio::any_io_executor executor, net::HttpsClient& http, std::vector<ProviderSpec> providers,
             ApiKeyPoolOptions options = {});
  ~ApiKeyPool();
  ApiKeyPool(const ApiKeyPool&) = delete;
  ApiKeyPool& operator=(const ApiKeyPool&) = delete;

  template <class CompletionToken>
  auto async_call(ApiCall call, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, ApiCall c) {
          start(std::move(c), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(call));
  }

  /// The quota of `key_id` was topped up: it is usable again now (ends any rest).
  bool quota_restored(std::string_view key_id);
  /// The provider of a key ("" if unknown).
  std::string provider_of(std::string_view key_id) const;

  /// The credential pool. A CooldownSink given to its `persist_to` must
  /// outlive the ApiKeyPool object, not its calls: ~ApiKeyPool stops persisting.
  Pool& pool() noexcept;
  std::vector<HealthSnapshot> snapshot() const;
  boost::asio::any_io_executor executor() const noexcept;

 private:
  void start(ApiCall call, boost::asio::any_completion_handler<Signature> handler);

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::http
