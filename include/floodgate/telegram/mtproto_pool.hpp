// floodgate/telegram/mtproto_pool.hpp: many MTProto sessions behind one
// `async_send`, with every Telegram flood error turned into a cooldown.
//
// An `MtprotoPool` runs one `MtprotoSession` per api_id/api_hash pair (for
// example every pair in the environment, see core/env.hpp) and puts them in a
// credential pool (core/pool.hpp) driven by the retry executor
// (async/retry_executor.hpp):
//
//   tg::TdjsonClient tdjson(io.get_executor(), tg::TdjsonLibrary::open());
//   floodgate::CooldownStore store(tg::default_sessions_root().parent_path() / "cooldowns.json");
//   tg::MtprotoPool pool(tdjson, floodgate::mtproto_apps_from(env),
//                        {.session = {.bot_token = floodgate::Secret(token)}, .store = &store});
//   pool.async_wait_ready([](std::error_code) { ... });
//
//   // May move: public data, any account gets the same answer.
//   pool.async_send({{"@type", "getMessageLinkInfo"}, {"url", "https://t.me/channel/123"}}, {},
//                   [](std::error_code ec, tg::MtprotoPool::Result r) { ... r.value, r.credential ... });
//   // Bound: sent as account2 or not at all.
//   pool.async_send(send_message_json, {.bound_to = "account2"}, token);
//
// Every reply is classified with `classify_td_response` (flood_errors.hpp):
//   - `429 retry after N`, `FLOOD_WAIT_N`, `FLOOD_PREMIUM_WAIT_N`: the session
//     cools for N seconds (plus the policy's upward-only jitter) and a movable
//     request moves at once to another session;
//   - `SLOWMODE_WAIT_N`: only (session, chat) cools; the session still serves
//     other chats, and the request moves to another session for that chat
//     (a request with no chat cools the whole session);
//   - auth failures (revoked login, 401) and sessions that cannot start
//     (corrupt folder) disable the session in the pool with the session's own
//     reason (`snapshot()`, `status_table`); the others go on;
//   - other 4xx end the request at once (bad_request, with the server's text).
// Cooldowns and disables are persisted through the CooldownStore, so a
// restarted program keeps away from a session Telegram told to wait, and a
// disabled session stays disabled until `pool().enable(id)`.
//
// A bound request (`SendOptions::bound_to`) never goes to another session:
// when its session is cooling (for the whole account, or for the request's
// chat) it completes at once with errc::all_credentials_cooling and
// `Result::earliest`; it is tried once (a transient failure ends it with
// errc::attempts_exhausted), and its flood waits and auth failures are
// reported to the pool like those of movable requests. docs/mtproto.md lists
// which requests may move.
//
// Completion signature `void(std::error_code, Result)` (any completion token).
// Each request completes exactly once. A request to a session that is still
// logging in waits for the login: call `async_wait_ready` first. Set
// `TdjsonClient::Options::request_timeout` so a session that never answers
// costs a transient failure instead of a request that never ends.
//
// The clock is `SteadyClock`, or `ManualClock` in tests (virtual cooldowns).
// Thread-safe. The TdjsonClient must outlive the pool, and the pool its
// requests: destroy it once they have completed (it closes its sessions).
#pragma once

#include <floodgate/async/detail/pending_op.hpp>
#include <floodgate/async/retry_executor.hpp>
#include <floodgate/core/cooldown_store.hpp>
#include <floodgate/core/credential.hpp>
#include <floodgate/core/error.hpp>
#include <floodgate/core/log.hpp>
#include <floodgate/core/pool.hpp>
#include <floodgate/core/retry_policy.hpp>
#include <floodgate/telegram/flood_errors.hpp>
#include <floodgate/telegram/mtproto_session.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace floodgate::telegram {

template <Clock ClockT = SteadyClock>
class BasicMtprotoPool {
 public:
  using clock_type = ClockT;
  /// The credential pool underneath: one credential per session, its payload the session.
  using CorePool = CredentialPool<MtprotoSession*, BestHealth, ClockT>;
  using time_point = typename CorePool::time_point;
  using duration = typename CorePool::duration;
  /// The reply (`value`, never an error object) or why there is none.
  using Result = async::RunResult<nlohmann::json, time_point>;
  using Signature = void(std::error_code, Result);

