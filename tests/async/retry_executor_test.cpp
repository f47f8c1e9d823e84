#include "floodgate/async/retry_executor.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <thread>

using namespace std::chrono_literals;
using floodgate::CooldownScope;
using floodgate::CredentialState;
using floodgate::ManualClock;
using floodgate::Outcome;
using floodgate::RetryPolicy;
namespace errc = floodgate;

namespace {

struct Token {
  std::string value;
};
using Pool = floodgate::CredentialPool<Token, floodgate::RoundRobin, ManualClock>;
using Executor = floodgate::async::RetryExecutor<Pool>;
using Result = floodgate::async::RunResult<std::string, ManualClock::time_point>;

// One io_context on virtual time, a pool of A, B, C and an executor.
struct Fixture {
  boost::asio::io_context io;
  ManualClock clock;
  floodgate::async::VirtualTime time{io, clock};
  Pool pool{{}, clock};
  RetryPolicy policy;
  std::vector<std::string> calls;  // credential of each attempt, in order

  /// Runs every ready handler and fires every virtual timer until none is left.
  void settle() { time.run_until([] { return false; }, std::chrono::hours(24)); }

  explicit Fixture(std::vector<std::string> ids = {"A", "B", "C"}) {
    for (auto& id : ids) pool.add({id, {id}});
    policy.flood_jitter = 0;  // exact cooldowns, unless a test asks for jitter
  }

  struct Completion {
    bool done = false;
    int count = 0;
    std::error_code ec;
    Result result;
  };

  template <class Op>
  std::shared_ptr<Completion> run(Executor& executor, Op op, Executor::RunOptions options = {}) {
    auto c = std::make_shared<Completion>();
    executor.async_run(std::move(op), std::move(options), [c](std::error_code ec, Result r) {
      ++c->count;
      c->done = true;
      c->ec = ec;
      c->result = std::move(r);
    });
    return c;
  }

  // An op that answers each attempt from a script (the last entry repeats),
  // recording the credential it was given.
  auto scripted(std::vector<Outcome<std::string>> script) {
    auto next = std::make_shared<std::size_t>(0);
    return [this, script = std::move(script), next](const Pool::Lease& lease) {
      calls.push_back(lease.id());
      return script[std::min((*next)++, script.size() - 1)];
    };
  }
};

Outcome<std::string> ok(std::string v = "sent") { return Outcome<std::string>::success(std::move(v)); }
Outcome<std::string> flood(int s, CooldownScope scope = CooldownScope::credential) {
  return Outcome<std::string>::flood_wait(std::chrono::seconds(s), scope, "Too Many Requests: retry after " + std::to_string(s));
}

}  // namespace

TEST_CASE("a success on the first attempt completes with the value", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, f.scripted({ok("message 1")}));
  CHECK_FALSE(c->done);  // never completes inside the initiating call
  f.time.poll();
  REQUIRE(c->done);
  CHECK_FALSE(c->ec);
  CHECK(c->result.value == "message 1");
  CHECK(c->result.attempts == 1);
  CHECK(c->result.credential == "A");
  CHECK(f.pool.snapshot("A")->successes == 1);
}

