#include "test_support.hpp"

#include <catch2/catch.hpp>

using namespace floodgate;
using namespace floodgate::test;

TEST_CASE("an empty pool says it has no credentials", "[pool]") {
  Pool<> pool;
  auto lease = pool.acquire();
  REQUIRE_FALSE(lease);
  CHECK(lease.error() == errc::no_credentials);
  CHECK_FALSE(lease.earliest());
}

TEST_CASE("duplicate ids and zero weights are rejected", "[pool]") {
  Pool<> pool;
  pool.add({"A", {"a"}});
  CHECK_THROWS_AS(pool.add({"A", {"other"}}), Error);
  CHECK_THROWS_AS(pool.add({"Z", {"z"}, 0}), Error);
  CHECK_THROWS_AS(pool.set_weight("A", 0), Error);
  CHECK(pool.size() == 1);
}

TEST_CASE("a flood wait cools the credential to the tick", "[pool][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});

  pool.acquire()->flood_wait(900s);
  auto refused = pool.acquire();
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::all_credentials_cooling);
  REQUIRE(refused.earliest());
  CHECK(*refused.earliest() == clock.now() + 900s);
  CHECK(refused.retry_after() == 900s);

  clock.advance(900s - 1ns);
  CHECK_FALSE(pool.acquire());
  clock.advance(1ns);
  auto lease = pool.acquire();
  REQUIRE(lease);
  CHECK(lease->id() == "A");
}

TEST_CASE("work moves to another credential while one cools", "[pool][cooldown]") {
  ManualClock clock;
  Pool<RoundRobin> pool({}, clock);
  add_credentials(pool, {"A", "B", "C"});
  pool.cooldown("B", 60s);
  CHECK(picks(pool, 4) == std::vector<std::string>{"A", "C", "A", "C"});
  clock.advance(60s);
  const auto after = picks(pool, 3);
  CHECK(std::count(after.begin(), after.end(), "B") == 1);
}

TEST_CASE("all cooling reports the earliest credential", "[pool][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A", "B", "C"});
  const auto start = clock.now();
  pool.cooldown("A", 300s);
  pool.cooldown("B", 120s);
  pool.cooldown("C", 900s);
  auto refused = pool.acquire();
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::all_credentials_cooling);
  CHECK(*refused.earliest() == start + 120s);
  CHECK(pool.earliest_available() == start + 120s);

  clock.advance(120s);
  auto lease = pool.acquire();
  REQUIRE(lease);
  CHECK(lease->id() == "B");
}

TEST_CASE("a shorter cooldown never shortens a longer one", "[pool][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.cooldown("A", 900s);
  pool.cooldown("A", 10s);
  clock.advance(10s);
  CHECK_FALSE(pool.acquire());
  CHECK(pool.clear_cooldown("A"));
  CHECK(pool.acquire());
}

TEST_CASE("scoped cooldowns block one destination only", "[pool][cooldown]") {
  ManualClock clock;
  Pool<RoundRobin> pool({}, clock);
  add_credentials(pool, {"A", "B"});

  auto lease = pool.acquire("chat-1");
  REQUIRE(lease->id() == "A");
  lease->flood_wait(30s, CooldownScope::destination);

  // A still serves chat-2, but chat-1 only gets B.
  CHECK(picks(pool, 4, "chat-1") == std::vector<std::string>{"B", "B", "B", "B"});
  const auto other = picks(pool, 2, "chat-2");
  CHECK(std::count(other.begin(), other.end(), "A") == 1);

  // Both cooling for chat-1: the error names the earliest end.
  pool.cooldown("B", "chat-1", 10s);
  auto refused = pool.acquire("chat-1");
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::all_credentials_cooling);
  CHECK(refused.retry_after() == 10s);

  clock.advance(10s);
  CHECK(picks(pool, 2, "chat-1") == std::vector<std::string>{"B", "B"});
  clock.advance(20s);
  const auto later = picks(pool, 2, "chat-1");
  CHECK(std::count(later.begin(), later.end(), "A") == 1);
  CHECK(pool.snapshot("A")->scoped_cooldowns == 0);
}

