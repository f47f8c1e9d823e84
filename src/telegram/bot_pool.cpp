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

  /// How long `id` must wait before sending to `chat` (zero: it may send now, and the send is counted).
  Duration admit(std::string_view id, std::int64_t chat) {
    Token* t = token(id);
    if (!t) return Duration::zero();  // issue() reports it
    std::lock_guard lock(t->mutex);
    const auto decision = t->limits.try_acquire(chat);
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

  /// Remembers a per-chat cooldown so owner-bound calls honour it too, and logs every flood wait.
  void note(std::string_view id, std::optional<std::int64_t> chat, const Outcome<nlohmann::json>& outcome) {
    if (outcome.kind() == OutcomeKind::auth_failed) {
      log(LogLevel::warning, "bot token {} rejected ({}); disabled", id, outcome.description());
    }
    if (outcome.kind() != OutcomeKind::flood_wait) return;
    if (outcome.scope() == CooldownScope::destination && chat) {
      log(LogLevel::info, "bot token {} flood wait {}s in chat {}", id, outcome.wait().count(), *chat);
      const auto now = pool.clock().now();
      std::lock_guard lock(chat_cooldowns_mutex);
      std::erase_if(chat_cooldowns, [now](const auto& entry) { return entry.second <= now; });
      chat_cooldowns[{std::string(id), *chat}] = now + outcome.wait();
    } else {
      log(LogLevel::info, "bot token {} flood wait {}s", id, outcome.wait().count());
    }
  }

  std::optional<TimePoint> chat_cooling_until(const std::string& id, std::int64_t chat, TimePoint now) {
    std::lock_guard lock(chat_cooldowns_mutex);
    const auto it = chat_cooldowns.find({id, chat});
    if (it == chat_cooldowns.end() || it->second <= now) return std::nullopt;
    return it->second;
  }

  boost::asio::any_io_executor io;
  BotPoolOptions options;
  Pool pool;
  async::RetryExecutor<Pool> retry;
  std::map<std::string, std::unique_ptr<Token>, std::less<>> tokens;  // fixed after construction
  std::mutex chat_cooldowns_mutex;
  std::map<std::pair<std::string, std::int64_t>, TimePoint> chat_cooldowns;
};

namespace detail {

/// An owner-bound call: one token only. The core pool hands out "the best"
/// credential, not a given one, so this run checks the owner's state itself,
/// passes its limiter, and reports flood waits and auth failures to the pool.
class OwnerBoundCall : public std::enable_shared_from_this<OwnerBoundCall> {
 public:
  using Handler = boost::asio::any_completion_handler<BotPool::Signature>;

  OwnerBoundCall(std::shared_ptr<BotPool::Impl> impl, std::string token_id, BotPool::Call call, Handler handler)
      : impl_(std::move(impl)),
        token_id_(std::move(token_id)),
        call_(std::move(call)),
        chat_(chat_of(call_)),
        handler_(std::move(handler)),
        schedule_(impl_->options.retry),
        timer_(impl_->io) {
    result_.token_id = token_id_;
  }

  void step() {
    const auto now = impl_->pool.clock().now();
    const auto health = impl_->pool.snapshot(token_id_);
    if (!health) return finish(errc::unknown_credential);
    if (health->state == CredentialState::disabled) return finish(errc::all_credentials_disabled);
    const bool resting = health->state == CredentialState::cooling || health->state == CredentialState::ejected;
    if (resting && health->cooldown_remaining > std::chrono::nanoseconds::zero()) {
      return cooling_until(now + health->cooldown_remaining);
    }
    if (chat_) {
      if (const auto until = impl_->chat_cooling_until(token_id_, *chat_, now)) return cooling_until(*until);
    }
    if (!schedule_.attempts_left()) return finish(errc::attempts_exhausted);
    if (chat_) {
      if (const auto pause = impl_->admit(token_id_, *chat_); pause > Duration::zero()) {
        if (pause > impl_->options.retry.max_wait) return cooling_until(now + pause);
        return wait(pause);
      }
    }
    schedule_.count_attempt();
    result_.attempts = schedule_.attempts();
    impl_->issue(token_id_, call_,
                 [self = shared_from_this()](BotApiResponse response) { self->on_response(response); });
  }

 private:
  void on_response(const BotApiResponse& response) {
    auto outcome = classify(response, chat_.has_value());
    result_.description = outcome.description();
    impl_->note(token_id_, chat_, outcome);
    switch (outcome.kind()) {
      case OutcomeKind::success:
        result_.result = std::move(outcome).value();
        return finish({});
      case OutcomeKind::flood_wait: {
        const auto wait = outcome.wait();
        if (outcome.scope() == CooldownScope::destination && chat_) {
          impl_->pool.cooldown(token_id_, std::to_string(*chat_), wait);
        } else {
          impl_->pool.cooldown(token_id_, wait);
        }
        return cooling_until(impl_->pool.clock().now() + wait);  // never moved to another token
      }
      case OutcomeKind::auth_failed:
        impl_->pool.disable(token_id_, outcome.description());
        return finish(errc::auth_failed);
      case OutcomeKind::bad_request:
        return finish(errc::bad_request);
      case OutcomeKind::transient:
        return wait(std::chrono::duration_cast<Duration>(schedule_.next_backoff()));
    }
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
  Handler handler_;
  RetrySchedule schedule_;
  boost::asio::steady_timer timer_;
  BotPoolResult result_;
};

}  // namespace detail

BotPool::BotPool(boost::asio::any_io_executor executor, net::HttpsClient& http,
                 std::vector<Credential<BotToken>> tokens, BotPoolOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), http, std::move(tokens), std::move(options))) {
  impl_->retry.set_gate([impl = impl_.get()](const Pool::Lease& lease) {
    const auto chat = parse_chat(lease.destination());
    return chat ? impl->admit(lease.id(), *chat) : Duration::zero();
  });
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
                      auto outcome = classify(response, chat.has_value());
                      impl->note(id, chat, outcome);
                      done(std::move(outcome));
                    });
      });
  impl_->retry.async_run(
      std::move(attempt), {.destination = chat ? std::to_string(*chat) : std::string()},
      [io = impl_->io, handler = std::move(handler)](std::error_code ec,
                                                     async::RunResult<nlohmann::json, TimePoint> run) mutable {
        BotPoolResult result;
        if (run.value) result.result = std::move(*run.value);
        result.token_id = std::move(run.credential);
        result.description = std::move(run.description);
        result.earliest = run.earliest;
        result.attempts = run.attempts;
        detail::post_completion<Signature>(io, std::move(handler), ec, std::move(result));
      });
}

}  // namespace floodgate::telegram