  struct Options {
    /// Applied to every session: sessions_root, bot_token, prompt, on_update, ...
    MtprotoSession::Options session;
    /// Attempts, how long a movable request may wait for a cooling pool, jitter.
    RetryPolicy retry;
    PoolOptions pool;
    /// Cooldowns and disables survive a restart; must outlive the pool.
    CooldownStore* store = nullptr;
    ClockT clock{};
  };

  struct SendOptions {
    /// The chat the request targets, for slow-mode cooldowns. Empty: the
    /// request's integer "chat_id", if it has one.
    std::string destination;
    /// Send as this session only (see docs/mtproto.md for which requests must).
    std::optional<std::string> bound_to;
    /// A movable request never waits for a cooling pool past this.
    std::optional<time_point> deadline;
  };

  /// Starts one session per credential (id = credential id, which names its
  /// folder). Throws floodgate::Error for an api_id beyond 32 bits, a
  /// duplicate or invalid id.
  BasicMtprotoPool(TdjsonClient& tdjson, std::vector<Credential<MtprotoApp>> credentials, Options options = {})
      : state_(std::make_shared<State>(tdjson, options)) {
    state_->start(std::move(credentials), std::move(options.session));
  }

  BasicMtprotoPool(const BasicMtprotoPool&) = delete;
  BasicMtprotoPool& operator=(const BasicMtprotoPool&) = delete;

  /// Closes the sessions here and now, while the TdjsonClient surely lives:
  /// callbacks still queued may hold the pool's state, never its sessions.
  ~BasicMtprotoPool() { state_->close_sessions(); }

