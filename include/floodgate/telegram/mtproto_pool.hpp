// floodgate/telegram/mtproto_pool.hpp: many MTProto sessions behind one
// `async_send`, with every Telegram flood error turned into a cooldown.
//
// An `MtprotoPool` runs one `MtprotoSession` per api_id/api_hash pair (for
// example every pair in the environment, see telegram/credentials.hpp) and puts them in a
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
// Every reply is classified with `classify_td_response` (flood_errors.hpp)
// into the library's outcomes (core/outcome.hpp), and every request, movable or
// bound, runs on the one retry executor:
//   - `429 retry after N`, `FLOOD_WAIT_N`, `FLOOD_PREMIUM_WAIT_N`: the session
//     cools for N seconds (plus the policy's upward-only jitter) and a movable
//     request moves at once to another session;
//   - `SLOWMODE_WAIT_N`: only (session, chat) cools; the session still serves
//     other chats, and the request moves to another session for that chat
//     (a request with no chat cools the whole session);
//   - auth failures (revoked login, 401) and sessions that cannot start
//     (corrupt folder) disable the session in the pool with the session's own
//     reason (`snapshot()`, `status_table`); the others go on;
//   - other 4xx end the request at once (bad_request, with the server's text);
//   - a request TDLib did not answer in time, or answered with a 5xx, may have
//     been applied: it is repeated only if it is idempotent (`SendOptions::
//     idempotent`; by default requests whose @type starts with "get", "search"
//     or "check"), and otherwise ends with errc::outcome_unknown naming the
//     session that sent it (`Result::credential`).
// Cooldowns and disables are persisted through the cooldown sink (a CooldownStore file), so a
// restarted program keeps away from a session Telegram told to wait, and a
// disabled session stays disabled until `pool().enable(id)`.
//
// A bound request (`SendOptions::bound_to`) never goes to another session:
// the executor runs it bound to that credential (`RunOptions::credential`), so
// it is counted in the pool's health records like a movable request, and its
// flood waits and auth failures act on the pool for everyone. When its session
// is cooling (for the whole account, or for the request's chat) it waits only
// within the policy's `max_wait` and the deadline, else it completes without a
// request, with errc::all_credentials_cooling and `Result::earliest`.
// docs/mtproto.md lists which requests may move.
//
// Completion signature `void(std::error_code, Result)` (any completion token).
// Each request completes exactly once. A request to a session that is still
// logging in waits for the login: call `async_wait_ready` first. Set
// `TdjsonClient::Options::request_timeout` so a session that never answers
// costs a transient failure instead of a request that never ends.
//
// The clock is `SteadyClock`, or `ManualClock` in tests (virtual cooldowns).
// Thread-safe.
//
// Lifecycle. Only a definite answer disables a session in the pool (and so
// in the store): a login that times out leaves the session `waiting` (it
// retries by itself) and one that needs a person leaves it
// `needs_user_action`; neither is persisted. Shut down with `async_close`,
// which completes once every session reported authorizationStateClosed; from
// then on the pool no longer touches the CooldownStore. The destructor of a
// pool that is still open closes its sessions and waits for them, each up to
// `session.close_timeout` (10 s by default; they close in parallel), on the
// calling thread. Teardown order: requests completed, pool (closed or
// destroyed), CooldownStore, TdjsonClient, io_context.
#pragma once

#include <floodgate/async/detail/open_latch.hpp>
#include <floodgate/async/detail/pending_op.hpp>
#include <floodgate/async/retry_executor.hpp>
#include <floodgate/core/cooldown_sink.hpp>
#include <floodgate/telegram/credentials.hpp>
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

