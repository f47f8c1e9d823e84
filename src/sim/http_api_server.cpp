#include "floodgate/sim/http_api_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <deque>
#include <mutex>
#include <random>
#include <sstream>

#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/net/tls.hpp"
#include "form_params.hpp"
#include "loopback_server.hpp"

namespace floodgate::sim {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using std::chrono::nanoseconds;

namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::uint64_t kMaxRequestBody = 64ull << 20;
constexpr auto kIdleConnectionTimeout = std::chrono::minutes(2);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

/// A wall-clock instant rounded up to the whole second (dates have no finer unit).
std::time_t ceil_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::system_clock::to_time_t(std::chrono::ceil<std::chrono::seconds>(t));
}

/// "850ms", "1m30.250s": the Go-style durations of OpenAI's reset headers, rounded up to the millisecond.
std::string go_duration(nanoseconds wait) {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  if (ms < 1000) return fmt::format("{}ms", ms);
  return fmt::format("{}m{:.3f}s", ms / 60000, static_cast<double>(ms % 60000) / 1000.0);
}

std::string error_body(std::string_view message, std::string_view type) {
  return nlohmann::json{{"error", {{"message", message}, {"type", type}}}}.dump();
}

struct Answer {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<HttpFault> delivery;  // drop, cut off or delay the answer
};
}  // namespace

struct HttpApiServer::Impl {
  struct Key {
    std::optional<Rate> limit;
    std::optional<std::uint64_t> quota;
    std::uint64_t quota_used = 0;
    bool quota_reported = false;  // told the client the quota is spent
    bool revoked = false;
    bool forbidden = false;
    nanoseconds window_start{0};
    int window_count = 0;
    nanoseconds told_until{0};  // told to wait until then (steady time)
    std::deque<HttpFault> faults;
    HttpKeyStats stats;
  };

  explicit Impl(HttpApiServerOptions opts) : options(std::move(opts)), random(options.seed) {
    for (const auto& key : options.keys) add(key.reveal());
    if (options.tls) {
      if (!options.certificates) options.certificates = TestCertificates::generate();
      tls = net::make_server_tls_context(options.certificates->server_chain_pem, options.certificates->server_key_pem);
    }
  }

  void add(const std::string& key) {
    std::lock_guard lock(mutex);
    auto& k = keys[key];
    k.limit = options.limit;
    k.quota = options.quota;
  }

  template <class Fn>
  void with_key(const Secret& key, Fn&& fn) {
    std::lock_guard lock(mutex);
    const auto it = keys.find(key.reveal());
    if (it == keys.end()) throw Error(fmt::format("HttpApiServer: unknown key {}", key));
    fn(it->second);
  }

  static nanoseconds steady_now() { return std::chrono::steady_clock::now().time_since_epoch(); }

  /// Says "wait `wait`" the configured way; returns how long it actually told the client.
  nanoseconds tell_wait(Answer& answer, nanoseconds wait) {
    const auto wall = std::chrono::system_clock::now();
    switch (options.retry_after) {
      case RetryAfterForm::seconds: {
        const auto seconds = std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::seconds>(wait).count());
        answer.headers.emplace_back("Retry-After", std::to_string(seconds));
        return std::chrono::seconds(seconds);
      }
      case RetryAfterForm::http_date: {
        const auto when = ceil_seconds(wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(wait));
        answer.headers.emplace_back("Retry-After", fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT", fmt::gmtime(when)));
        return std::chrono::duration_cast<nanoseconds>(std::chrono::system_clock::from_time_t(when) - wall);
      }
      case RetryAfterForm::none: break;
    }
    return nanoseconds::zero();
  }

