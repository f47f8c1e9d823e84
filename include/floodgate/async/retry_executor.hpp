// floodgate/async/retry_executor.hpp: run one operation against a credential
// pool until it succeeds or definitely cannot.
//
//   floodgate::async::RetryExecutor executor(io.get_executor(), pool, policy);
//   executor.async_run(
//       [&](const Pool::Lease& lease) { return send_message(lease.payload(), chat, text); },  // -> Outcome<T>
//       {.destination = chat},
//       [](std::error_code ec, floodgate::async::RunResult<Message> result) { … });
//
// Each attempt acquires the best usable credential, runs the operation, and
// reports its classified `Outcome` to the pool; what the run does next is
// core/outcome.hpp's table: a success or a rejection ends it, a flood wait or
// an auth failure moves it to another credential at once, a request that was
// not sent is retried after a backoff (exponential, full jitter). When every
// credential is cooling, the run waits for the earliest one only if that is
// within `RetryPolicy::max_wait` and the run's deadline; otherwise it ends with
// `errc::all_credentials_cooling` and `RunResult::earliest`, so a bot can
// answer "try again in ~5 minutes" at once.
//
// Idempotency is explicit. A request whose answer was lost after it was sent
// (`maybe_applied`) is repeated only when the run says it is safe
// (`RunOptions::idempotent`: reads, edits, anything the caller opts in);
// otherwise the run ends with `errc::outcome_unknown` and
// `RunResult::credential` names the credential that sent it, so the caller can
// check what happened before deciding (docs/retry.md shows how).
//
// A run can be bound to one credential (`RunOptions::credential`): an edit goes
// to the bot that sent the message, a request as one account goes to that
// account. It leases that credential only (`CredentialPool::acquire_id`) and
// never moves; the same rules apply, with a pool of one: a flood wait ends it
// with all_credentials_cooling unless the wait is within max_wait and the
// deadline, in which case it waits and sends again.
//
// Operations are synchronous (`Outcome<T> op(const Lease&)`) or asynchronous,
// wrapped with `async_attempt<T>`: `void op(const Lease&, Done done)` calling
// `done(Outcome<T>)` exactly once, from any thread. The completion token may
// be a callback, `use_future` or `use_awaitable`; the signature is
// `void(std::error_code, RunResult<T>)`. Every run completes exactly once:
// with a value, or with an error (a rejected outcome's error, usually
// bad_request; outcome_unknown, all_credentials_cooling, attempts_exhausted,
// deadline_exceeded, no_credentials, all_credentials_disabled,
// unknown_credential, cancelled).
//
// Per-operation cancellation (the completion handler's cancellation slot):
// - while the run waits (for a cooling credential, a backoff, a gate) or
//   before its first attempt: it ends at once with `errc::cancelled` (equal to
//   `std::errc::operation_canceled`) and nothing more is sent. Any type
//   (terminal, partial, total) does this;
// - while an attempt is in flight: `terminal` and `partial` end the caller's
//   wait at once with `errc::cancelled`, and the request is never sent again.
//   The request itself is not recalled: it may still be applied by the server
//   (`RunResult::credential` names the credential that sent it, as for
//   outcome_unknown), and its reply, when it comes, is still reported to the
//   pool (a 429 still cools the credential, a 401 still disables it). `total`
//   alone (no side effects allowed) cannot end a sent attempt: the run ends
//   with that attempt's result, or with `errc::cancelled` instead of a retry.
//   Until that answer comes, the run still holds the pool it reports to: an op
//   that keeps its owner alive (BotPool, ApiKeyPool and MtprotoPool capture
//   theirs) makes that safe; otherwise keep the pool alive until it has answered.
//
// A gate can be attached (`set_gate`) to pass each attempt through a local
// rate limiter first: it returns how long the leased credential must wait
// for its destination; a credential that must wait is handed back and skipped
// for that long, and the run moves to another. A run may bring its own gate
// (`RunOptions::gate`, e.g. a budget charged with the call's cost) instead.
//
// Timers come from async/timer.hpp, so with a ManualClock pool the whole
// executor runs in virtual time.
#pragma once

#include "floodgate/async/detail/pending_op.hpp"
#include "floodgate/async/timer.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/outcome.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/retry_policy.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace floodgate::async {

/// What a run produced, with the context a caller needs for either ending.
template <class T, class TimePoint>
struct RunResult {
  std::optional<T> value;                ///< set on success
  std::string description;               ///< the server's words for the last failure
  std::optional<TimePoint> earliest;     ///< all_credentials_cooling: when one is usable again
  std::string credential;                ///< the credential of the last attempt (outcome_unknown: the one that sent it)
  std::uint32_t attempts = 0;            ///< calls made
};

/// Wraps an asynchronous attempt: `fn(const Lease&, std::function<void(Outcome<T>)> done)`.
template <class T, class Fn>
struct AsyncAttempt {
  using value_type = T;
  Fn fn;
};
template <class T, class Fn>
AsyncAttempt<T, std::decay_t<Fn>> async_attempt(Fn&& fn) {
  return {std::forward<Fn>(fn)};
}

