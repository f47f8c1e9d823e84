// The outcome vocabulary (core/outcome.hpp) and what reporting each kind does
// to a pool: one table, one report path.
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace floodgate;
using namespace floodgate::test;

namespace {

/// A sink that records what the pool persists, in memory, and hands nothing
/// back (so a re-added credential starts fresh).
class RecordingSink final : public CooldownSink {
 public:
  std::optional<CooldownRecord> find(std::string_view) const override { return std::nullopt; }
  void set_cooldown(std::string_view id, WallTime until) override { with(id, [&](auto& r) { r.cooldown_until = until; }); }
  void set_scoped_cooldown(std::string_view id, std::string_view destination, WallTime until) override {
    with(id, [&](auto& r) { r.scoped[std::string(destination)] = until; });
  }
  void clear_cooldowns(std::string_view id) override { with(id, [](auto& r) { r.cooldown_until.reset(); }); }
  void set_disabled(std::string_view id, std::string_view reason) override {
    with(id, [&](auto& r) {
      r.disabled = true;
      r.disabled_reason = std::string(reason);
    });
  }
  void set_enabled(std::string_view id) override { with(id, [](auto& r) { r.disabled = false; }); }
  std::size_t writes() const {
    std::lock_guard lock(mutex_);
    return writes_;
  }

 private:
  template <class Fn>
  void with(std::string_view id, Fn fn) {
    std::lock_guard lock(mutex_);
    fn(records_[std::string(id)]);  // `id` is read here: a dangling id is an ASan error
    ++writes_;
  }
  mutable std::mutex mutex_;
  std::map<std::string, CooldownRecord> records_;
  std::size_t writes_ = 0;
};

}  // namespace

TEST_CASE("outcome traits: each kind says what it does to the credential and to the call", "[outcome]") {
  CHECK(outcome_traits(OutcomeKind::success).ends_call);
  CHECK(outcome_traits(OutcomeKind::flood_wait).cools);
  CHECK_FALSE(outcome_traits(OutcomeKind::flood_wait).counts_as_failure);
  CHECK(outcome_traits(OutcomeKind::not_sent).backs_off);
  CHECK_FALSE(outcome_traits(OutcomeKind::not_sent).may_be_applied);
  CHECK(outcome_traits(OutcomeKind::maybe_applied).may_be_applied);
  CHECK(outcome_traits(OutcomeKind::maybe_applied).counts_as_failure);
  CHECK(outcome_traits(OutcomeKind::auth_failed).disables);
  CHECK(outcome_traits(OutcomeKind::rejected).ends_call);
  CHECK_FALSE(outcome_traits(OutcomeKind::rejected).counts_as_failure);
  // Only a definite answer disables: no kind but auth_failed does.
  for (auto kind : {OutcomeKind::success, OutcomeKind::flood_wait, OutcomeKind::not_sent, OutcomeKind::maybe_applied,
                    OutcomeKind::rejected}) {
    CAPTURE(to_string(kind));
    CHECK_FALSE(outcome_traits(kind).disables);
  }
}

TEST_CASE("outcome: server waits saturate at kMaxServerWait, never wrap", "[outcome]") {
  CHECK(Outcome<>::flood_wait(std::chrono::seconds(9'300'000'000)).wait() == kMaxServerWait);
  CHECK(Outcome<>::flood_wait(std::chrono::hours(std::numeric_limits<int>::max())).wait() == kMaxServerWait);
  CHECK(Outcome<>::flood_wait(std::chrono::seconds(-5)).wait() == 0s);
  CHECK(Outcome<>::flood_wait(35s).wait() == 35s);
  CHECK(clamp_server_wait(10'000'000'000) == kMaxServerWait);
  CHECK(Outcome<>::rejected("x").error() == errc::bad_request);
}

TEST_CASE("pool: a huge flood wait keeps the credential cooling instead of overflowing to ready", "[pool][outcome]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A", "B"});
  pool.acquire_id("A")->flood_wait(std::chrono::seconds(9'300'000'000));
  for (int i = 0; i < 24; ++i) {
    auto lease = pool.acquire();
    REQUIRE(lease);
    CHECK(lease->id() == "B");  // never A: it is cooling for the clamped maximum
    lease->success();
  }
  const auto a = pool.snapshot("A");
  CHECK(a->state == CredentialState::cooling);
  CHECK(a->cooldown_remaining == kMaxServerWait);
  CHECK(pool.cooldown("B", ManualClock::duration::max()));  // the direct call clamps too
  CHECK(pool.snapshot("B")->cooldown_remaining == kMaxServerWait);
}

TEST_CASE("pool: each outcome kind lands in the right counter", "[pool][outcome]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.acquire()->report(Outcome<>::not_sent("connect failed"));
  pool.acquire()->report(Outcome<>::maybe_applied("read timeout"));
  pool.acquire()->report(Outcome<>::rejected("Bad Request: chat not found"));
  auto s = pool.snapshot("A");
  CHECK(s->failures == 2);
  CHECK(s->consecutive_failures == 2);
  CHECK(s->bad_requests == 1);
  CHECK(s->state == CredentialState::ready);  // timeouts never disable
  pool.acquire()->report(Outcome<>::auth_failed("401 Unauthorized"));
  s = pool.snapshot("A");
  CHECK(s->state == CredentialState::disabled);
  CHECK(s->disabled_reason == "401 Unauthorized");
}

TEST_CASE("pool: remove() while leases report cooldowns and disables is safe", "[pool][outcome][race]") {
  // A report copies what it persists under the pool's lock: a remove() that
  // frees the slot right after must not leave the sink reading a freed id.
  RecordingSink sink;
  Pool<> pool;
  pool.persist_to(sink);
  auto id_of = [](int round) { return "credential-with-a-long-id-beyond-sso-" + std::to_string(round % 4); };
  for (int round = 0; round < 4; ++round) pool.add({id_of(round), {"v"}});
  std::atomic<bool> stop{false};
  std::atomic<int> rounds{0};
  std::thread remover([&] {
    while (!stop) {
      const auto id = id_of(rounds);
      pool.remove(id);
      pool.add({id, {"v"}});
      ++rounds;
    }
  });
  // Report until the remover has replaced credentials many times under the reports.
  int reports = 0;
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while ((rounds < 300 || reports < 300) && std::chrono::steady_clock::now() < give_up) {
    if (auto lease = pool.acquire()) {
      ++reports;
      if (reports % 2) lease->flood_wait(1ms);
      else lease->report(Outcome<>::auth_failed("revoked"));
    }
  }
  stop = true;
  remover.join();
  CHECK(rounds >= 300);
  CHECK(reports >= 300);
  CHECK(reports > 0);
  CHECK(sink.writes() > 0);
}

TEST_CASE("errc codes with a standard meaning compare equal to std::errc") {
  using floodgate::errc;
  CHECK(make_error_code(errc::cancelled) == std::errc::operation_canceled);
  CHECK(make_error_code(errc::deadline_exceeded) == std::errc::timed_out);
  CHECK(make_error_code(errc::io_error) == std::errc::io_error);
  CHECK(make_error_code(errc::auth_failed) != std::errc::permission_denied);  // no standard twin: only itself
  CHECK(make_error_code(errc::cancelled) == errc::cancelled);
  CHECK(make_error_code(errc::cancelled) != errc::deadline_exceeded);
}
