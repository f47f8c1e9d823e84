#include "floodgate/http/api_key_pool.hpp"

#include <boost/asio/bind_executor.hpp>

#include <algorithm>
#include <map>
#include <utility>

#include "floodgate/async/detail/associations.hpp"
#include "floodgate/async/detail/open_latch.hpp"
#include "floodgate/async/detail/post_completion.hpp"
#include "floodgate/async/retry_executor.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/core/token_bucket.hpp"

namespace floodgate::http {

namespace {

using Duration = SteadyClock::duration;
using TimePoint = SteadyClock::time_point;

/// A `Budget` as token buckets. Taking is all or nothing.
class BudgetBuckets {
 public:
  explicit BudgetBuckets(const Budget& budget) {
    add(requests_, budget.requests_per_minute, std::chrono::minutes(1));
    add(requests_, budget.requests_per_day, std::chrono::hours(24));
    add(cost_, budget.cost_per_minute, std::chrono::minutes(1));
    add(cost_, budget.cost_per_day, std::chrono::hours(24));
  }

  /// Takes one request and `cost` from every bucket, or nothing; else how
  /// long until they would all admit.
  Duration take(std::uint32_t cost) {
    std::vector<std::pair<TokenBucket<>*, std::uint32_t>> taken;
    Duration wait = Duration::zero();
    auto try_take = [&](TokenBucket<>& bucket, std::uint32_t n) {
      if (n == 0) return;
      if (wait > Duration::zero()) {  // already refused: only learn how long
        wait = std::max(wait, std::chrono::duration_cast<Duration>(bucket.time_until(n)));
        return;
      }
      const auto decision = bucket.check(n);
      if (decision) taken.emplace_back(&bucket, n);
      else wait = std::chrono::duration_cast<Duration>(decision.retry_after);
    };
    for (auto& bucket : requests_) try_take(*bucket, 1);
    for (auto& bucket : cost_) try_take(*bucket, cost);
    if (wait > Duration::zero()) {
      for (auto [bucket, n] : taken) bucket->refund(n);
    }
    return wait;
  }

  void refund(std::uint32_t cost) {
    for (auto& bucket : requests_) bucket->refund(1);
    if (cost > 0) {
      for (auto& bucket : cost_) bucket->refund(cost);
    }
  }

  /// The largest cost one call may have (a bucket never holds more).
  std::optional<std::uint32_t> max_cost() const { return max_cost_; }

 private:
  void add(std::vector<std::unique_ptr<TokenBucket<>>>& into, std::optional<std::uint32_t> size,
           std::chrono::nanoseconds period) {
    if (!size) return;
    if (*size == 0) throw Error("budget: a budget of 0 admits nothing; leave it unset for no budget");
    into.push_back(std::make_unique<TokenBucket<>>(Rate(*size, period), *size));
    if (&into == &cost_) max_cost_ = std::min(max_cost_.value_or(*size), *size);
  }

  std::vector<std::unique_ptr<TokenBucket<>>> requests_;
  std::vector<std::unique_ptr<TokenBucket<>>> cost_;
  std::optional<std::uint32_t> max_cost_;
};

/// "https://host:port/base/path" -> endpoint and "/base/path" (no trailing slash).
std::pair<net::Endpoint, std::string> split_base_url(const std::string& url, const std::string& provider) {
  const auto scheme_end = url.find("://");
  const auto path_start = scheme_end == std::string::npos ? std::string::npos : url.find('/', scheme_end + 3);
  try {
    auto endpoint = net::Endpoint::parse(url.substr(0, path_start));
    std::string path = path_start == std::string::npos ? std::string() : url.substr(path_start);
    while (!path.empty() && path.back() == '/') path.pop_back();
    return {std::move(endpoint), std::move(path)};
  } catch (const Error& e) {
    throw Error(fmt::format("provider {}: base_url: {}", provider, e.what()));
  }
}

}  // namespace

ApiCall ApiCall::get(std::string path) {
  ApiCall call;
  call.method = net::HttpMethod::get;
  call.path = std::move(path);
  call.idempotent = true;
  return call;
}

ApiCall ApiCall::post_json(std::string path, const nlohmann::json& json) {
  return post_bytes(std::move(path), json.dump(), "application/json");
}

ApiCall ApiCall::post_bytes(std::string path, std::string bytes, std::string content_type) {
  ApiCall call;
  call.path = std::move(path);
  call.body = net::TextBody{std::move(content_type), std::move(bytes)};
  return call;
}

ApiCall ApiCall::post_file(std::string path, std::filesystem::path file, std::string content_type) {
  ApiCall call;
  call.path = std::move(path);
  call.body = net::FileBody{std::move(content_type), std::move(file)};
  return call;
}

ApiCall ApiCall::post_form(std::string path, net::MultipartForm form) {
  ApiCall call;
  call.path = std::move(path);
  call.body = std::move(form);
  return call;
}

struct ApiKeyPool::Impl : std::enable_shared_from_this<Impl> {
  struct Provider {
    ProviderSpec spec;
    net::Endpoint endpoint;
    std::string base_path;
    BudgetBuckets budget;
  };
  struct Key {
    Provider* provider;
    Secret secret;
    BudgetBuckets budget;
  };