namespace detail {
template <class Op, class Lease>
struct attempt_traits {  // a synchronous op: Outcome<T> op(const Lease&)
  using outcome = std::invoke_result_t<Op&, const Lease&>;
  using value_type = typename outcome::value_type;
};
template <class T, class Fn, class Lease>
struct attempt_traits<AsyncAttempt<T, Fn>, Lease> {
  using value_type = T;
};
}  // namespace detail

template <class Pool>
class RetryExecutor {
 public:
  using clock_type = typename Pool::clock_type;
  using time_point = typename Pool::time_point;
  using duration = typename Pool::duration;
  using Lease = typename Pool::Lease;
  /// How long the lease's credential must wait before it may send (0 = now).
  using Gate = std::function<duration(const Lease&)>;

  struct RunOptions {
    std::string destination;              ///< chat, symbol…: scoped cooldowns and per-destination limits
    std::optional<time_point> deadline;   ///< never wait past this; end with deadline_exceeded
    /// Safe to repeat after a `maybe_applied` outcome (reads, edits, or the
    /// caller's say-so). False: such an outcome ends the run with outcome_unknown.
    bool idempotent = false;
    /// Bind the run to this credential: it never moves to another.
    std::optional<std::string> credential;
    /// This run's own gate, used instead of the executor's (`set_gate`): for
    /// limits that depend on the call, such as its cost.
    Gate gate;
  };

  RetryExecutor(boost::asio::any_io_executor executor, Pool& pool, RetryPolicy policy = {})
      : executor_(std::move(executor)), pool_(pool), policy_(policy) {}

  void set_gate(Gate gate) { gate_ = std::move(gate); }
  const RetryPolicy& policy() const noexcept { return policy_; }

  template <class Op, class CompletionToken>
  auto async_run(Op op, RunOptions options, CompletionToken&& token) {
    using T = typename detail::attempt_traits<Op, Lease>::value_type;
    return boost::asio::async_initiate<CompletionToken, void(std::error_code, RunResult<T, time_point>)>(
        [this](auto handler, Op run_op, RunOptions run_options) {
          auto completion = floodgate::async::detail::make_pending_op<std::error_code, RunResult<T, time_point>>(
              std::move(handler), executor_);
          auto run = std::make_shared<Run<T, Op>>(*this, std::move(run_op), std::move(run_options), std::move(completion),
                                                  next_seed_.fetch_add(1));
          run->start();
        },
        token, std::move(op), std::move(options));
  }

 private:
  template <class T, class Op>
  class Run : public std::enable_shared_from_this<Run<T, Op>> {
   public:
    using Result = RunResult<T, time_point>;
    using Completion = std::unique_ptr<floodgate::async::detail::PendingOp<std::error_code, Result>>;

    Run(RetryExecutor& owner, Op op, RunOptions options, Completion completion, std::uint64_t seed)
        : pool_(owner.pool_),
          gate_(owner.gate_),
          strand_(boost::asio::make_strand(owner.executor_)),
          op_(std::move(op)),
          options_(std::move(options)),
          schedule_(owner.policy_, seed),
          completion_(std::move(completion)) {}

    void start() {
      if (options_.credential) result_.credential = *options_.credential;
      if (auto slot = completion_->cancellation_slot(); slot.is_connected()) {
        slot.assign([weak = this->weak_from_this()](boost::asio::cancellation_type type) {
          if (type == boost::asio::cancellation_type::none) return;
          const auto self = weak.lock();
          if (!self) return;
          // Seen at once by an attempt about to start, even one already queued on the strand.
          self->cancel_requested_.store(true, std::memory_order_relaxed);
          boost::asio::post(self->strand_, [self, type] { self->cancel(type); });
        });
      }
      boost::asio::post(strand_, [self = this->shared_from_this()] { self->attempt(); });
    }

   private:
    // Everything below runs on the strand.