TEST_CASE("a scoped flood wait without a destination cools the whole credential", "[pool][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.acquire()->flood_wait(5s, CooldownScope::destination);
  CHECK_FALSE(pool.acquire("anything"));
}

TEST_CASE("an abandoned lease is counted, never as a success", "[pool][lease]") {
  Pool<> pool;
  add_credentials(pool, {"A"});
  { auto lease = pool.acquire(); }
  auto s = pool.snapshot("A");
  CHECK(s->requests == 1);
  CHECK(s->abandoned == 1);
  CHECK(s->successes == 0);
  CHECK(s->in_flight == 0);
}

TEST_CASE("a lease reports once, moves keep it alive", "[pool][lease]") {
  Pool<> pool;
  add_credentials(pool, {"A"});
  auto result = pool.acquire();
  auto lease = std::move(result).take();
  auto moved = std::move(lease);
  CHECK(moved.active());
  CHECK(pool.snapshot("A")->in_flight == 1);
  moved.success(5ms);
  moved.report(Outcome<>::not_sent("connect failed"));  // ignored: already reported
  auto s = pool.snapshot("A");
  CHECK(s->successes == 1);
  CHECK(s->failures == 0);
  CHECK(s->in_flight == 0);
  CHECK(s->abandoned == 0);
  CHECK(s->latency_ewma == 5ms);
}

TEST_CASE("auth failure disables the credential with a reason", "[pool]") {
  Pool<> pool;
  add_credentials(pool, {"A", "B"});
  auto lease = pool.acquire();
  const std::string id = lease->id();
  lease->report(Outcome<>::auth_failed("401 Unauthorized"));
  auto s = pool.snapshot(id);
  CHECK(s->state == CredentialState::disabled);
  CHECK(s->disabled_reason == "401 Unauthorized");
  for (const auto& other : picks(pool, 5)) CHECK(other != id);

  pool.disable(id == "A" ? "B" : "A");
  auto refused = pool.acquire();
  CHECK(refused.error() == errc::all_credentials_disabled);
  CHECK(pool.enable(id));
  CHECK(pool.acquire());
}

TEST_CASE("bad requests do not count against the credential", "[pool]") {
  Pool<> pool;
  add_credentials(pool, {"A"});
  for (int i = 0; i < 20; ++i) pool.acquire()->report(Outcome<>::rejected("Bad Request"));
  auto s = pool.snapshot("A");
  CHECK(s->bad_requests == 20);
  CHECK(s->failures == 0);
  CHECK(s->state == CredentialState::ready);
}

TEST_CASE("consecutive failures eject for a growing rest, successes recover", "[pool][ejection]") {
  ManualClock clock;
  PoolOptions options;
  options.ejection.consecutive_failures = 3;
  options.ejection.base_rest = 10s;
  options.ejection.max_rest = 25s;
  options.ejection.successes_to_forgive = 2;
  Pool<> pool(options, clock);
  add_credentials(pool, {"A"});

  auto fail = [&](int n) {
    for (int i = 0; i < n; ++i) pool.acquire()->report(Outcome<>::not_sent("connect failed"));
  };
  fail(2);
  CHECK(pool.snapshot("A")->state == CredentialState::ready);
  fail(1);
  auto s = pool.snapshot("A");
  CHECK(s->state == CredentialState::ejected);
  CHECK(s->ejections == 1);
  CHECK(s->cooldown_remaining == 10s);
  CHECK_FALSE(pool.acquire());

  clock.advance(10s);
  fail(3);  // second ejection: 2 × base
  CHECK(pool.snapshot("A")->cooldown_remaining == 20s);
  clock.advance(20s);
  fail(3);  // third: capped at max_rest
  CHECK(pool.snapshot("A")->cooldown_remaining == 25s);
  clock.advance(25s);

  // A success streak lowers the multiplier step by step.
  for (int i = 0; i < 4; ++i) pool.acquire()->success(1ms);
  CHECK(pool.snapshot("A")->ejections == 1);
  CHECK(pool.snapshot("A")->consecutive_failures == 0);
}