  /// Sends `request` through the pool; see the header comment.
  template <class CompletionToken>
  auto async_send(nlohmann::json request, SendOptions options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [state = state_](auto handler, nlohmann::json body, SendOptions send_options) {
          if (send_options.destination.empty()) send_options.destination = chat_of(body);
          if (send_options.bound_to) {
            State::send_bound(state, std::move(body), std::move(send_options), Handler(std::move(handler)));
          } else {
            State::send_movable(state, std::move(body), std::move(send_options), std::move(handler));
          }
        },
        token, std::move(request), std::move(options));
  }

  /// Completes once every session is ready or disabled: with no error if at
  /// least one is ready, else errc::all_credentials_disabled (no_credentials
  /// for an empty pool). Signature void(std::error_code).
  template <class CompletionToken>
  auto async_wait_ready(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [state = state_](auto handler) { State::wait_ready(state, std::move(handler)); }, token);
  }

  /// Every session's health record, in the order of the credentials. The
  /// counters include bound requests, which the core pool does not see.
  std::vector<HealthSnapshot> snapshot() const {
    auto records = state_->pool.snapshot();
    for (auto& record : records) state_->add_bound_counts(record);
    return records;
  }
  std::optional<HealthSnapshot> snapshot(std::string_view id) const {
    auto record = state_->pool.snapshot(id);
    if (record) state_->add_bound_counts(*record);
    return record;
  }

  /// The session with this id, or nullptr.
  MtprotoSession* session(std::string_view id) const { return state_->find(id); }

  /// The credential pool, for administration: enable, disable, clear_cooldown.
  CorePool& pool() noexcept { return state_->pool; }

 private:
  using Handler = boost::asio::any_completion_handler<Signature>;
  using Lease = typename CorePool::Lease;
  using Outcome = floodgate::Outcome<nlohmann::json>;
  using Done = std::function<void(Outcome)>;

  static std::string chat_of(const nlohmann::json& request) {
    const auto chat = request.is_object() ? request.find("chat_id") : request.end();
    return chat != request.end() && chat->is_number_integer() ? std::to_string(chat->get<std::int64_t>())
                                                              : std::string();
  }

  // Everything a request needs, shared with the requests in flight so that
  // destroying the pool never leaves one without its sessions.
  struct State : std::enable_shared_from_this<State> {
    State(TdjsonClient& client, const Options& options)
        : tdjson(client),
          store(options.store),
          pool(options.pool, options.clock),
          executor(client.get_executor(), pool, options.retry) {
      if (store) pool.persist_to(*store);
    }

    void start(std::vector<Credential<MtprotoApp>> credentials, MtprotoSession::Options session_options) {
      for (std::size_t i = 0; i < credentials.size(); ++i) {  // all checked before any session starts
        const auto& credential = credentials[i];
        if (credential.payload.api_id > std::numeric_limits<std::int32_t>::max()) {
          throw Error(fmt::format("credential {}: api_id does not fit in 32 bits", credential.id));
        }
        for (std::size_t j = 0; j < i; ++j) {
          if (credentials[j].id == credential.id) throw Error(fmt::format("credential {}: duplicate id", credential.id));
        }
      }
      for (auto& credential : credentials) {
        auto options = session_options;
        // The pool learns of a session disabled at any time (a login revoked
        // by an update, not only in a reply), with the session's own reason.
        options.on_state_change = [weak = this->weak_from_this(), id = credential.id,
                                   user = std::move(options.on_state_change)](MtprotoSession::State s,
                                                                              const std::string& reason) {
          if (auto self = weak.lock(); self && s == MtprotoSession::State::disabled) self->pool.disable(id, reason);
          if (user) user(s, reason);
        };
        auto session = std::make_unique<MtprotoSession>(
            tdjson, credential.id,
            MtprotoCredentials{static_cast<std::int32_t>(credential.payload.api_id), credential.payload.api_hash},
            std::move(options));
        pool.add({credential.id, session.get(), credential.weight, credential.enabled});
        // A session can disable itself in its constructor (its folder is a
        // file), before the pool knew it: its state change then found no credential.
        if (session->state() == MtprotoSession::State::disabled) pool.disable(credential.id, session->disabled_reason());
        restore_slow_mode(credential.id);
        sessions.push_back(std::move(session));
      }
    }

    void close_sessions() {
      auto closing = std::move(sessions);
      sessions.clear();
    }

    MtprotoSession* find(std::string_view id) const {
      for (const auto& session : sessions) {
        if (session->id() == id) return session.get();
      }
      return nullptr;
    }

    template <class CompletionHandler>
    static void send_movable(std::shared_ptr<State> self, nlohmann::json request, SendOptions options,
                             CompletionHandler handler) {
      auto& executor = self->executor;
      auto attempt = async::async_attempt<nlohmann::json>(
          [self = std::move(self), request = std::move(request), chat = options.destination](const Lease& lease,
                                                                                             Done done) {
            self->attempt(*lease.payload(), request, chat, std::move(done));
          });
      executor.async_run(std::move(attempt), {std::move(options.destination), options.deadline}, std::move(handler));
    }

    static void send_bound(std::shared_ptr<State> self, nlohmann::json request, SendOptions options, Handler handler) {
      auto completion = async::detail::make_pending_op<std::error_code, Result>(std::move(handler),
                                                                                 self->tdjson.get_executor());
      Result result;
      result.credential = *options.bound_to;
      MtprotoSession* session = self->find(*options.bound_to);
      if (!session) {
        result.description = fmt::format("no session named \"{}\" in the pool", *options.bound_to);
        return completion->complete(make_error_code(errc::unknown_credential), std::move(result));
      }
      if (auto refused = self->refuse_bound(*session, options, result)) {
        return completion->complete(refused, std::move(result));
      }
      result.attempts = 1;
      auto finish = [self, session, chat = options.destination, completion = std::shared_ptr(std::move(completion)),
                     result = std::move(result)](Outcome outcome) mutable {
        result.description = outcome.description();
        const auto ec = self->report_bound(*session, chat, std::move(outcome), result);
        completion->complete(ec, std::move(result));
      };
      self->attempt(*session, std::move(request), options.destination, std::move(finish));
    }

    template <class CompletionHandler>
    static void wait_ready(std::shared_ptr<State> self, CompletionHandler handler) {
      struct Waiting {
        std::unique_ptr<async::detail::PendingOp<std::error_code>> completion;
        std::size_t left = 0;
        bool any_ready = false;
        std::mutex mutex;
      };
      auto waiting = std::make_shared<Waiting>();
      waiting->completion = async::detail::make_pending_op<std::error_code>(std::move(handler), self->tdjson.get_executor());
      waiting->left = self->sessions.size();
      if (waiting->left == 0) return waiting->completion->complete(make_error_code(errc::no_credentials));
      for (const auto& session : self->sessions) {
        // Weak: a session that never finishes its login must not keep the pool alive.
        session->async_wait_ready([weak = std::weak_ptr(self), waiting, session = session.get()](std::error_code ec) {
          // Disabled in the pool before the caller hears "ready", so its snapshot already says so.
          const auto alive = weak.lock();
          if (alive && ec && ec != errc::shut_down) alive->pool.disable(session->id(), session->disabled_reason());
          const bool usable = !ec && alive && alive->pool.snapshot(session->id())->state != CredentialState::disabled;
          std::lock_guard lock(waiting->mutex);
          waiting->any_ready = waiting->any_ready || usable;
          if (--waiting->left > 0) return;
          waiting->completion->complete(waiting->any_ready ? std::error_code{}
                                                           : make_error_code(errc::all_credentials_disabled));
        });
      }
    }

    // One attempt on one session: wait for its login, send, classify the reply.
    void attempt(MtprotoSession& session, nlohmann::json request, std::string chat, Done done) {
      session.async_wait_ready([self = this->shared_from_this(), &session, request = std::move(request),
                                chat = std::move(chat), done = std::move(done)](std::error_code ec) mutable {
        if (ec) return done(self->classify(session, chat, ec, nullptr));
        session.async_send(std::move(request), [self, &session, chat = std::move(chat), done = std::move(done)](
                                                   std::error_code send_ec, nlohmann::json reply) {
          done(self->classify(session, chat, send_ec, std::move(reply)));
        });
      });
    }

    Outcome classify(MtprotoSession& session, const std::string& chat, std::error_code ec, nlohmann::json reply) {
      if (ec == errc::deadline_exceeded) return Outcome::transient("TDLib did not answer within the request timeout");
      // Not the session's fault and not worth a retry anywhere: the program is closing.
      if (ec == errc::shut_down) return Outcome::bad_request("the TDLib client or the session was shut down");
      if (ec) {
        return session.state() == MtprotoSession::State::disabled ? Outcome::auth_failed(session.disabled_reason())
                                                                  : Outcome::transient(ec.message());
      }
      const auto error = classify_td_response(reply);
      if (!error) return Outcome::success(std::move(reply));
      switch (error->kind) {
        case TdErrorKind::flood_wait: {
          const bool scoped = error->chat_scoped && !chat.empty();
          log(LogLevel::info, "mtproto {}: {}; cooling for {}s{}", session.id(), error->message,
              error->retry_after.count(), scoped ? fmt::format(" for chat {}", chat) : std::string());
          if (scoped) note_slow_mode(session.id(), chat, error->retry_after);
          return Outcome::flood_wait(error->retry_after, scoped ? CooldownScope::destination : CooldownScope::credential,
                                     error->message);
        }
        case TdErrorKind::auth_failed: {
          // The session disabled itself on this reply; its reason is the one to show.
          auto reason = session.disabled_reason();
          return Outcome::auth_failed(reason.empty() ? error->message : std::move(reason));
        }
        case TdErrorKind::bad_request: return Outcome::bad_request(error->message);
        case TdErrorKind::transient: return Outcome::transient(error->message);
      }
      return Outcome::transient(error->message);
    }

    // Why a bound request cannot be sent now, filling `result`; empty if it can.
    std::error_code refuse_bound(const MtprotoSession& session, const SendOptions& options, Result& result) {
      const auto record = pool.snapshot(session.id());
      if (!record || record->state == CredentialState::disabled) {
        result.description = record ? record->disabled_reason : std::string();
        return make_error_code(errc::all_credentials_disabled);
      }
      const auto now = pool.clock().now();
      std::optional<time_point> until;
      if (record->state == CredentialState::cooling || record->state == CredentialState::ejected) {
        until = now + std::chrono::duration_cast<duration>(record->cooldown_remaining);
      }
      if (auto chat_until = slow_mode_until(session.id(), options.destination, now)) {
        until = until ? std::max(*until, *chat_until) : *chat_until;
      }
      if (until) {
        result.earliest = until;
        result.description = fmt::format("{} is cooling down; a bound request does not move", session.id());
        return make_error_code(errc::all_credentials_cooling);
      }
      if (options.deadline && now >= *options.deadline) return make_error_code(errc::deadline_exceeded);
      return {};
    }

    // What a bound request's outcome does to the pool, and the error it ends with.
    std::error_code report_bound(const MtprotoSession& session, const std::string& chat, Outcome outcome,
                                 Result& result) {
      count_bound(session.id(), outcome.kind());
      switch (outcome.kind()) {
        case OutcomeKind::success:
          result.value.emplace(std::move(outcome).value());
          return {};
        case OutcomeKind::flood_wait:
          if (outcome.scope() == CooldownScope::destination) {
            pool.cooldown(session.id(), chat, outcome.wait());
          } else {
            pool.cooldown(session.id(), outcome.wait());
          }
          result.earliest = pool.clock().now() + std::chrono::duration_cast<duration>(outcome.wait());
          return make_error_code(errc::all_credentials_cooling);
        case OutcomeKind::auth_failed:
          pool.disable(session.id(), outcome.description());
          return make_error_code(errc::auth_failed);
        case OutcomeKind::bad_request: return make_error_code(errc::bad_request);
        case OutcomeKind::transient: return make_error_code(errc::attempts_exhausted);
      }
      return make_error_code(errc::attempts_exhausted);
    }

    // Bound requests bypass the core pool's leases, so their counts are kept
    // here and added to its snapshots.
    struct BoundCounts {
      std::uint64_t requests = 0, successes = 0, failures = 0, bad_requests = 0, flood_waits = 0;
    };
    void count_bound(const std::string& id, OutcomeKind kind) {
      std::lock_guard lock(bound_mutex);
      auto& counts = bound_counts[id];
      ++counts.requests;
      switch (kind) {
        case OutcomeKind::success: ++counts.successes; break;
        case OutcomeKind::flood_wait: ++counts.flood_waits; break;
        case OutcomeKind::bad_request: ++counts.bad_requests; break;
        case OutcomeKind::auth_failed:
        case OutcomeKind::transient: ++counts.failures; break;
      }
    }
    void add_bound_counts(HealthSnapshot& record) const {
      std::lock_guard lock(bound_mutex);
      const auto it = bound_counts.find(record.id);
      if (it == bound_counts.end()) return;
      record.requests += it->second.requests;
      record.successes += it->second.successes;
      record.failures += it->second.failures;
      record.bad_requests += it->second.bad_requests;
      record.flood_waits += it->second.flood_waits;
    }

    // Slow-mode cooldowns per (session, chat), for bound requests: the core
    // pool keeps its own for the movable ones, but answers only "which
    // session may serve this chat", never "may this one".
    void note_slow_mode(const std::string& id, const std::string& chat, std::chrono::seconds wait) {
      std::lock_guard lock(bound_mutex);
      auto& until = slow_mode[{id, chat}];
      until = std::max(until, pool.clock().now() + std::chrono::duration_cast<duration>(wait));
    }
    // Slow-mode cooldowns persisted by an earlier run.
    void restore_slow_mode(const std::string& id) {
      const auto entry = store ? store->find(id) : std::nullopt;
      if (!entry) return;
      const auto now = pool.clock().now();
      const auto wall = pool.clock().wall_now();
      std::lock_guard lock(bound_mutex);
      for (const auto& [chat, until] : entry->scoped) {
        slow_mode[{id, chat}] = now + std::chrono::duration_cast<duration>(until - wall);
      }
    }
    std::optional<time_point> slow_mode_until(const std::string& id, const std::string& chat, time_point now) {
      if (chat.empty()) return std::nullopt;
      std::lock_guard lock(bound_mutex);
      std::erase_if(slow_mode, [&](const auto& entry) { return entry.second <= now; });
      const auto it = slow_mode.find({id, chat});
      return it == slow_mode.end() ? std::nullopt : std::optional(it->second);
    }

    TdjsonClient& tdjson;
    CooldownStore* store;
    CorePool pool;
    async::RetryExecutor<CorePool> executor;
    std::vector<std::unique_ptr<MtprotoSession>> sessions;  // fixed after start()
    mutable std::mutex bound_mutex;  // guards the two maps below
    std::map<std::string, BoundCounts, std::less<>> bound_counts;
    std::map<std::pair<std::string, std::string>, time_point> slow_mode;
  };

  std::shared_ptr<State> state_;
};

/// The pool on the steady clock: what programs use.
using MtprotoPool = BasicMtprotoPool<SteadyClock>;

}  // namespace floodgate::telegram
