#include "floodgate/telegram/bot_pool.hpp"

#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <map>
#include <mutex>
#include <utility>

#include "floodgate/async/retry_executor.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "post_completion.hpp"

namespace floodgate::telegram {

namespace {

using TimePoint = SteadyClock::time_point;
using Duration = SteadyClock::duration;

/// The chat a call is addressed to: its limits and scoped cooldowns apply.
std::optional<std::int64_t> chat_of(const BotPool::Call& call) {
  if (const auto* params = std::get_if<nlohmann::json>(&call.body)) {
    const auto it = params->find("chat_id");
    if (it == params->end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
  }
  return std::get<SendDocumentParams>(call.body).chat_id;
}

std::optional<std::int64_t> parse_chat(std::string_view destination) {
  std::int64_t chat = 0;
  const auto [end, ec] = std::from_chars(destination.data(), destination.data() + destination.size(), chat);
  if (ec != std::errc() || end != destination.data() + destination.size()) return std::nullopt;
  return chat;
}

}  // namespace

std::optional<SentMessage> BotPoolResult::sent() const {
  const auto message = Message::from_json(result);
  if (!message) return std::nullopt;
  return SentMessage{token_id, message->chat_id, message->message_id};
}

struct BotPool::Impl : std::enable_shared_from_this<Impl> {
  struct Token {
    BotApiClient client;
    std::mutex mutex;  // guards limits
    LimitSet<std::int64_t> limits;
  };

  Impl(boost::asio::any_io_executor executor, net::HttpsClient& http, std::vector<Credential<BotToken>> credentials,
       BotPoolOptions pool_options)
      : io(std::move(executor)),
        options(std::move(pool_options)),
        pool(options.pool),
        retry(io, pool, options.retry) {
    for (auto& credential : credentials) {
      auto token = std::unique_ptr<Token>(new Token{BotApiClient(http, options.endpoint, credential.payload.token), {},
                                                    telegram_bot_limits(SteadyClock{}, options.limits)});
      const std::string id = credential.id;
      pool.add(std::move(credential));  // throws on a duplicate id before the token is kept
      tokens.emplace(id, std::move(token));
    }
  }

  /// The token's client and limits; null for a credential added to `pool()` directly, which has none.
  Token* token(std::string_view id) {
    const auto it = tokens.find(id);
    return it == tokens.end() ? nullptr : it->second.get();
  }

  /// How long the lease's token must wait before it may send (zero: it may
  /// send now, and the send is counted by its limits). Calls addressed to no
  /// chat pass freely. The retry executor's gate, and the owner-bound calls'.
  Duration gate(const Pool::Lease& lease) {
    const auto chat = parse_chat(lease.destination());
    Token* t = chat ? token(lease.id()) : nullptr;
    if (!t) return Duration::zero();  // no chat, or no client (issue() reports that)
    std::lock_guard lock(t->mutex);
    const auto decision = t->limits.try_acquire(*chat);
    if (decision) return Duration::zero();
    // A limit no waiting satisfies (a zero rate) parks the token for an hour rather than forever.
    return std::min<Duration>(decision.retry_after, std::chrono::hours(1));
  }

  /// Sends `call` with token `id`; `handler(BotApiResponse)` runs once.
  template <class Handler>
  void issue(std::string_view id, const Call& call, Handler handler) {
    Token* t = token(id);
    if (!t) {
      BotApiResponse unusable;
      unusable.error = BotApiError{401, "credential added to the pool without a BotPool client", {}, {}};
      return handler(std::move(unusable));
    }
    auto on_response = [handler = std::move(handler)](std::error_code, BotApiResponse response) mutable {
      handler(std::move(response));
    };
    if (const auto* params = std::get_if<nlohmann::json>(&call.body)) {
      t->client.async_call(call.method, *params, std::move(on_response));
    } else {
      t->client.async_send_document(std::get<SendDocumentParams>(call.body), std::move(on_response));
    }
  }