TEST_CASE("ejection can be turned off", "[pool][ejection]") {
  PoolOptions options;
  options.ejection.consecutive_failures = 0;
  Pool<> pool(options);
  add_credentials(pool, {"A"});
  for (int i = 0; i < 50; ++i) pool.acquire()->report(Outcome<>::not_sent("connect failed"));
  CHECK(pool.snapshot("A")->state == CredentialState::ready);
}

TEST_CASE("credentials can be added and removed while leases are out", "[pool]") {
  Pool<RoundRobin> pool;
  add_credentials(pool, {"A", "B"});
  auto lease = pool.acquire();
  REQUIRE(lease->id() == "A");
  CHECK(pool.remove("A"));
  CHECK_FALSE(pool.remove("A"));
  CHECK(lease->payload().value == "value-A");  // still readable
  CHECK(picks(pool, 3) == std::vector<std::string>{"B", "B", "B"});
  lease->success(1ms);  // reported after removal: harmless
  pool.add({"A", {"new"}});
  CHECK(pool.snapshot("A")->requests == 0);  // a new record
  CHECK(pool.size() == 2);
}

TEST_CASE("removing the last credential mid-cooldown leaves an empty pool", "[pool]") {
  Pool<> pool;
  add_credentials(pool, {"A"});
  pool.cooldown("A", 60s);
  pool.remove("A");
  CHECK(pool.acquire().error() == errc::no_credentials);
  CHECK_FALSE(pool.earliest_available());
}

TEST_CASE("a disabled credential keeps its cooldown when enabled again", "[pool]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.cooldown("A", 60s);
  pool.disable("A");
  pool.enable("A");
  CHECK_FALSE(pool.acquire());
  clock.advance(60s);
  CHECK(pool.acquire());
}

TEST_CASE("snapshots carry wall-clock cooldown times", "[pool]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A", "B"});
  pool.cooldown("B", 90s);
  const auto snapshots = pool.snapshot();
  REQUIRE(snapshots.size() == 2);
  CHECK(snapshots[0].id == "A");
  CHECK(snapshots[0].state == CredentialState::ready);
  CHECK_FALSE(snapshots[0].cooldown_until);
  CHECK(snapshots[1].state == CredentialState::cooling);
  CHECK(*snapshots[1].cooldown_until == clock.wall_now() + 90s);
}

TEST_CASE("acquire_id leases that credential and counts it like acquire", "[pool][acquire_id]") {
  ManualClock clock;
  Pool<RoundRobin> pool({}, clock);
  add_credentials(pool, {"A", "B"});

  for (int i = 0; i < 3; ++i) {
    auto lease = pool.acquire_id("B", "chat-1");
    REQUIRE(lease);
    CHECK(lease->id() == "B");
    CHECK(lease->destination() == "chat-1");
    CHECK(pool.snapshot("B")->in_flight == 1);
    clock.advance(40ms);
    lease->success();  // latency from the pool's clock, as for acquire
  }
  const auto b = pool.snapshot("B");
  CHECK(b->requests == 3);
  CHECK(b->successes == 3);
  CHECK(b->in_flight == 0);
  CHECK(b->latency_ewma == 40ms);
  CHECK(pool.snapshot("A")->requests == 0);

  // Outcomes reported on an acquire_id lease act on the pool as any other.
  pool.acquire_id("A")->report(Outcome<>::auth_failed("revoked"));
  CHECK(pool.snapshot("A")->state == CredentialState::disabled);
  CHECK(pool.snapshot("A")->failures == 1);
  CHECK(picks(pool, 2) == std::vector<std::string>{"B", "B"});
}