  Impl(boost::asio::any_io_executor executor, net::HttpsClient& client, std::vector<ProviderSpec> specs,
       ApiKeyPoolOptions pool_options)
      : io(std::move(executor)), http(client), options(pool_options), pool(options.pool), retry(io, pool, options.retry) {
    if (specs.empty()) throw Error("ApiKeyPool: no providers");
    for (auto& spec : specs) {
      if (spec.keys.empty()) throw Error(fmt::format("provider {}: no keys", spec.name));
      if (spec.auth.style != KeyAuth::Style::bearer && spec.auth.name.empty()) {
        throw Error(fmt::format("provider {}: a header or query auth needs a name", spec.name));
      }
      auto [endpoint, base_path] = split_base_url(spec.base_url, spec.name);
      BudgetBuckets budget(spec.budget);
      auto keys = std::move(spec.keys);
      providers.push_back(std::make_unique<Provider>(Provider{std::move(spec), std::move(endpoint),
                                                              std::move(base_path), std::move(budget)}));
      Provider* provider = providers.back().get();
      for (auto& key : keys) {
        if (key.id.empty()) throw Error(fmt::format("provider {}: a key without an id", provider->spec.name));
        if (by_id.contains(key.id)) throw Error(fmt::format("key {}: the id is used twice", key.id));
        by_id.emplace(key.id, std::make_unique<Key>(Key{provider, key.key, BudgetBuckets(key.budget)}));
        pool.add({key.id, ApiKey{provider->spec.name, key.key}, key.weight, true, provider->spec.tier});
      }
    }
  }

  Key* key(std::string_view id) const {
    const auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : it->second.get();
  }

  /// The run's gate: how long this key must wait for its own and its
  /// provider's budgets (zero: it may send, and the budgets are charged).
  Duration gate(const Pool::Lease& lease, std::uint32_t cost) {
    Key* k = key(lease.id());
    if (!k) return Duration::zero();  // added to pool() directly: issue() refuses it
    if (const auto wait = k->budget.take(cost); wait > Duration::zero()) return wait;
    if (const auto wait = k->provider->budget.take(cost); wait > Duration::zero()) {
      k->budget.refund(cost);
      return wait;
    }
    return Duration::zero();
  }

  /// Why `cost` can never be sent, or "" when some key's budgets can hold it.
  std::string cost_refusal(std::uint32_t cost) const {
    std::string why;
    for (const auto& [id, k] : by_id) {
      const auto own = k->budget.max_cost();
      const auto shared = k->provider->budget.max_cost();
      const auto limit = std::min(own.value_or(UINT32_MAX), shared.value_or(UINT32_MAX));
      if (cost <= limit) return {};
      why = fmt::format("cost {} exceeds every key's cost budget (key {} holds at most {})", cost, id, limit);
    }
    return why;
  }