  /// The remaining/reset headers of the configured family.
  void rate_headers(Answer& answer, int remaining, nanoseconds reset) const {
    const auto wall = std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(reset);
    switch (options.headers) {
      case RateLimitHeaders::none: return;
      case RateLimitHeaders::openai:
        answer.headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(remaining));
        answer.headers.emplace_back("x-ratelimit-reset-requests", go_duration(reset));
        return;
      case RateLimitHeaders::github:
        answer.headers.emplace_back("x-ratelimit-remaining", std::to_string(remaining));
        answer.headers.emplace_back("x-ratelimit-reset", std::to_string(ceil_seconds(wall)));
        return;
      case RateLimitHeaders::anthropic:
        answer.headers.emplace_back("anthropic-ratelimit-requests-remaining", std::to_string(remaining));
        answer.headers.emplace_back("anthropic-ratelimit-requests-reset",
                                    fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(ceil_seconds(wall))));
        return;
    }
  }

  /// The header family's reset as the client reads it (whole seconds for dates).
  nanoseconds announced_reset(nanoseconds reset) const {
    if (options.headers == RateLimitHeaders::openai) return std::chrono::ceil<std::chrono::milliseconds>(reset);
    const auto wall = std::chrono::system_clock::now();
    const auto when = std::chrono::system_clock::from_time_t(
        ceil_seconds(wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(reset)));
    return std::chrono::duration_cast<nanoseconds>(when - wall);
  }

  static std::optional<std::string> key_of(const http::request<http::string_body>& request) {
    if (const auto auth = request[http::field::authorization]; auth.starts_with("Bearer ")) {
      return std::string(auth.substr(7));
    }
    if (const auto header = request["x-api-key"]; !header.empty()) return std::string(header);
    const std::string_view target = request.target();
    if (const auto query = target.find('?'); query != std::string_view::npos) {
      detail::FormParams params;
      if (detail::parse_urlencoded(target.substr(query + 1), params)) {
        if (const auto key = params.find("key"); key != params.end()) return key->second.value;
      }
    }
    return std::nullopt;
  }

  Answer answer(const http::request<http::string_body>& request) {
    const std::string_view target = request.target();
    const auto path = target.substr(0, target.find('?'));
    const auto key_text = key_of(request);
    std::lock_guard lock(mutex);
    const auto it = key_text ? keys.find(*key_text) : keys.end();
    if (it == keys.end()) {
      return {401, error_body(fmt::format("Incorrect API key provided: {}", key_text.value_or("(none)")),
                              "invalid_api_key")};
    }
    Key& key = it->second;
    HttpKeyStats& stats = key.stats;
    const auto now = steady_now();
    ++stats.requests;
    if (now < key.told_until) ++stats.sent_during_cooldown;
    if (key.quota_reported) ++stats.sent_while_exhausted;
    if (key.revoked) return ++stats.unauthorized, Answer{401, error_body("API key revoked", "invalid_api_key")};
    if (key.forbidden) {
      return ++stats.forbidden, Answer{403, error_body("this key may not use this model", "permission_denied")};
    }
    if (!key.faults.empty()) {
      HttpFault fault = key.faults.front();
      key.faults.pop_front();
      ++stats.faults;
      if (fault.kind == HttpFault::Kind::status) {
        Answer answer{fault.status, error_body(fault.message, "simulated")};
        if (!fault.retry_after.empty()) answer.headers.emplace_back("Retry-After", fault.retry_after);
        if (fault.status == 429) {  // whatever the client parses, it must not come back before the second is over
          key.told_until = std::max(key.told_until, now + std::chrono::seconds(1));
        }
        return answer;
      }
      if (fault.kind == HttpFault::Kind::drop_connection) return {200, {}, {}, fault};
      roll_window(key, now);  // the delivered answer counts in the window and carries its headers
      Answer served = apply(key, request, path, now);
      served.delivery = fault;
      return served;
    }
    if (key.quota && key.quota_used >= *key.quota) {
      ++stats.quota_refused;
      key.quota_reported = true;
      if (options.quota_status == 402) return {402, error_body("Payment required: credit balance is too low", "billing")};
      return {429, error_body("You exceeded your current quota, please check your plan and billing details.",
                              "insufficient_quota")};
    }
    if (key.limit) {
      roll_window(key, now);
      const auto reset = key.window_start + key.limit->period() - now;
      if (key.window_count >= static_cast<int>(key.limit->tokens())) {  // whole requests
        ++stats.rate_limited;
        Answer answer{429, error_body("Rate limit reached for requests", "requests")};
        const auto told = tell_wait(answer, reset);
        rate_headers(answer, 0, reset);
        key.told_until = std::max(key.told_until, now + std::max(told, options.headers != RateLimitHeaders::none
                                                                           ? announced_reset(reset)
                                                                           : nanoseconds::zero()));
        return answer;
      }
    }
    if (options.rate_limit_probability > 0 && std::bernoulli_distribution(options.rate_limit_probability)(random)) {
      ++stats.rate_limited;
      Answer answer{429, error_body("Rate limit reached (random)", "requests")};
      const auto told = tell_wait(answer, std::chrono::seconds(1));
      key.told_until = std::max(key.told_until, now + (told > nanoseconds::zero() ? told : std::chrono::seconds(1)));
      return answer;
    }
    return apply(key, request, path, now);
  }

  /// Starts the key's next window when the current one is over.
  static void roll_window(Key& key, nanoseconds now) {
    if (key.limit && now >= key.window_start + key.limit->period()) {
      key.window_start = now;
      key.window_count = 0;
    }
  }

  /// Serves the request for `key` (counting it in the window and the quota when applied).
  Answer apply(Key& key, const http::request<http::string_body>& request, std::string_view path, nanoseconds now) {
    HttpKeyStats& stats = key.stats;
    Answer answer;
    if (path == "/v1/ping" && request.method() == http::verb::get) {
      answer.body = R"({"ok":true})";
    } else if (path == "/v1/transcribe" && request.method() == http::verb::post) {
      nlohmann::json reply{{"bytes", request.body().size()}};
      std::string id;
      if (request[http::field::content_type].find("json") != std::string_view::npos) {
        const auto json = nlohmann::json::parse(request.body(), nullptr, false);
        if (json.is_discarded() || !json.is_object()) {
          return ++stats.invalid, Answer{400, error_body("We could not parse the JSON body of your request.", "invalid_request_error")};
        }
        const auto audio = json.find("audio");
        if (audio == json.end() || !audio->is_string()) {
          return ++stats.invalid, Answer{422, R"({"detail":[{"loc":["body","audio"],"msg":"field required"}]})"};
        }
        if (const auto seconds = json.find("seconds"); seconds != json.end() && seconds->is_number_unsigned()) {
          stats.cost += seconds->get<std::uint64_t>();
        }
        if (const auto it = json.find("id"); it != json.end() && it->is_string()) id = it->get<std::string>();
        reply["text"] = fmt::format("transcript of {} characters of audio", audio->get<std::string>().size());
      } else {
        reply["text"] = fmt::format("transcript of {} bytes of audio", request.body().size());
      }
      reply["request"] = ++applied_count;
      if (!id.empty()) ++applied[id];
      answer.body = reply.dump();
    } else {
      return ++stats.invalid, Answer{404, error_body(fmt::format("Unknown request URL: {}", path), "invalid_request_error")};
    }
    ++stats.succeeded;
    stats.body_bytes += request.body().size();
    ++key.quota_used;
    if (key.limit) {
      ++key.window_count;
      const auto reset = key.window_start + key.limit->period() - now;
      const int remaining = static_cast<int>(key.limit->tokens()) - key.window_count;
      rate_headers(answer, remaining, reset);
      if (remaining == 0 && options.headers != RateLimitHeaders::none) {
        key.told_until = std::max(key.told_until, now + announced_reset(reset));
      }
    }
    return answer;
  }

  asio::awaitable<void> serve_connection(tcp::socket socket);
  template <class Stream>
  asio::awaitable<void> serve_requests(Stream& stream);

  HttpApiServerOptions options;
  std::shared_ptr<ssl::context> tls;

  mutable std::mutex mutex;  // guards the members below
  std::map<std::string, Key> keys;
  std::map<std::string, int> applied;
  std::uint64_t applied_count = 0;
  std::mt19937_64 random;

  std::mutex run_mutex;  // guards start/stop
  detail::LoopbackServer server;
};