  /// Logs what an outcome does to the token (the pool's lease records it).
  static void log_outcome(std::string_view id, std::optional<std::int64_t> chat, const Outcome<nlohmann::json>& outcome) {
    if (outcome.kind() == OutcomeKind::auth_failed) {
      log(LogLevel::warning, "bot token {} rejected ({}); disabled", id, outcome.description());
    } else if (outcome.kind() == OutcomeKind::flood_wait) {
      if (outcome.scope() == CooldownScope::destination && chat) {
        log(LogLevel::info, "bot token {} flood wait {}s in chat {}", id, outcome.wait().count(), *chat);
      } else {
        log(LogLevel::info, "bot token {} flood wait {}s", id, outcome.wait().count());
      }
    }
  }

  boost::asio::any_io_executor io;
  BotPoolOptions options;
  Pool pool;
  async::RetryExecutor<Pool> retry;
  std::map<std::string, std::unique_ptr<Token>, std::less<>> tokens;  // fixed after construction
};

namespace detail {

/// An owner-bound call: one token only. Each attempt leases that token with
/// `acquire_id`, so the pool counts it (requests, latency, flood waits, auth
/// failures) exactly as it counts rotated calls, and never hands it out while
/// it cools. Unlike a rotated call it never moves: a flood wait ends it.
class OwnerBoundCall : public std::enable_shared_from_this<OwnerBoundCall> {
 public:
  using Handler = boost::asio::any_completion_handler<BotPool::Signature>;

  OwnerBoundCall(std::shared_ptr<BotPool::Impl> impl, std::string token_id, BotPool::Call call, Handler handler)
      : impl_(std::move(impl)),
        token_id_(std::move(token_id)),
        call_(std::move(call)),
        chat_(chat_of(call_)),
        destination_(chat_ ? std::to_string(*chat_) : std::string()),
        handler_(std::move(handler)),
        schedule_(impl_->options.retry),
        timer_(impl_->io) {
    result_.token_id = token_id_;
  }

  void step() {
    if (!schedule_.attempts_left()) return finish(errc::attempts_exhausted);
    auto acquired = impl_->pool.acquire_id(token_id_, destination_);
    if (!acquired) {
      // The token's own limiter pauses it (rate_limited): worth a short wait, as
      // for rotated calls. A flood wait or an ejection: the call ends now.
      const auto now = impl_->pool.clock().now();
      if (acquired.error() == errc::rate_limited) return pause_or_end(*acquired.earliest(), now);
      if (acquired.error() == errc::all_credentials_cooling) return cooling_until(*acquired.earliest());
      return finish(acquired.error());  // unknown_credential (removed from pool()), all_credentials_disabled
    }
    lease_.emplace(std::move(acquired).take());
    if (const auto pause = impl_->gate(*lease_); pause > Duration::zero()) {
      const auto now = impl_->pool.clock().now();
      std::exchange(lease_, std::nullopt)->defer(pause);  // rotated calls skip the token meanwhile
      return pause_or_end(now + pause, now);
    }
    schedule_.count_attempt();
    result_.attempts = schedule_.attempts();
    impl_->issue(token_id_, call_,
                 [self = shared_from_this()](BotApiResponse response) { self->on_response(std::move(response)); });
  }

 private:
  void on_response(BotApiResponse response) {
    auto outcome = classify(std::move(response), chat_.has_value());
    auto lease = std::exchange(lease_, std::nullopt);
    result_.description = outcome.description();
    BotPool::Impl::log_outcome(token_id_, chat_, outcome);
    switch (outcome.kind()) {
      case OutcomeKind::success:
        lease->success();
        result_.result = std::move(outcome).value();
        return finish({});
      case OutcomeKind::flood_wait: {
        const auto wait = std::chrono::duration_cast<Duration>(schedule_.flood_cooldown(outcome.wait()));
        lease->flood_wait(wait, outcome.scope());
        return cooling_until(impl_->pool.clock().now() + wait);  // never moved to another token
      }
      case OutcomeKind::auth_failed:
        lease->failure(FailureKind::auth, outcome.description());
        return finish(errc::auth_failed);
      case OutcomeKind::bad_request:
        lease->failure(FailureKind::bad_request);
        return finish(errc::bad_request);
      case OutcomeKind::transient:
        lease->failure(FailureKind::transient);
        return wait(std::chrono::duration_cast<Duration>(schedule_.next_backoff()));
    }
  }

