#include "floodgate/telegram/bot_pool.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <map>
#include <mutex>
#include <utility>

#include "floodgate/async/detail/post_completion.hpp"
#include "floodgate/async/retry_executor.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

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

/// Bot API method names are case-insensitive.
bool method_starts_with(std::string_view method, std::string_view lowercase_prefix) {
  return method.size() >= lowercase_prefix.size() &&
         std::equal(lowercase_prefix.begin(), lowercase_prefix.end(), method.begin(),
                    [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
}

/// Whether repeating `method` after a lost answer is harmless: reads, edits,
/// deletes and settings are; anything that creates a message (send*, copy*,
/// forward*) or an unknown method is not.
bool is_idempotent(std::string_view method) {
  for (std::string_view prefix : {"get", "edit", "delete", "set", "answer", "pin", "unpin", "sendchataction"}) {
    if (method_starts_with(method, prefix)) return true;
  }
  return false;
}

/// Telegram refuses an edit that changes nothing; for the caller (and for an
/// edit repeated after a lost answer) the message shows what was asked.
bool is_not_modified(const Outcome<nlohmann::json>& outcome) {
  return outcome.kind() == OutcomeKind::rejected &&
         outcome.description().find("message is not modified") != std::string::npos;
}

/// Points `call` at `chat` (a group that became a supergroup moved there).
void readdress(BotPool::Call& call, std::int64_t chat) {
  if (auto* params = std::get_if<nlohmann::json>(&call.body)) {
    (*params)["chat_id"] = chat;
  } else {
    std::get<SendDocumentParams>(call.body).chat_id = chat;
  }
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
  /// chat pass freely. The retry executor's gate.
  Duration gate(const Pool::Lease& lease) {
    const auto chat = parse_chat(lease.destination());
    Token* t = chat ? token(lease.id()) : nullptr;
    if (!t) return Duration::zero();  // no chat, or no client (issue() reports that)
    if (options.shared_limits) {
      const auto shared = options.shared_limits(lease.id(), *chat);
      if (shared > Duration::zero()) return std::min<Duration>(shared, std::chrono::hours(1));
    }
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

  /// Sends `call` with token `id`, following a group's move to a supergroup
  /// once: a 400 with migrate_to_chat_id sends the call again to the new chat
  /// (same token, same attempt), and `migrated` keeps the new id for the
  /// call's later attempts and its result. `call` outlives the attempt (the
  /// retry executor holds it), so only the rare re-addressed call is copied.
  template <class Handler>
  void issue_following_migration(std::string id, const Call& call, std::shared_ptr<std::atomic<std::int64_t>> migrated,
                                 Handler handler) {
    if (const auto chat = migrated->load()) return issue_readdressed(id, call, chat, std::move(handler));
    issue(id, call, [this, self = shared_from_this(), id, &call, migrated,
                     handler = std::move(handler)](BotApiResponse response) mutable {
      const auto to = response.error ? response.error->migrate_to_chat_id : std::nullopt;
      if (!to || *to == 0) return handler(std::move(response));
      log(LogLevel::info, "chat moved to {}; sending there", *to);
      migrated->store(*to);
      issue_readdressed(id, call, *to, std::move(handler));
    });
  }

  template <class Handler>
  void issue_readdressed(std::string_view id, const Call& call, std::int64_t chat, Handler handler) {
    Call moved = call;
    readdress(moved, chat);
    issue(id, moved, std::move(handler));
  }

  /// Logs what an outcome does to the token (the pool's lease records it).
  static void log_outcome(std::string_view id, std::optional<std::int64_t> chat, const Outcome<nlohmann::json>& outcome) {
    const auto traits = outcome.traits();
    if (traits.disables) {
      log(LogLevel::warning, "bot token {} rejected ({}); disabled", id, outcome.description());
    } else if (traits.cools) {
      const auto seconds = std::chrono::ceil<std::chrono::seconds>(outcome.wait()).count();
      if (outcome.scope() == CooldownScope::destination && chat) {
        log(LogLevel::info, "bot token {} flood wait {}s in chat {}", id, seconds, *chat);
      } else {
        log(LogLevel::info, "bot token {} flood wait {}s", id, seconds);
      }
    }
  }

  boost::asio::any_io_executor io;
  BotPoolOptions options;
  Pool pool;
  async::RetryExecutor<Pool> retry;
  std::map<std::string, std::unique_ptr<Token>, std::less<>> tokens;  // fixed after construction
};

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
  if (owner && !impl_->tokens.contains(*owner)) {
    return async::detail::post_completion(impl_->io, std::move(handler),
                                                     make_error_code(errc::unknown_credential), BotPoolResult{});
  }
  const auto chat = chat_of(call);
  const bool idempotent = call.repeat_if_maybe_applied || is_idempotent(call.method);
  const bool edit = method_starts_with(call.method, "edit");
  auto migrated = std::make_shared<std::atomic<std::int64_t>>(0);  // 0: the chat has not moved
  auto attempt = async::async_attempt<nlohmann::json>(
      [impl = impl_, call = std::move(call), chat, edit, migrated](const Pool::Lease& lease, auto done) {
        impl->issue_following_migration(
            lease.id(), call, migrated,
            [chat, edit, id = lease.id(), done = std::move(done)](BotApiResponse response) mutable {
              auto outcome = classify(std::move(response), chat.has_value());
              if (edit && is_not_modified(outcome)) outcome = Outcome<nlohmann::json>::success(true);
              Impl::log_outcome(id, chat, outcome);
              done(std::move(outcome));
            });
      });
  // The retry executor completes on the executor bound here, never inside
  // async_run, so the result can go straight to the handler, without a second post.
  const auto handler_executor = boost::asio::get_associated_executor(handler, impl_->io);
  auto finish = boost::asio::bind_executor(
      handler_executor,
      [handler = std::move(handler), migrated](std::error_code ec,
                                              async::RunResult<nlohmann::json, TimePoint> run) mutable {
        BotPoolResult result;
        if (const auto moved_to = migrated->load()) result.migrated_to_chat_id = moved_to;
        if (run.value) result.result = std::move(*run.value);
        result.token_id = std::move(run.credential);
        result.description = std::move(run.description);
        result.earliest = run.earliest;
        result.attempts = run.attempts;
        std::move(handler)(ec, std::move(result));
      });
  impl_->retry.async_run(std::move(attempt),
                         {.destination = chat ? std::to_string(*chat) : std::string(),
                          .idempotent = idempotent,
                          .credential = std::move(owner)},
                         std::move(finish));
}

}  // namespace floodgate::telegram