TEST_CASE("a flood wait cools that credential exactly and moves on at once", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  auto c = f.run(executor, f.scripted({flood(900), ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK_FALSE(c->ec);
  CHECK(f.calls == std::vector<std::string>{"A", "B"});
  CHECK(f.clock.now() == start);  // no waiting
  auto a = f.pool.snapshot("A");
  CHECK(a->state == CredentialState::cooling);
  CHECK(a->cooldown_remaining == 900s);
  CHECK(a->flood_waits == 1);
}

TEST_CASE("flood-wait jitter only ever lengthens the cooldown", "[retry]") {
  Fixture f({"A", "B"});
  f.policy.flood_jitter = 0.05;
  f.policy.flood_jitter_cap = 2s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  for (int i = 0; i < 20; ++i) {
    f.pool.clear_cooldown("A");
    f.calls.clear();
    auto c = f.run(executor, f.scripted({flood(100), ok()}));
    f.time.poll();
    REQUIRE(c->done);
    const auto remaining = f.pool.snapshot(f.calls[0])->cooldown_remaining;
    CHECK(remaining >= 100s);
    CHECK(remaining <= 102s);
    f.pool.clear_cooldown(f.calls[0]);
  }
}

TEST_CASE("all cooling within max_wait: waits for the earliest, then succeeds", "[retry]") {
  Fixture f({"A", "B"});
  f.policy.max_wait = 60s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  auto c = f.run(executor, f.scripted({flood(30), flood(45), ok()}));
  REQUIRE(f.time.run_until([&] { return c->done; }, 10min));
  CHECK_FALSE(c->ec);
  CHECK(f.calls == std::vector<std::string>{"A", "B", "A"});
  CHECK(f.clock.now() == start + 30s);  // exactly when A came back, not a tick earlier
}

TEST_CASE("all cooling beyond max_wait ends at once with the earliest time", "[retry]") {
  Fixture f({"A", "B"});
  f.policy.max_wait = 60s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  auto c = f.run(executor, f.scripted({flood(300), flood(900)}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK(c->ec == errc::errc::all_credentials_cooling);
  REQUIRE(c->result.earliest);
  CHECK(*c->result.earliest == start + 300s);
  CHECK(f.clock.now() == start);
  CHECK(c->result.description == "Too Many Requests: retry after 900");
}

TEST_CASE("all cooling: the deadline decides whether waiting is worth it", "[retry]") {
  Fixture f({"A"});
  f.policy.max_wait = 10min;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  f.pool.cooldown("A", 120s);

  SECTION("deadline before the earliest: ends now") {
    auto c = f.run(executor, f.scripted({ok()}), {.deadline = start + 60s});
    f.time.poll();
    REQUIRE(c->done);
    CHECK(c->ec == errc::errc::all_credentials_cooling);
    CHECK(*c->result.earliest == start + 120s);
    CHECK(f.calls.empty());
  }
  SECTION("deadline after the earliest: waits and succeeds") {
    auto c = f.run(executor, f.scripted({ok()}), {.deadline = start + 180s});
    REQUIRE(f.time.run_until([&] { return c->done; }, 10min));
    CHECK_FALSE(c->ec);
    CHECK(f.clock.now() == start + 120s);
  }
}

TEST_CASE("transient failures back off with capped full jitter, then give up", "[retry]") {
  Fixture f({"A"});
  f.policy.max_attempts = 4;
  f.policy.backoff_base = 100ms;
  f.policy.backoff_cap = 150ms;
  f.pool.add({"B", {"B"}});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  auto c = f.run(executor, f.scripted({Outcome<std::string>::not_sent("connection refused")}));
  REQUIRE(f.time.run_until([&] { return c->done; }, 10min));
  CHECK(c->ec == errc::errc::attempts_exhausted);
  CHECK(c->result.attempts == 4);
  CHECK(c->result.description == "connection refused");
  CHECK(f.calls.size() == 4);
  CHECK(f.clock.now() - start <= 100ms + 150ms + 150ms);  // three backoffs, each under its ceiling
}

TEST_CASE("auth failure disables the credential and continues on another", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, f.scripted({Outcome<std::string>::auth_failed("Unauthorized"), ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK_FALSE(c->ec);
  CHECK(f.calls == std::vector<std::string>{"A", "B"});
  auto a = f.pool.snapshot("A");
  CHECK(a->state == CredentialState::disabled);
  CHECK(a->disabled_reason == "Unauthorized");
}

TEST_CASE("a bad request ends at once and is never retried", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, f.scripted({Outcome<std::string>::rejected("Bad Request: chat not found"), ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK(c->ec == errc::errc::bad_request);
  CHECK(c->result.description == "Bad Request: chat not found");
  CHECK(f.calls.size() == 1);
  CHECK(f.pool.snapshot("A")->state == CredentialState::ready);
}

TEST_CASE("a scoped flood wait keeps the credential for other destinations", "[retry]") {
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c1 = f.run(executor, f.scripted({flood(30, CooldownScope::destination), ok()}), {.destination = "chat-1"});
  f.time.poll();
  REQUIRE(c1->done);
  CHECK(f.calls == std::vector<std::string>{"A", "B"});
  CHECK(f.pool.snapshot("A")->state == CredentialState::ready);
  f.calls.clear();
  auto c2 = f.run(executor, f.scripted({ok(), ok()}), {.destination = "chat-2"});
  auto c3 = f.run(executor, f.scripted({ok()}), {.destination = "chat-1"});
  f.time.poll();
  CHECK((c2->done && c3->done));
  CHECK(f.calls == std::vector<std::string>{"A", "B"});  // chat-2 may use A; chat-1 only B
}

TEST_CASE("cancellation while waiting completes once with cancelled", "[retry]") {
  Fixture f({"A"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  f.pool.cooldown("A", 30s);
  boost::asio::cancellation_signal signal;
  int count = 0;
  std::error_code result;
  executor.async_run(f.scripted({ok()}), {},
                     boost::asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, Result) {
                       ++count;
                       result = ec;
                     }));
  f.time.poll();
  CHECK(count == 0);
  signal.emit(boost::asio::cancellation_type::terminal);
  f.time.poll();
  CHECK(count == 1);
  CHECK(result == errc::errc::cancelled);
  f.time.advance(60s);
  CHECK(count == 1);
  CHECK(f.calls.empty());
}

namespace {
/// An asynchronous attempt that leaves each request "on the wire" until the test answers it.
struct HeldAttempts {
  std::vector<std::string> sent;  // credential of each request
  std::vector<std::function<void(Outcome<std::string>)>> replies;
  auto op() {
    return floodgate::async::async_attempt<std::string>([this](const Pool::Lease& lease, auto done) {
      sent.push_back(lease.id());
      replies.emplace_back(std::move(done));
    });
  }
};
}  // namespace

TEST_CASE("terminal or partial cancellation of a request on the wire ends the wait at once, never re-sends",
          "[retry][cancel]") {
  const auto type = GENERATE(boost::asio::cancellation_type::terminal, boost::asio::cancellation_type::partial);
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  HeldAttempts held;
  boost::asio::cancellation_signal signal;
  int count = 0;
  std::error_code result;
  Result run;
  executor.async_run(held.op(), {}, boost::asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, Result r) {
                       ++count;
                       result = ec;
                       run = std::move(r);
                     }));
  f.time.poll();
  REQUIRE(held.sent.size() == 1);
  signal.emit(type);
  f.time.poll();
  REQUIRE(count == 1);
  CHECK(result == std::errc::operation_canceled);
  CHECK(run.credential == held.sent[0]);  // who sent the request that may still be applied
  CHECK(run.attempts == 1);
  // The reply comes late: a 429 still cools that credential, and nothing is sent again.
  held.replies[0](flood(30));
  f.settle();
  CHECK(count == 1);
  CHECK(held.sent.size() == 1);
  CHECK(f.pool.snapshot(held.sent[0])->state == CredentialState::cooling);
}

TEST_CASE("total cancellation of a request on the wire lets it end, then sends nothing more", "[retry][cancel]") {
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  HeldAttempts held;
  boost::asio::cancellation_signal signal;
  auto c = std::make_shared<Fixture::Completion>();
  executor.async_run(held.op(), {}, boost::asio::bind_cancellation_slot(signal.slot(), [c](std::error_code ec, Result r) {
                       ++c->count;
                       c->ec = ec;
                       c->result = std::move(r);
                     }));
  f.time.poll();
  REQUIRE(held.sent.size() == 1);
  signal.emit(boost::asio::cancellation_type::total);
  f.time.poll();
  CHECK(c->count == 0);  // a sent request has a side effect: total cannot end it now
  held.replies[0](flood(30));  // not applied: a retry would move to B, but the caller cancelled
  f.settle();
  CHECK(c->count == 1);
  CHECK(c->ec == std::errc::operation_canceled);
  CHECK(held.sent.size() == 1);
}

namespace {
// A coroutine of its own (not a lambda): g++ 12 mishandles some temporaries inside co_await in lambdas.
template <class Op>
boost::asio::awaitable<void> race_with_timer(Executor& executor, Op op, ManualClock clock, ManualClock::duration after,
                                             bool& timer_won) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto timer = floodgate::async::make_timer(co_await boost::asio::this_coro::executor, clock);
  timer.expires_after(after);
  auto run = executor.async_run(std::move(op), {}, boost::asio::as_tuple(boost::asio::use_awaitable));
  auto wait = timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  const auto winner = co_await (std::move(run) || std::move(wait));
  timer_won = winner.index() == 1;
}
}  // namespace

TEST_CASE("a run raced against a timer with || ends with the timer, cancelled", "[retry][cancel]") {
  Fixture f({"A"});
  f.policy.max_wait = 60s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  f.pool.cooldown("A", 30s);  // within max_wait: the run waits for A
  bool timer_won = false;
  boost::asio::co_spawn(f.io, race_with_timer(executor, f.scripted({ok()}), f.clock, 5s, timer_won),
                        boost::asio::detached);
  f.time.advance(5s);
  f.settle();
  CHECK(timer_won);
  CHECK(f.calls.empty());  // the run was cancelled while it waited: A never sent, not even after its cooldown
}

TEST_CASE("a pool emptied under a run ends it with no_credentials", "[retry]") {
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, [&](const Pool::Lease& lease) {
    f.calls.push_back(lease.id());
    f.pool.remove("A");
    f.pool.remove("B");
    return flood(5);
  });
  f.time.poll();
  REQUIRE(c->done);
  CHECK(c->count == 1);
  CHECK(c->ec == errc::errc::no_credentials);
}

TEST_CASE("an asynchronous attempt may finish on another thread, use_future works", "[retry]") {
  boost::asio::io_context io;
  floodgate::CredentialPool<Token> pool;  // the default CoarseClock, real timers
  pool.add({"A", {"a"}});
  floodgate::async::RetryExecutor executor(io.get_executor(), pool);
  std::thread worker;
  auto future = executor.async_run(floodgate::async::async_attempt<int>([&](const auto& lease, auto done) {
                                     CHECK(lease.id() == "A");
                                     worker = std::thread([done] { done(Outcome<int>::success(42)); });
                                   }),
                                   {}, boost::asio::use_future);
  io.run();
  worker.join();
  auto [ec, result] = future.get();
  CHECK_FALSE(ec);
  CHECK(result.value == 42);
}

TEST_CASE("a gate's refusal moves the attempt to a credential it admits", "[retry]") {
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  std::map<std::string, int> gate_calls;
  executor.set_gate([&](const Pool::Lease& lease) -> ManualClock::duration {
    ++gate_calls[lease.id()];
    return lease.id() == "A" ? ManualClock::duration(1s) : ManualClock::duration::zero();
  });
  auto c = f.run(executor, f.scripted({ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK(f.calls == std::vector<std::string>{"B"});
  CHECK(gate_calls["A"] == 1);
  auto a = f.pool.snapshot("A");
  CHECK(a->requests == 0);  // handed back unused
  CHECK(a->flood_waits == 0);
  CHECK(a->state == CredentialState::ready);  // paced, not cooling: shown as ready
  CHECK(a->cooldown_remaining == 1s);
  f.calls.clear();
  for (int i = 0; i < 3; ++i) f.run(executor, f.scripted({ok()}));
  f.time.poll();
  CHECK(f.calls == std::vector<std::string>{"B", "B", "B"});  // A is still paced
}

TEST_CASE("a run's own gate is used instead of the executor's", "[retry]") {
  Fixture f({"A", "B"});
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  int executor_gate_calls = 0;
  executor.set_gate([&](const Pool::Lease&) {
    ++executor_gate_calls;
    return ManualClock::duration::zero();
  });
  Executor::RunOptions options;
  options.gate = [](const Pool::Lease& lease) -> ManualClock::duration {
    return lease.id() == "A" ? ManualClock::duration(5s) : ManualClock::duration::zero();  // e.g. over its budget
  };
  auto c = f.run(executor, f.scripted({ok()}), options);
  f.time.poll();
  REQUIRE(c->done);
  CHECK(f.calls == std::vector<std::string>{"B"});
  CHECK(executor_gate_calls == 0);
  CHECK(f.pool.snapshot("A")->cooldown_remaining == 5s);
  auto plain = f.run(executor, f.scripted({ok()}));  // without its own gate: the executor's
  f.time.poll();
  REQUIRE(plain->done);
  CHECK(executor_gate_calls == 1);
}

TEST_CASE("no attempt is ever sent into a cooldown the server announced", "[retry]") {
  Fixture f({"A", "B", "C"});
  f.policy.max_wait = 30s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  std::map<std::string, ManualClock::time_point> told;  // what the fake server said
  int into_cooldown = 0, flood_waits = 0, completed = 0;
  std::uint64_t x = 7;
  for (int i = 0; i < 300; ++i) {
    auto c = f.run(executor, [&](const Pool::Lease& lease) {
      if (auto it = told.find(lease.id()); it != told.end() && f.clock.now() < it->second) ++into_cooldown;
      x = x * 6364136223846793005ull + 1;
      if ((x >> 61) == 0) {  // one in eight: a flood wait of 1..20 s
        const int s = 1 + static_cast<int>((x >> 40) % 20);
        told[lease.id()] = f.clock.now() + std::chrono::seconds(s);
        ++flood_waits;
        return flood(s);
      }
      return ok();
    });
    REQUIRE(f.time.run_until([&] { return c->done; }, 10min));
    completed += c->count;
    f.time.advance(100ms);
  }
  CHECK(completed == 300);
  CHECK(flood_waits > 10);
  CHECK(into_cooldown == 0);
}

TEST_CASE("a maybe_applied outcome ends a non-idempotent run with outcome_unknown naming the sender", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, f.scripted({Outcome<std::string>::maybe_applied("response cut off"), ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK(c->count == 1);
  CHECK(c->ec == errc::errc::outcome_unknown);
  CHECK(c->result.credential == "A");
  CHECK(c->result.attempts == 1);
  CHECK(c->result.description == "response cut off");
  CHECK(f.calls == std::vector<std::string>{"A"});  // never sent again, on any credential
  CHECK(f.pool.snapshot("A")->failures == 1);      // the credential's health still counts it
}

TEST_CASE("a maybe_applied outcome of an idempotent run is retried after a backoff", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto start = f.clock.now();
  auto c = f.run(executor, f.scripted({Outcome<std::string>::maybe_applied("read timeout"), ok("read")}),
                 {.idempotent = true});
  f.settle();
  REQUIRE(c->done);
  CHECK_FALSE(c->ec);
  CHECK(c->result.value == "read");
  CHECK(c->result.attempts == 2);
  CHECK(f.calls.size() == 2);
  CHECK(f.clock.now() - start <= f.policy.backoff_base);  // the first backoff's full-jitter bound
}

TEST_CASE("a not_sent outcome is retried whatever the run's idempotency", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  auto c = f.run(executor, f.scripted({Outcome<std::string>::not_sent("connect failed"), ok()}));
  f.settle();
  REQUIRE(c->done);
  CHECK_FALSE(c->ec);
  CHECK(c->result.attempts == 2);
}

TEST_CASE("a rejected outcome ends the run with its own error", "[retry]") {
  Fixture f;
  Executor executor(f.io.get_executor(), f.pool, f.policy);
  const auto certificate = std::make_error_code(std::errc::permission_denied);
  auto c = f.run(executor, f.scripted({Outcome<std::string>::rejected("bad certificate", certificate), ok()}));
  f.time.poll();
  REQUIRE(c->done);
  CHECK(c->ec == certificate);
  CHECK(f.calls.size() == 1);
  CHECK(f.pool.snapshot("A")->bad_requests == 1);
  CHECK(f.pool.snapshot("A")->failures == 0);
}

TEST_CASE("a bound run uses only its credential, waits out a short flood wait and ends on a long one", "[retry]") {
  Fixture f;
  f.policy.max_wait = 60s;
  Executor executor(f.io.get_executor(), f.pool, f.policy);

  SECTION("a short wait is waited out, then the same credential sends") {
    const auto start = f.clock.now();
    auto c = f.run(executor, f.scripted({flood(30), ok("edited")}), {.credential = "B"});
    f.settle();
    REQUIRE(c->done);
    CHECK_FALSE(c->ec);
    CHECK(f.calls == std::vector<std::string>{"B", "B"});
    CHECK(f.clock.now() - start == 30s);  // not a moment earlier
    CHECK(c->result.credential == "B");
  }
  SECTION("a wait past max_wait ends the run without another request") {
    auto c = f.run(executor, f.scripted({flood(900), ok()}), {.credential = "B"});
    f.settle();
    REQUIRE(c->done);
    CHECK(c->ec == errc::errc::all_credentials_cooling);
    CHECK(f.calls == std::vector<std::string>{"B"});
    REQUIRE(c->result.earliest);
    CHECK(*c->result.earliest - f.clock.now() == 900s);
  }
  SECTION("an auth failure ends it with auth_failed, never moving") {
    auto c = f.run(executor, f.scripted({Outcome<std::string>::auth_failed("Unauthorized"), ok()}), {.credential = "C"});
    f.settle();
    REQUIRE(c->done);
    CHECK(c->ec == errc::errc::auth_failed);
    CHECK(f.calls == std::vector<std::string>{"C"});
    CHECK(f.pool.snapshot("C")->state == CredentialState::disabled);
  }
  SECTION("an unknown credential and a disabled one are clear errors") {
    auto unknown = f.run(executor, f.scripted({ok()}), {.credential = "Z"});
    f.pool.disable("A");
    auto disabled = f.run(executor, f.scripted({ok()}), {.credential = "A"});
    f.settle();
    CHECK(unknown->ec == errc::errc::unknown_credential);
    CHECK(disabled->ec == errc::errc::all_credentials_disabled);
    CHECK(f.calls.empty());
  }
  SECTION("a maybe_applied outcome ends a non-idempotent bound run, and is retried for an idempotent one") {
    auto send = f.run(executor, f.scripted({Outcome<std::string>::maybe_applied("reset"), ok()}), {.credential = "A"});
    f.settle();
    CHECK(send->ec == errc::errc::outcome_unknown);
    CHECK(send->result.credential == "A");
    f.calls.clear();
    auto edit = f.run(executor, f.scripted({Outcome<std::string>::maybe_applied("reset"), ok()}),
                      {.idempotent = true, .credential = "A"});
    f.settle();
    CHECK_FALSE(edit->ec);
    CHECK(f.calls == std::vector<std::string>{"A", "A"});
  }
}