  /// Waits for the token's limiter within the policy's `max_wait`; past it, ends as cooling.
  void pause_or_end(TimePoint usable_at, TimePoint now) {
    if (usable_at - now > impl_->options.retry.max_wait) return cooling_until(usable_at);
    wait(usable_at - now);
  }

  void wait(Duration pause) {
    timer_.expires_after(pause);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code) { self->step(); });
  }

  void cooling_until(TimePoint earliest) {
    result_.earliest = earliest;
    finish(errc::all_credentials_cooling);
  }

  void finish(std::error_code ec) {
    detail::post_completion<BotPool::Signature>(impl_->io, std::move(handler_), ec, std::move(result_));
  }

  std::shared_ptr<BotPool::Impl> impl_;
  std::string token_id_;
  BotPool::Call call_;
  std::optional<std::int64_t> chat_;
  std::string destination_;  // the chat as the pool's destination: scoped cooldowns
  Handler handler_;
  RetrySchedule schedule_;
  boost::asio::steady_timer timer_;
  std::optional<BotPool::Pool::Lease> lease_;  // the attempt in flight
  BotPoolResult result_;
};

}  // namespace detail

BotPool::BotPool(boost::asio::any_io_executor executor, net::HttpsClient& http,
                 std::vector<Credential<BotToken>> tokens, BotPoolOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), http, std::move(tokens), std::move(options))) {
  impl_->retry.set_gate([impl = impl_.get()](const Pool::Lease& lease) { return impl->gate(lease); });
}

BotPool::~BotPool() = default;

BotPool::Pool& BotPool::pool() noexcept { return impl_->pool; }

std::vector<HealthSnapshot> BotPool::snapshot() const { return impl_->pool.snapshot(); }

boost::asio::any_io_executor BotPool::executor() const noexcept { return impl_->io; }

void BotPool::start(Call call, std::optional<std::string> owner, boost::asio::any_completion_handler<Signature> handler) {
  if (owner) {
    if (!impl_->tokens.contains(*owner)) {
      return detail::post_completion<Signature>(impl_->io, std::move(handler), make_error_code(errc::unknown_credential),
                                                BotPoolResult{});
    }
    return std::make_shared<detail::OwnerBoundCall>(impl_, std::move(*owner), std::move(call), std::move(handler))->step();
  }

  const auto chat = chat_of(call);
  auto attempt = async::async_attempt<nlohmann::json>(
      [impl = impl_, call = std::move(call), chat](const Pool::Lease& lease, auto done) {
        impl->issue(lease.id(), call,
                    [impl, chat, id = lease.id(), done = std::move(done)](BotApiResponse response) mutable {
                      auto outcome = classify(std::move(response), chat.has_value());
                      Impl::log_outcome(id, chat, outcome);
                      done(std::move(outcome));
                    });
      });
  // The retry executor completes on the executor bound here, never inside
  // async_run, so the result can go straight to the handler, without a second post.
  const auto handler_executor = boost::asio::get_associated_executor(handler, impl_->io);
  auto finish = boost::asio::bind_executor(
      handler_executor,
      [handler = std::move(handler)](std::error_code ec, async::RunResult<nlohmann::json, TimePoint> run) mutable {
        BotPoolResult result;
        if (run.value) result.result = std::move(*run.value);
        result.token_id = std::move(run.credential);
        result.description = std::move(run.description);
        result.earliest = run.earliest;
        result.attempts = run.attempts;
        std::move(handler)(ec, std::move(result));
      });
  impl_->retry.async_run(std::move(attempt), {.destination = chat ? std::to_string(*chat) : std::string()},
                         std::move(finish));
}

}  // namespace floodgate::telegram