TEST_CASE("acquire_id says why it cannot lease: unknown, disabled, cooling until when", "[pool][acquire_id]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A", "B"});

  auto unknown = pool.acquire_id("Z");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == errc::unknown_credential);
  CHECK_FALSE(unknown.earliest());

  pool.disable("B", "by hand");
  auto disabled = pool.acquire_id("B");
  REQUIRE_FALSE(disabled);
  CHECK(disabled.error() == errc::all_credentials_disabled);
  CHECK(pool.snapshot("B")->requests == 0);

  // Cooling: refused to the tick, never handed out early, and not counted.
  pool.acquire_id("A")->flood_wait(90s);
  const auto start = clock.now();
  auto cooling = pool.acquire_id("A");
  REQUIRE_FALSE(cooling);
  CHECK(cooling.error() == errc::all_credentials_cooling);
  CHECK(*cooling.earliest() == start + 90s);
  CHECK(cooling.retry_after() == 90s);
  clock.advance(90s - 1ns);
  CHECK(pool.acquire_id("A", "chat-1").error() == errc::all_credentials_cooling);
  CHECK(pool.snapshot("A")->requests == 1);
  clock.advance(1ns);
  auto usable = pool.acquire_id("A");
  REQUIRE(usable);
  CHECK(pool.snapshot("A")->requests == 2);
}

TEST_CASE("acquire_id honours scoped cooldowns for its destination only", "[pool][acquire_id][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.acquire_id("A", "chat-1")->flood_wait(30s, CooldownScope::destination);

  auto refused = pool.acquire_id("A", "chat-1");
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::all_credentials_cooling);
  CHECK(refused.retry_after() == 30s);
  CHECK(pool.acquire_id("A", "chat-2"));
  CHECK(pool.acquire_id("A"));

  // A longer credential-wide cooldown decides the earliest time.
  pool.cooldown("A", 60s);
  CHECK(pool.acquire_id("A", "chat-1").retry_after() == 60s);
  clock.advance(60s);
  CHECK(pool.acquire_id("A", "chat-1"));
  CHECK(pool.snapshot("A")->scoped_cooldowns == 0);
}

TEST_CASE("acquire_id reports a limiter pause as rate_limited, a flood wait over it as cooling",
          "[pool][acquire_id]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  pool.acquire_id("A")->defer(200ms);  // its limiter had no token

  auto paced = pool.acquire_id("A", "chat-1");
  REQUIRE_FALSE(paced);
  CHECK(paced.error() == errc::rate_limited);
  CHECK(paced.retry_after() == 200ms);
  CHECK(pool.snapshot("A")->requests == 0);  // a deferred lease counts as no request

  pool.cooldown("A", "chat-1", 5s);  // a flood wait for chat-1 on top: that is a cooldown
  CHECK(pool.acquire_id("A", "chat-1").error() == errc::all_credentials_cooling);
  CHECK(pool.acquire_id("A", "chat-2").error() == errc::rate_limited);
  clock.advance(200ms);
  CHECK(pool.acquire_id("A", "chat-2"));
}

TEST_CASE("an integer destination is the same destination as its decimal text", "[pool][cooldown]") {
  ManualClock clock;
  Pool<> pool({}, clock);
  add_credentials(pool, {"A"});
  const std::int64_t chat_id = -1001234567890123;  // a supergroup id: wider than 32 bits
  pool.acquire(chat_id)->flood_wait(30s, CooldownScope::destination);
  CHECK_FALSE(pool.acquire(chat_id));
  CHECK_FALSE(pool.acquire("-1001234567890123"));  // the text names the same chat
  CHECK_FALSE(pool.acquire_id("A", chat_id));
  CHECK(pool.acquire(std::int64_t{42}));               // other chats flow
  CHECK(pool.acquire(std::uint32_t{408065}));          // an instrument token
  CHECK(pool.cooldown("A", 42, 10s));
  CHECK_FALSE(pool.acquire("42"));
}