    void attempt() {
      if (cancel_requested_.load(std::memory_order_relaxed)) return finish(errc::cancelled);
      const auto now = pool_.clock().now();
      if (options_.deadline && now >= *options_.deadline) return finish(errc::deadline_exceeded);
      if (!schedule_.attempts_left()) return finish(errc::attempts_exhausted);

      auto acquired = options_.credential ? pool_.acquire_id(*options_.credential, options_.destination)
                                          : pool_.acquire(options_.destination);
      if (!acquired) {
        // rate_limited comes only from a bound run whose credential's limiter
        // pauses it: a cooling pool of one, with the pause as its earliest.
        if (acquired.error() != errc::all_credentials_cooling && acquired.error() != errc::rate_limited) {
          if (options_.credential && acquired.error() == errc::all_credentials_disabled) {
            // Say why; and a bound run whose credential was just rejected ends with that rejection.
            if (const auto record = pool_.snapshot(*options_.credential)) result_.description = record->disabled_reason;
            if (auth_failed_) return finish(errc::auth_failed);
          }
          return finish(acquired.error());
        }
        result_.earliest = acquired.earliest();
        if (!schedule_.should_wait_for(*acquired.earliest(), now, options_.deadline)) {
          return finish(errc::all_credentials_cooling);
        }
        return wait_until(*acquired.earliest());
      }
      Lease lease = std::move(acquired).take();
      if (const Gate& gate = options_.gate ? options_.gate : gate_) {
        if (const auto pause = gate(lease); pause > duration::zero()) {
          // Skip this credential until its limiter admits: a free run tries the
          // others; a bound run finds it paused and waits (or ends) above.
          lease.defer(pause);
          return boost::asio::post(strand_, [self = this->shared_from_this()] { self->attempt(); });
        }
      }
      schedule_.count_attempt();
      result_.attempts = schedule_.attempts();
      result_.credential = lease.id();
      lease_.emplace(std::move(lease));
      send();
    }

    void send() {
      if constexpr (std::is_invocable_v<Op&, const Lease&>) {
        on_outcome(op_(*lease_));
      } else {
        // The op may call done from any thread: back onto the strand. Dispatch,
        // not post: done usually runs on the I/O thread with the strand idle,
        // and then the outcome is handled right there, without a queue round
        // trip (a done called inside op_.fn nests at most max_attempts deep).
        op_.fn(*lease_, [self = this->shared_from_this()](Outcome<T> outcome) {
          boost::asio::dispatch(self->strand_, [self, outcome = std::move(outcome)]() mutable {
            self->on_outcome(std::move(outcome));
          });
        });
      }
    }

    // What to do next is the outcome's traits (core/outcome.hpp), not a switch of our own.
    void on_outcome(Outcome<T> outcome) {
      Lease lease = std::move(*lease_);
      lease_.reset();
      result_.description = outcome.description();
      const OutcomeTraits traits = outcome.traits();
      if (traits.cools) outcome.set_wait(schedule_.flood_cooldown(outcome.wait()));
      auth_failed_ = traits.disables;
      lease.report(outcome);
      if (!completion_) return;  // cancelled while in flight: reported, never sent again
      if (outcome.kind() == OutcomeKind::success) {
        result_.value.emplace(std::move(outcome).value());
        return finish({});
      }
      if (traits.ends_call) return finish(outcome.error());
      if (traits.may_be_applied && !options_.idempotent) return finish(errc::outcome_unknown);
      if (traits.backs_off) {
        return wait_until(pool_.clock().now() + std::chrono::duration_cast<duration>(schedule_.next_backoff()));
      }
      next_attempt_now();
    }

    void next_attempt_now() {
      if (cancelled_) return finish(errc::cancelled);
      attempt();
    }

    void wait_until(time_point when) {
      if (cancelled_) return finish(errc::cancelled);
      if (options_.deadline && when > *options_.deadline) return finish(errc::deadline_exceeded);
      waiting_ = true;
      if (!timer_) timer_.emplace(make_timer(strand_, pool_.clock()));  // most runs never wait
      timer_->expires_at(when);
      timer_->async_wait(boost::asio::bind_executor(strand_, [self = this->shared_from_this()](auto) {
        self->waiting_ = false;
        self->attempt();  // a cancelled wait finds cancelled_ set
      }));
    }

    void cancel(boost::asio::cancellation_type type) {
      cancelled_ = true;  // no attempt starts after this one
      if (lease_) {
        // In flight: the reply is still reported to the pool when it comes (on_outcome).
        // Total alone may not leave a side effect behind: the attempt's ending decides.
        constexpr auto ends_now = boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial;
        if ((type & ends_now) != boost::asio::cancellation_type::none) finish(errc::cancelled);
        return;
      }
      if (waiting_) timer_->cancel();  // the wait's handler finds cancelled_ and finishes
    }

    void finish(std::error_code ec) {
      if (!completion_) return;  // exactly once
      auto completion = std::move(completion_);
      completion->complete(ec, std::move(result_));
    }

    Pool& pool_;
    Gate gate_;
    boost::asio::strand<boost::asio::any_io_executor> strand_;
    std::optional<timer_for_t<clock_type>> timer_;
    Op op_;
    RunOptions options_;
    RetrySchedule schedule_;
    Completion completion_;
    std::optional<Lease> lease_;
    Result result_;
    bool cancelled_ = false;
    std::atomic<bool> cancel_requested_{false};  // set by the slot's handler, on the caller's thread
    bool waiting_ = false;
    bool auth_failed_ = false;  // the last attempt's credential was rejected
  };

  boost::asio::any_io_executor executor_;
  Pool& pool_;
  RetryPolicy policy_;
  Gate gate_;
  std::atomic<std::uint64_t> next_seed_{1};
};

}  // namespace floodgate::async
