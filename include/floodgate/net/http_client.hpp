// floodgate/net/http_client.hpp: an asynchronous HTTPS client with keep-alive.
//
// `HttpsClient` sends one `HttpRequest` and completes with
// `void(std::error_code, HttpResponse)`. It keeps finished connections open
// per endpoint (scheme, host, port) and reuses them, so a bot that calls the
// same API over and over pays for one TCP and TLS handshake, not one per call.
//
// Completion tokens: callbacks, `asio::use_future` and `asio::use_awaitable`
// all work. Because the error is a `std::error_code` (not Boost's), futures and
// coroutines receive it as the first element of a tuple:
//
//   floodgate::net::HttpsClient client(ioc.get_executor());
//   auto endpoint = floodgate::net::Endpoint::parse("https://api.telegram.org");
//   auto target = floodgate::net::RequestTarget("/bot").append(token).append("/getMe");
//   auto [ec, response] = co_await client.async_request(
//       floodgate::net::HttpRequest::get(endpoint, target), asio::use_awaitable);
//   if (ec) ...                       // floodgate::net::errc, one value per failure class
//   else use(response.status, response.body);
//
// Security defaults: TLS 1.2+, certificate chain and host name verified
// against the system CA store; plain http:// only with `allow_plain_http`.
// A request target may hold a `Secret` (the bot token in `/bot<token>/...`):
// it is revealed only on the wire and prints redacted everywhere else.
//
// Bodies: none, text (JSON helpers), a file streamed from disk, or
// multipart/form-data whose files are streamed from memory or from disk in
// chunks, never loaded whole. A response
// is read into `HttpResponse::body`, or, with `download_to`, a successful body
// is streamed into a file.
//
// Timeouts: `connect_timeout` covers DNS, TCP and TLS; `read_timeout` is the
// longest pause without progress while sending or receiving; `total_timeout`
// bounds the whole request. A request can override the last two (long polling
// needs a longer read timeout than an API call).
//
// Retries: the client does not retry, with one exception: a GET sent on a
// reused keep-alive connection that the server had already closed is sent
// again once on a fresh connection. POSTs are never resent (a message must
// not be delivered twice); policy lives in floodgate's retry executor.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/context.hpp>

#include <fmt/format.h>
#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "floodgate/core/secret.hpp"
#include "floodgate/net/endpoint.hpp"
#include "floodgate/net/error.hpp"

namespace floodgate::net {

namespace detail {
struct HttpClientState;
}

/// A multipart/form-data body. File contents come from memory or from a
/// path; a path is read in chunks while the request is written.
class MultipartForm {
 public:
  struct Part {
    std::string name;
    std::string filename;      ///< empty for a plain field
    std::string content_type;  ///< empty for a plain field
    std::variant<std::string, std::filesystem::path> content;  ///< bytes, or a file to stream
  };

  MultipartForm& add_field(std::string name, std::string value);
  MultipartForm& add_file(std::string name, std::string filename, std::string bytes,
                          std::string content_type = "application/octet-stream");
  /// Streams `path` when the request is sent; `filename` defaults to the path's file name.
  MultipartForm& add_file_from_path(std::string name, std::filesystem::path path,
                                    std::string content_type = "application/octet-stream",
                                    std::string filename = {});

  const std::vector<Part>& parts() const noexcept { return parts_; }

 private:
  std::vector<Part> parts_;
};

/// A body held in memory, sent with its content type.
struct TextBody {
  std::string content_type;
  std::string data;
};

/// A body read from a file in chunks while it is sent (an audio upload sent
/// as the raw request body), never loaded whole.
struct FileBody {
  std::string content_type;
  std::filesystem::path path;
};

enum class HttpMethod { get, post };

struct HttpRequest {
  HttpMethod method = HttpMethod::get;
  Endpoint endpoint;
  RequestTarget target{"/"};
  HttpHeaders headers;  ///< extra headers; Host, Content-Length, Content-Type are set by the client
  std::variant<std::monostate, TextBody, MultipartForm, FileBody> body;
  /// When set, a 2xx response body is streamed into this file (created or
  /// truncated) and `HttpResponse::body` stays empty; other statuses are read
  /// into memory as usual so the error can be decoded.
  std::filesystem::path download_to;
  std::optional<std::chrono::milliseconds> read_timeout;   ///< overrides the client's
  std::optional<std::chrono::milliseconds> total_timeout;  ///< overrides the client's

  static HttpRequest get(Endpoint endpoint, RequestTarget target);
  static HttpRequest post_json(Endpoint endpoint, RequestTarget target, const nlohmann::json& json);
  static HttpRequest post_form(Endpoint endpoint, RequestTarget target, MultipartForm form);
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;                ///< empty when the body went to `download_to`
  std::uint64_t body_bytes = 0;    ///< bytes of body received (in memory or to the file)

  /// The first header called `name` (case-insensitive), or "" if absent.
  std::string_view header(std::string_view name) const noexcept;
  bool is_success() const noexcept { return status >= 200 && status < 300; }
};

struct HttpClientOptions {
  /// TLS context for https; null means `make_client_tls_context()` (system CAs).
  std::shared_ptr<boost::asio::ssl::context> tls;
  /// Permit plain http:// endpoints (local simulators). Off by default.
  bool allow_plain_http = false;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds read_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds total_timeout{std::chrono::seconds(90)};
  /// Idle keep-alive connections kept per endpoint; more are closed.
  std::size_t max_idle_per_endpoint = 4;
  /// An idle connection older than this is closed instead of reused.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  /// Largest response body read into memory (downloads to a file are
  /// unbounded). A body with a Content-Length takes its size in memory; a
  /// chunked one up to 3x while its string grows. API replies are far
  /// smaller: fetch files with `download_to`.
  std::uint64_t max_body_bytes = 16ull << 20;
  std::string user_agent = "floodgate";
};

struct HttpClientStats {
  std::uint64_t connections_opened = 0;  ///< TCP connections established
  std::uint64_t connections_reused = 0;  ///< requests that ran on a kept-alive connection
  std::uint64_t requests = 0;            ///< requests started
  std::uint64_t failures = 0;            ///< requests that completed with an error
};

class HttpsClient {
 public:
  using executor_type = boost::asio::any_io_executor;
  using Signature = void(std::error_code, HttpResponse);

  /// Throws floodgate::Error if the default TLS context cannot be created.
  explicit HttpsClient(executor_type executor, HttpClientOptions options = {});
  /// Closes idle connections. Requests in flight keep what they need alive and
  /// still complete exactly once.
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  /// Sends `request`; completes with `void(std::error_code, HttpResponse)`.
  /// Any HTTP status is a success at this level: the error says only why no
  /// complete response was received. Thread-safe.
  template <class CompletionToken>
  auto async_request(HttpRequest request, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [state = state_](auto handler, HttpRequest req) {
          start(state, std::move(req), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(request));
  }

  HttpClientStats stats() const noexcept;
  /// Closes every idle keep-alive connection now.
  void close_idle_connections();
  executor_type get_executor() const noexcept { return executor_; }

 private:
  static void start(const std::shared_ptr<detail::HttpClientState>& state, HttpRequest request,
                    boost::asio::any_completion_handler<Signature> handler);

  executor_type executor_;
  std::shared_ptr<detail::HttpClientState> state_;
};

}  // namespace floodgate::net