asio::awaitable<void> HttpApiServer::Impl::serve_connection(tcp::socket socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  if (!tls) {
    beast::tcp_stream stream(std::move(socket));
    co_await serve_requests(stream);
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls);
  beast::get_lowest_layer(stream).expires_after(kHandshakeTimeout);
  auto [handshake_error] = co_await stream.async_handshake(ssl::stream_base::server, use_tuple);
  if (handshake_error) co_return;
  co_await serve_requests(stream);
}

template <class Stream>
asio::awaitable<void> HttpApiServer::Impl::serve_requests(Stream& stream) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(kMaxRequestBody);
    beast::get_lowest_layer(stream).expires_after(kIdleConnectionTimeout);
    auto [read_error, read_bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (read_error) co_return;
    beast::get_lowest_layer(stream).expires_never();
    const auto request = parser.release();

    Answer reply = answer(request);
    const auto& fault = reply.delivery;
    if (fault && fault->kind == HttpFault::Kind::drop_connection) co_return;
    if (fault && fault->kind == HttpFault::Kind::slow_reply) {
      asio::steady_timer delay(co_await asio::this_coro::executor, fault->delay);
      co_await delay.async_wait(use_tuple);
    }
    http::response<http::string_body> response{static_cast<http::status>(reply.status), request.version()};
    response.set(http::field::server, "floodgate-sim");
    response.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : reply.headers) response.set(name, value);
    response.keep_alive(request.keep_alive());
    response.body() = std::move(reply.body);
    response.prepare_payload();

    beast::get_lowest_layer(stream).expires_after(kWriteTimeout);
    if (fault && fault->kind == HttpFault::Kind::truncated_response) {
      std::ostringstream wire;
      wire << response;
      const std::string text = wire.str();
      const auto cut = text.size() - response.body().size() / 2 - 1;  // inside the body, never at its end
      co_await asio::async_write(stream, asio::buffer(text.data(), cut), use_tuple);
      co_return;
    }
    auto [write_error, written] = co_await http::async_write(stream, response, use_tuple);
    if (write_error || !response.keep_alive()) co_return;
  }
}