  net::HttpRequest build(const ApiCall& call, const Key& k) const {
    const Provider& p = *k.provider;
    net::HttpRequest request;
    request.method = call.method;
    request.endpoint = p.endpoint;
    request.target = net::RequestTarget(p.base_path + call.path);
    request.headers = p.spec.headers;
    request.headers.insert(request.headers.end(), call.headers.begin(), call.headers.end());
    switch (p.spec.auth.style) {
      case KeyAuth::Style::bearer: request.headers.emplace_back("Authorization", "Bearer " + k.secret.reveal()); break;
      case KeyAuth::Style::header: request.headers.emplace_back(p.spec.auth.name, k.secret.reveal()); break;
      case KeyAuth::Style::query:
        request.target.append((call.path.find('?') == std::string::npos ? "?" : "&") + p.spec.auth.name + "=")
            .append(k.secret);
        break;
    }
    std::visit(
        [&](const auto& body) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(body)>, std::monostate>) request.body = body;
        },
        call.body);
    request.total_timeout = call.timeout;
    if (call.adapt) call.adapt(p.spec.name, request);
    return request;
  }

  template <class Done>
  void issue(const Pool::Lease& lease, const ApiCall& call, std::shared_ptr<ApiResult> last, Done done) {
    Key* k = key(lease.id());
    if (!k) return done(Outcome<ApiResult>::auth_failed("key added to the pool without an ApiKeyPool provider"));
    // Calls outlive the ApiKeyPool object (a retry may be waiting on a timer),
    // but its HTTPS client need not: once ~ApiKeyPool has run, nothing more is
    // sent, and the call ends with shut_down (a rejection: no key blamed).
    auto on_response = [self = shared_from_this(), k, id = lease.id(), last = std::move(last),
                        done = std::move(done)](std::error_code ec, net::HttpResponse response) mutable {
      if (ec) {
        if (ec == net::errc::dns_failed || ec == net::errc::connect_failed || ec == net::errc::tls_handshake_failed) {
          self->rest_provider(*k->provider, ec);
        }
        return done(net::failure_outcome<ApiResult>(ec));
      }
      const auto& provider = k->provider->spec;
      auto verdict = classify_reply(response, std::chrono::system_clock::now(), provider.classify);
      // Kept for the run's end (moved into the success, or read when the run ends otherwise): never copied.
      ApiResult& answer = *last;
      answer.status = response.status;
      answer.json = std::move(verdict.json);
      answer.body = std::move(response.body);
      answer.headers = std::move(response.headers);
      if (verdict.outcome.kind() == OutcomeKind::success) {
        if (verdict.rest && *verdict.rest > Duration::zero()) {
          // The key has nothing left until its reset: rest it now rather than be refused.
          self->pool.cooldown(id, std::chrono::duration_cast<Duration>(*verdict.rest));
          log(LogLevel::debug, "API key {} ({}) used up its rate limit; resting {} ms", id, provider.name,
              std::chrono::ceil<std::chrono::milliseconds>(*verdict.rest).count());
        }
        return done(Outcome<ApiResult>::success(std::move(answer)));
      }
      const std::string description = redact(verdict.outcome.description(), k->secret.reveal());
      log_outcome(id, provider.name, verdict, description);
      done(reclassified(verdict.outcome, description));
    };
    const bool started = open.run_if_open([&] { http.async_request(build(call, *k), std::move(on_response)); });
    if (!started) on_response(make_error_code(errc::shut_down), {});
  }

  /// Rests every key of a provider that could not be reached.
  void rest_provider(const Provider& provider, std::error_code ec) {
    if (options.unreachable_rest <= std::chrono::nanoseconds::zero()) return;
    log(LogLevel::warning, "provider {} unreachable ({}); its keys rest {} ms", provider.spec.name, ec.message(),
        std::chrono::ceil<std::chrono::milliseconds>(options.unreachable_rest).count());
    for (const auto& [id, k] : by_id) {
      if (k->provider == &provider) pool.cooldown(id, std::chrono::duration_cast<Duration>(options.unreachable_rest));
    }
  }

  /// `outcome` with `description` as its words.
  static Outcome<ApiResult> reclassified(const Outcome<>& outcome, std::string description) {
    using Result = Outcome<ApiResult>;
    switch (outcome.kind()) {
      case OutcomeKind::flood_wait: return Result::flood_wait(outcome.wait(), outcome.scope(), std::move(description));
      case OutcomeKind::not_sent: return Result::not_sent(std::move(description));
      case OutcomeKind::maybe_applied: return Result::maybe_applied(std::move(description));
      case OutcomeKind::auth_failed: return Result::auth_failed(std::move(description));
      case OutcomeKind::rejected:
      case OutcomeKind::success: break;
    }
    return Result::rejected(std::move(description), outcome.error());
  }

  static void log_outcome(const std::string& id, const std::string& provider, const Verdict& verdict,
                          const std::string& description) {
    const auto traits = verdict.outcome.traits();
    if (verdict.quota_exhausted) {
      log(LogLevel::warning, "API key {} ({}) out of quota; resting {} s ({})", id, provider,
          std::chrono::ceil<std::chrono::seconds>(verdict.outcome.wait()).count(), description);
    } else if (traits.disables) {
      log(LogLevel::warning, "API key {} ({}) rejected; disabled ({})", id, provider, description);
    } else if (traits.cools) {
      log(LogLevel::debug, "API key {} ({}) rate limited; cooling {} ms", id, provider,
          std::chrono::ceil<std::chrono::milliseconds>(verdict.outcome.wait()).count());
    }
  }

  boost::asio::any_io_executor io;
  net::HttpsClient& http;
  ApiKeyPoolOptions options;
  Pool pool;
  async::RetryExecutor<Pool> retry;
  std::vector<std::unique_ptr<Provider>> providers;
  std::map<std::string, std::unique_ptr<Key>, std::less<>> by_id;  // fixed after construction
  async::detail::OpenLatch open;  // every request starts through it; ~ApiKeyPool closes it
};