#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
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
    CooldownSink* store = nullptr;
    ClockT clock{};
  };

  struct SendOptions {
    /// The chat the request targets, for slow-mode cooldowns. Empty: the
    /// request's integer "chat_id", if it has one.
    std::string destination;
    /// Send as this session only (see docs/mtproto.md for which requests must).
    std::optional<std::string> bound_to;
    /// A request never waits for a cooling pool past this.
    std::optional<time_point> deadline;
    /// Safe to repeat after its answer was lost. Unset: requests whose @type
    /// starts with "get", "search" or "check" are; every other request is not.
    std::optional<bool> idempotent;
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

  /// Closes the sessions here and now, while the TdjsonClient surely lives,
  /// and waits for them (bounded, see the header comment): callbacks still
  /// queued may hold the pool's state, never its sessions or the store.
  ~BasicMtprotoPool() { state_->close_sessions(); }

  /// Closes every session and completes, with no error, once TDLib reported
  /// each one closed; afterwards no session callback reaches the pool or its
  /// store, and requests end without being sent (their sessions are closed).
  /// Signature void(std::error_code). Terminal or partial cancellation ends
  /// the wait at once with errc::cancelled; the close goes on regardless.
  template <class CompletionToken>
  auto async_close(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [state = state_](auto handler) { State::close(state, std::move(handler)); }, token);
  }

  /// Sends `request` through the pool; see the header comment.
  template <class CompletionToken>
  auto async_send(nlohmann::json request, SendOptions options, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [state = state_](auto handler, nlohmann::json body, SendOptions send_options) {
          if (send_options.destination.empty()) send_options.destination = chat_of(body);
          State::send(state, std::move(body), std::move(send_options), std::move(handler));
        },
        token, std::move(request), std::move(options));
  }

  /// Completes once every session is ready, disabled, waiting (its login
  /// timed out; it keeps retrying) or needs user action: with no error if at
  /// least one is ready; else errc::deadline_exceeded if one is waiting, else
  /// errc::cancelled if one needs user action, else
  /// errc::all_credentials_disabled (no_credentials for an empty pool). Each
  /// session's `reason()` says why. Signature void(std::error_code).
  /// Cancellation (any type) ends the wait at once with errc::cancelled (==
  /// std::errc::operation_canceled) and leaves the logins going on; tell it
  /// from "needs user action" by the sessions' state().
  template <class CompletionToken>
  auto async_wait_ready(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [state = state_](auto handler) { State::wait_ready(state, std::move(handler)); }, token);
  }

  /// Every session's health record (bound requests included), in the order of the credentials.
  std::vector<HealthSnapshot> snapshot() const { return state_->pool.snapshot(); }
  std::optional<HealthSnapshot> snapshot(std::string_view id) const { return state_->pool.snapshot(id); }

  /// The session with this id, or nullptr.
  MtprotoSession* session(std::string_view id) const { return state_->find(id); }

  /// The credential pool, for administration: enable, disable, clear_cooldown.
  CorePool& pool() noexcept { return state_->pool; }

 private:
  using Lease = typename CorePool::Lease;
  using Outcome = floodgate::Outcome<nlohmann::json>;
  using Done = std::function<void(Outcome)>;

  static bool reads_only(const nlohmann::json& request) {
    const auto type = request.is_object() ? request.find("@type") : request.end();
    if (type == request.end() || !type->is_string()) return false;
    const auto& name = type->template get_ref<const std::string&>();
    return name.starts_with("get") || name.starts_with("search") || name.starts_with("check");
  }

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
        // Only a disable is persisted; waiting and needs_user_action are not.
        options.on_state_change = [weak = this->weak_from_this(), id = credential.id,
                                   user = std::move(options.on_state_change)](MtprotoSession::State s,
                                                                              const std::string& reason) {
          if (s == MtprotoSession::State::disabled) {
            if (auto self = weak.lock()) self->open.run_if_open([&] { self->pool.disable(id, reason); });
          }
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
        sessions.push_back(std::move(session));
      }
    }

    // From now on no session callback reaches the pool or the store.
    void detach() {
      open.close();
      pool.stop_persisting();  // a lease reported later (a reply after close) writes nowhere
    }

    void close_sessions() {
      detach();
      // All are asked first, so that they close in parallel; each destructor
      // then waits for its own (bounded by its close_timeout).
      for (const auto& session : sessions) session->async_close([](std::error_code) {});
      auto closing = std::move(sessions);
      sessions.clear();
    }

    template <class CompletionHandler>
    static void close(std::shared_ptr<State> self, CompletionHandler handler) {
      struct Closing {
        std::unique_ptr<async::detail::PendingOp<std::error_code>> completion;
        std::shared_ptr<State> state;  // the sessions live until all closed
        std::size_t left = 0;
        std::mutex mutex;
      };
      auto closing = std::make_shared<Closing>();
      closing->completion = async::detail::make_pending_op<std::error_code>(std::move(handler), self->tdjson.get_executor());
      closing->state = self;
      closing->left = self->sessions.size();
      if (closing->left == 0) {
        self->detach();
        return closing->completion->complete(std::error_code{});
      }
      if (auto slot = closing->completion->cancellation_slot(); slot.is_connected()) {
        // The close goes on (it cannot be undone); terminal and partial end the caller's wait.
        slot.assign([weak = std::weak_ptr(closing)](boost::asio::cancellation_type type) {
          constexpr auto ends_now = boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial;
          const auto alive = (type & ends_now) != boost::asio::cancellation_type::none ? weak.lock() : nullptr;
          if (!alive) return;
          std::lock_guard lock(alive->mutex);
          if (auto completion = std::move(alive->completion)) completion->complete(make_error_code(errc::cancelled));
        });
      }
      for (const auto& session : self->sessions) {
        session->async_close([closing](std::error_code) {
          std::lock_guard lock(closing->mutex);
          if (--closing->left > 0) return;
          closing->state->detach();
          closing->state.reset();
          if (auto completion = std::move(closing->completion)) completion->complete(std::error_code{});
        });
      }
    }

    MtprotoSession* find(std::string_view id) const {
      for (const auto& session : sessions) {
        if (session->id() == id) return session.get();
      }
      return nullptr;
    }

    template <class CompletionHandler>
    static void send(std::shared_ptr<State> self, nlohmann::json request, SendOptions options, CompletionHandler handler) {
      auto& executor = self->executor;
      const bool idempotent = options.idempotent.value_or(reads_only(request));
      auto attempt = async::async_attempt<nlohmann::json>(
          [self = std::move(self), request = std::move(request), chat = options.destination](const Lease& lease,
                                                                                             Done done) {
            self->attempt(*lease.payload(), request, chat, std::move(done));
          });
      executor.async_run(std::move(attempt),
                         {.destination = std::move(options.destination),
                          .deadline = options.deadline,
                          .idempotent = idempotent,
                          .credential = std::move(options.bound_to)},
                         std::move(handler));
    }

    template <class CompletionHandler>
    static void wait_ready(std::shared_ptr<State> self, CompletionHandler handler) {
      struct Waiting {
        std::unique_ptr<async::detail::PendingOp<std::error_code>> completion;
        std::size_t left = 0;
        bool any_ready = false;
        bool any_waiting = false;
        bool any_needs_user = false;
        std::mutex mutex;
      };
      auto waiting = std::make_shared<Waiting>();
      waiting->completion = async::detail::make_pending_op<std::error_code>(std::move(handler), self->tdjson.get_executor());
      waiting->left = self->sessions.size();
      if (waiting->left == 0) return waiting->completion->complete(make_error_code(errc::no_credentials));
      if (auto slot = waiting->completion->cancellation_slot(); slot.is_connected()) {
        // Any type: waiting has no side effect. The sessions' logins go on.
        slot.assign([weak = std::weak_ptr(waiting)](boost::asio::cancellation_type type) {
          const auto alive = type != boost::asio::cancellation_type::none ? weak.lock() : nullptr;
          if (!alive) return;
          std::lock_guard lock(alive->mutex);
          if (auto completion = std::move(alive->completion)) completion->complete(make_error_code(errc::cancelled));
        });
      }
      for (const auto& session : self->sessions) {
        // Weak: a session that never finishes its login must not keep the pool alive.
        session->async_wait_ready([weak = std::weak_ptr(self), waiting, session = session.get()](std::error_code ec) {
          bool usable = false;
          if (const auto alive = weak.lock()) {
            // Disabled in the pool before the caller hears "ready", so its
            // snapshot already says so; only a disabled session is, never
            // one that timed out (errc::deadline_exceeded: it is retrying).
            alive->open.run_if_open([&] {
              if (session->state() == MtprotoSession::State::disabled) {
                alive->pool.disable(session->id(), session->disabled_reason());
              }
              usable = !ec && alive->pool.snapshot(session->id())->state != CredentialState::disabled;
            });
          }
          std::lock_guard lock(waiting->mutex);
          waiting->any_ready = waiting->any_ready || usable;
          waiting->any_waiting = waiting->any_waiting || ec == errc::deadline_exceeded;
          waiting->any_needs_user = waiting->any_needs_user || ec == errc::cancelled;
          if (--waiting->left > 0 || !waiting->completion) return;  // not all in, or cancelled
          const auto completion = std::move(waiting->completion);
          completion->complete(waiting->any_ready        ? std::error_code{}
                                        : waiting->any_waiting    ? make_error_code(errc::deadline_exceeded)
                                        : waiting->any_needs_user ? make_error_code(errc::cancelled)
                                                                  : make_error_code(errc::all_credentials_disabled));
        });
      }
    }

    // One attempt on one session: wait for its login, send, classify the reply.
    // A session is touched only while the pool is open (close destroys them),
    // and `done` is called outside the latch (it may start the next
    // attempt at once).
    void attempt(MtprotoSession& session, nlohmann::json request, std::string chat, Done done) {
      const bool handed_to_session = open.run_if_open([&] {
        session.async_wait_ready([self = this->shared_from_this(), &session, request = std::move(request),
                                  chat = std::move(chat), done](std::error_code ec) mutable {
          std::optional<Outcome> unsent = closed();
          self->open.run_if_open([&] {
            if (ec) {
              unsent = self->not_sent(session, ec);
              return;
            }
            unsent.reset();
            session.async_send(std::move(request), [self, &session, chat = std::move(chat), done](
                                                       std::error_code send_ec, nlohmann::json reply) {
              Outcome outcome = closed();
              self->open.run_if_open([&] { outcome = self->classify(session, chat, send_ec, std::move(reply)); });
              done(std::move(outcome));
            });
          });
          if (unsent) done(std::move(*unsent));
        });
      });
      if (!handed_to_session) done(closed());
    }

    static Outcome closed() { return Outcome::rejected("the pool was closed", make_error_code(errc::shut_down)); }

    // The session could not take the request (still logging in, waiting,
    // needing a person, closed or disabled): it was never sent.
    static Outcome not_sent(MtprotoSession& session, std::error_code ec) {
      if (ec == errc::shut_down) return Outcome::rejected("the TDLib client or the session was shut down", ec);
      if (session.state() == MtprotoSession::State::disabled) return Outcome::auth_failed(session.disabled_reason());
      return Outcome::not_sent(fmt::format("session {} is not ready: {}", session.id(), ec.message()));
    }

    Outcome classify(MtprotoSession& session, const std::string& chat, std::error_code ec, nlohmann::json reply) {
      // Not the session's fault and not worth a retry anywhere: the program is closing.
      if (ec == errc::shut_down) return Outcome::rejected("the TDLib client or the session was shut down", ec);
      if (ec == errc::deadline_exceeded) return Outcome::maybe_applied("TDLib did not answer within the request timeout");
      if (ec == std::errc::invalid_argument) return Outcome::rejected("TDLib refused the request: not a JSON object", ec);
      if (ec) {  // the session could not send it: not logged in, or disabled
        return session.state() == MtprotoSession::State::disabled ? Outcome::auth_failed(session.disabled_reason())
                                                                  : Outcome::not_sent(ec.message());
      }
      const auto error = classify_td_response(reply);
      if (!error) return Outcome::success(std::move(reply));
      if (error->kind == OutcomeKind::auth_failed) {
        // The session disabled itself on this reply; its reason is the one to show.
        auto reason = session.disabled_reason();
        return Outcome::auth_failed(reason.empty() ? error->message : std::move(reason));
      }
      if (error->kind == OutcomeKind::flood_wait) {
        const bool scoped = error->chat_scoped && !chat.empty();
        log(LogLevel::debug, "mtproto {}: {}; cooling for {}s{}", session.id(), error->message,
            error->retry_after.count(), scoped ? fmt::format(" for chat {}", chat) : std::string());
      }
      return error->template outcome<nlohmann::json>(!chat.empty());
    }

    TdjsonClient& tdjson;
    CooldownSink* store;
    CorePool pool;
    async::RetryExecutor<CorePool> executor;
    std::vector<std::unique_ptr<MtprotoSession>> sessions;  // fixed after start(), emptied by close_sessions()
    // Closed by detach: session callbacks (which read a session, or write to
    // the pool's store) run through it, and none runs after the pool closed.
    async::detail::OpenLatch open;
  };

  std::shared_ptr<State> state_;
};

/// The pool on the steady clock: what programs use.
using MtprotoPool = BasicMtprotoPool<SteadyClock>;

}  // namespace floodgate::telegram