HttpApiServer::HttpApiServer(HttpApiServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpApiServer::~HttpApiServer() { stop(); }

void HttpApiServer::start() {
  std::lock_guard lock(impl_->run_mutex);
  impl_->server.start("HttpApiServer", impl_->options.port, [impl = impl_.get()](tcp::socket socket) {
    return impl->serve_connection(std::move(socket));
  });
}

void HttpApiServer::stop() {
  std::lock_guard lock(impl_->run_mutex);
  impl_->server.stop();
}

std::uint16_t HttpApiServer::port() const {
  std::lock_guard lock(impl_->run_mutex);
  return impl_->server.port();
}

std::string HttpApiServer::url() const { return endpoint().to_string(); }

net::Endpoint HttpApiServer::endpoint() const { return net::Endpoint{impl_->options.tls, "127.0.0.1", port()}; }

const std::string& HttpApiServer::ca_pem() const {
  static const std::string none;
  return impl_->options.certificates ? impl_->options.certificates->ca_pem : none;
}

void HttpApiServer::add_key(const Secret& key) { impl_->add(key.reveal()); }
void HttpApiServer::revoke_key(const Secret& key) {
  impl_->with_key(key, [](Impl::Key& k) { k.revoked = true; });
}
void HttpApiServer::forbid_key(const Secret& key) {
  impl_->with_key(key, [](Impl::Key& k) { k.forbidden = true; });
}
void HttpApiServer::set_limit(const Secret& key, std::optional<Rate> limit) {
  impl_->with_key(key, [&](Impl::Key& k) { k.limit = limit; });
}
void HttpApiServer::set_quota(const Secret& key, std::optional<std::uint64_t> calls) {
  impl_->with_key(key, [&](Impl::Key& k) {
    k.quota = calls;
    k.quota_used = 0;
    k.quota_reported = false;
  });
}
void HttpApiServer::reset_quota(const Secret& key) {
  impl_->with_key(key, [](Impl::Key& k) {
    k.quota_used = 0;
    k.quota_reported = false;
  });
}
void HttpApiServer::inject(const Secret& key, const HttpFault& fault, int times) {
  impl_->with_key(key, [&](Impl::Key& k) {
    for (int i = 0; i < times; ++i) k.faults.push_back(fault);
  });
}

HttpKeyStats HttpApiServer::stats(const Secret& key) const {
  HttpKeyStats out;
  const_cast<Impl&>(*impl_).with_key(key, [&](Impl::Key& k) { out = k.stats; });
  return out;
}

std::map<std::string, int> HttpApiServer::applied_ids() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->applied;
}

}  // namespace floodgate::sim