ApiKeyPool::ApiKeyPool(boost::asio::any_io_executor executor, net::HttpsClient& http,
                       std::vector<ProviderSpec> providers, ApiKeyPoolOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), http, std::move(providers), options)) {}

ApiKeyPool::~ApiKeyPool() {
  // Waits for a request being started right now; none starts after this.
  impl_->open.close();
  // A reply still on the wire may report a cooldown or a disable later: the
  // program's CooldownSink (pool().persist_to) need not outlive this object.
  // Waits for a write in progress; none starts after this.
  impl_->pool.stop_persisting();
}

ApiKeyPool::Pool& ApiKeyPool::pool() noexcept { return impl_->pool; }

std::vector<HealthSnapshot> ApiKeyPool::snapshot() const { return impl_->pool.snapshot(); }

boost::asio::any_io_executor ApiKeyPool::executor() const noexcept { return impl_->io; }

bool ApiKeyPool::quota_restored(std::string_view key_id) { return impl_->pool.clear_cooldown(key_id); }

std::string ApiKeyPool::provider_of(std::string_view key_id) const {
  const auto* k = impl_->key(key_id);
  return k ? k->provider->spec.name : std::string();
}

void ApiKeyPool::start(ApiCall call, boost::asio::any_completion_handler<Signature> handler) {
  if (auto why = impl_->cost_refusal(call.cost); !why.empty()) {
    ApiResult refused;
    refused.description = std::move(why);
    return async::detail::post_completion(impl_->io, std::move(handler), make_error_code(errc::bad_request),
                                          std::move(refused));
  }
  const auto cost = call.cost;
  auto last = std::make_shared<ApiResult>();
  typename async::RetryExecutor<Pool>::RunOptions run_options{
      .destination = {},
      .deadline = call.deadline,
      .idempotent = call.idempotent,
      .credential = std::nullopt,
      .gate = [impl = impl_.get(), cost](const Pool::Lease& lease) { return impl->gate(lease, cost); }};
  auto attempt = async::async_attempt<ApiResult>(
      [impl = impl_, call = std::move(call), last](const Pool::Lease& lease, auto done) {
        impl->issue(lease, call, last, std::move(done));
      });
  const auto associated = async::detail::associations_of(handler, impl_->io);  // the caller's cancellation too
  auto finish = associated.wrap([impl = impl_, handler = std::move(handler), last](
                            std::error_code ec, async::RunResult<ApiResult, TimePoint> run) mutable {
        ApiResult result = run.value ? std::move(*run.value) : std::move(*last);
        result.key_id = std::move(run.credential);
        result.provider = impl->key(result.key_id) ? impl->key(result.key_id)->provider->spec.name : std::string();
        result.description = std::move(run.description);
        result.earliest = run.earliest;
        result.attempts = run.attempts;
        std::move(handler)(ec, std::move(result));
      });
  impl_->retry.async_run(std::move(attempt), std::move(run_options), std::move(finish));
}

}  // namespace floodgate::http
