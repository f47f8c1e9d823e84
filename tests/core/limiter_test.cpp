// Token bucket, keyed limiter, limit sets and the keyed concurrency limit, in
// virtual time.
#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_concurrency_limit.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/core/limit_set.hpp>
#include <floodgate/telegram/limits.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using floodgate::LimitDecision;
using floodgate::ManualClock;
using floodgate::Rate;
using Bucket = floodgate::TokenBucket<ManualClock>;

namespace {

int drain(Bucket& bucket) {
  int taken = 0;
  while (bucket.try_acquire()) ++taken;
  return taken;
}

}  // namespace

TEST_CASE("rate: one token's interval is rounded up to whole nanoseconds", "[limiter]") {
  CHECK(Rate::per_second(10).interval() == 100ms);
  CHECK(Rate::per_minute(20).interval() == 3s);
  CHECK(Rate::per_second(30).interval() == 33'333'334ns);  // never faster than 30/s
  CHECK(Rate::zero().interval() == 0ns);
  CHECK_THROWS_AS(Rate::per_second(-1), floodgate::Error);
  CHECK_THROWS_AS(Rate(1, 0s), floodgate::Error);
}

TEST_CASE("token bucket: starts full, refills one token per interval to the tick", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(4), 2, clock);  // a token each 250 ms, at most 2

  CHECK(drain(bucket) == 2);
  CHECK(bucket.time_until(1) == 250ms);
  CHECK(bucket.time_until(2) == 500ms);

  clock.advance(250ms - 1ns);
  CHECK_FALSE(bucket.try_acquire());
  clock.advance(1ns);
  CHECK(bucket.try_acquire());
  CHECK_FALSE(bucket.try_acquire());

  clock.advance(500ms);
  CHECK(bucket.available() == Approx(2.0));
  CHECK(drain(bucket) == 2);
}

TEST_CASE("token bucket: idle time never fills it beyond the burst", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(100), 5, clock);
  CHECK(drain(bucket) == 5);
  clock.advance(1h);
  CHECK(bucket.available() == Approx(5.0));
  CHECK(drain(bucket) == 5);
}

TEST_CASE("token bucket: a multi-token request takes all or nothing", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(10), 5, clock);
  REQUIRE(bucket.try_acquire(3));
  CHECK_FALSE(bucket.try_acquire(3));  // only 2 left
  CHECK(bucket.available() == Approx(2.0));
  CHECK(bucket.time_until(3) == 100ms);
  const LimitDecision refused = bucket.check(3);
  CHECK_FALSE(refused);
  CHECK(refused.retry_after == 100ms);
  CHECK(refused.error() == floodgate::errc::rate_limited);
  CHECK(bucket.try_acquire(2));
}

TEST_CASE("token bucket: more tokens than the burst can never pass", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(10), 3, clock);
  CHECK_FALSE(bucket.try_acquire(4));
  CHECK(bucket.time_until(4) == Bucket::never);
  CHECK(bucket.check(4).never_admits());
  CHECK_FALSE(bucket.reserve(4).ok());
  CHECK(bucket.available() == Approx(3.0));
}

TEST_CASE("token bucket: rate zero never admits", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::zero(), 0, clock);
  CHECK_FALSE(bucket.try_acquire());
  CHECK(bucket.time_until() == Bucket::never);
  clock.advance(24h);
  CHECK_FALSE(bucket.try_acquire());
  CHECK_FALSE(bucket.reserve().ok());
}

TEST_CASE("token bucket: a burst below one token with a positive rate is an error", "[limiter]") {
  ManualClock clock;
  CHECK_THROWS_WITH(Bucket(Rate::per_second(10), 0.5, clock),
                    Catch::Contains("burst must be at least 1 token"));
  CHECK_THROWS_AS(Bucket(Rate::per_second(10), 0, clock), floodgate::Error);
  CHECK_THROWS_AS(Bucket(Rate::per_second(10), -1, clock), floodgate::Error);
}

TEST_CASE("token bucket: reservations queue up and cancel gives back exactly what they took", "[limiter]") {
  ManualClock clock;
  const auto t0 = clock.now();
  Bucket bucket(Rate::per_second(1), 1, clock);

  auto first = bucket.reserve();
  auto second = bucket.reserve();
  auto third = bucket.reserve(1);
  REQUIRE(first.ok());
  CHECK(first.ready_at() == t0);
  CHECK(second.ready_at() == t0 + 1s);
  CHECK(third.ready_at() == t0 + 2s);
  CHECK(third.delay() == 2s);
  CHECK(bucket.time_until() == 3s);

  SECTION("an early cancel returns the tokens") {
    clock.advance(500ms);
    CHECK(second.cancel());
    CHECK(bucket.time_until() == 2s - 500ms);  // one token sooner than before
    CHECK_FALSE(second.cancel());              // only once
    CHECK(bucket.time_until() == 1500ms);
  }
  SECTION("a cancel exactly at ready_at still counts") {
    clock.advance(1s);
    CHECK(second.cancel());
    CHECK(bucket.time_until() == 1s);
  }
  SECTION("a late cancel gives back nothing") {
    clock.advance(1s + 1ns);
    CHECK_FALSE(second.cancel());
    CHECK(bucket.time_until() == 2s - 1ns);
  }
  SECTION("a moved reservation cancels once") {
    auto moved = std::move(third);
    CHECK(moved.ok());  // found under faults: the move lost the flag
    CHECK(moved.delay() == 2s);
    CHECK_FALSE(third.ok());
    CHECK_FALSE(third.cancel());
    CHECK(moved.cancel());
    CHECK(bucket.time_until() == 2s);
  }
  SECTION("a move-assigned reservation keeps its flag") {
    Bucket::Reservation kept;
    CHECK_FALSE(kept.ok());
    kept = std::move(second);
    CHECK(kept.ok());
    CHECK(kept.tokens() == 1);
    CHECK(kept.delay() == 1s);
    CHECK_FALSE(second.ok());
    CHECK(kept.cancel());
  }
}

TEST_CASE("token bucket: set_rate and set_burst keep the tokens available", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(10), 10, clock);
  REQUIRE(bucket.try_acquire(5));

  bucket.set_rate(Rate::per_second(1));
  CHECK(bucket.available() == Approx(5.0));
  CHECK(bucket.try_acquire(5));
  CHECK(bucket.time_until() == 1s);  // now refilling at the new rate

  bucket.set_rate(Rate::per_second(10));
  clock.advance(300ms);
  CHECK(bucket.available() == Approx(3.0));
  bucket.set_burst(2);  // caps what is there
  CHECK(bucket.available() == Approx(2.0));
  CHECK(bucket.burst() == 2);

  SECTION("an invalid change throws and changes nothing") {
    CHECK_THROWS_AS(bucket.set_burst(0.5), floodgate::Error);
    CHECK(bucket.burst() == 2);
    CHECK(drain(bucket) == 2);
  }
  SECTION("a paused bucket admits nothing and resumes empty") {
    bucket.set_rate(Rate::zero());
    CHECK_FALSE(bucket.try_acquire());
    CHECK(bucket.time_until() == Bucket::never);
    bucket.set_rate(Rate::per_second(10));
    CHECK(bucket.time_until() == 100ms);
  }
}

TEST_CASE("token bucket: two threads never take more than the bucket holds", "[limiter]") {
  ManualClock clock;
  Bucket bucket(Rate::per_second(1000), 2000, clock);
  std::atomic<int> admitted{0};
  auto hammer = [&] {
    for (int i = 0; i < 20'000; ++i) {
      if (bucket.try_acquire()) admitted.fetch_add(1, std::memory_order_relaxed);
    }
  };
  {
    std::jthread a(hammer), b(hammer);
  }
  CHECK(admitted.load() == 2000);

  clock.advance(250ms);  // exactly 250 more tokens
  admitted = 0;
  {
    std::jthread a(hammer), b(hammer);
  }
  CHECK(admitted.load() == 250);
}

TEST_CASE("keyed limiter: one bucket per key", "[limiter]") {
  ManualClock clock;
  floodgate::KeyedLimiter<std::int64_t, ManualClock> limiter(Rate::per_second(1), 2, {}, clock);
  CHECK(limiter.try_acquire(7));
  CHECK(limiter.try_acquire(7));
  const auto refused = limiter.try_acquire(7);
  CHECK_FALSE(refused);
  CHECK(refused.per_key);
  CHECK(refused.retry_after == 1s);
  CHECK(limiter.try_acquire(8));  // another key is untouched
  CHECK(limiter.time_until(7) == 1s);
  CHECK(limiter.time_until(9) == 0s);
  CHECK(limiter.time_until(9, 3) == LimitDecision::never);
}

TEST_CASE("keyed limiter: string keys such as instrument symbols", "[limiter]") {
  ManualClock clock;
  floodgate::LimitSet<std::string, ManualClock> limits(clock);
  limits.add("account", Rate::per_second(10), 10)
      .add_per_key("nse", Rate::per_second(1), 1, [](const std::string& s) { return s.starts_with("NSE:"); });
  CHECK(limits.try_acquire("NSE:INFY"));
  CHECK(limits.try_acquire("NSE:INFY").limit == "nse");
  CHECK(limits.try_acquire("BSE:INFY"));
  CHECK(limits.try_acquire("BSE:INFY"));
}

TEST_CASE("keyed limiter: full buckets are forgotten, so memory follows active keys", "[limiter]") {
  ManualClock clock;
  floodgate::KeyedLimiter<std::int64_t, ManualClock> limiter(Rate::per_second(1), 1, {}, clock);
  for (std::int64_t key = 0; key < 50'000; ++key) REQUIRE(limiter.try_acquire(key));
  CHECK(limiter.size() == 50'000);
  const auto memory_for_50k = limiter.memory_bytes();
  CHECK(memory_for_50k / 50'000 <= 64);

  clock.advance(1s);  // every bucket is full again
  for (std::int64_t round = 1; round <= 5; ++round) {
    for (std::int64_t key = round * 50'000; key < (round + 1) * 50'000; ++key) REQUIRE(limiter.try_acquire(key));
    clock.advance(1s);
  }
  // 300k distinct keys seen, at most 100k live at any time: the tables swept
  // instead of growing without bound.
  CHECK(limiter.size() <= 100'000);
  CHECK(limiter.memory_bytes() <= 2 * memory_for_50k + 4096);

  const auto live = limiter.size();
  CHECK(limiter.evict_idle() == live);
  CHECK(limiter.size() == 0);
  CHECK(limiter.try_acquire(1));  // a forgotten key starts full
}

TEST_CASE("keyed limiter: at the key cap new keys are refused, known keys keep working", "[limiter]") {
  ManualClock clock;
  floodgate::KeyedLimiterOptions options;
  options.max_keys = 64;
  options.shards = 1;
  floodgate::KeyedLimiter<std::int64_t, ManualClock> limiter(Rate::per_second(1), 2, options, clock);
  for (std::int64_t key = 0; key < 64; ++key) {
    REQUIRE(limiter.try_acquire(key));
    clock.advance(1ms);
  }
  const auto refused = limiter.try_acquire(1000);
  CHECK_FALSE(refused);
  CHECK(refused.at_capacity);
  CHECK(refused.error() == floodgate::errc::capacity_exceeded);
  CHECK(refused.retry_after == 1s - 64ms);  // when key 0's bucket is full again
  CHECK(limiter.try_acquire(5));            // a tracked key still has its second token
  CHECK(limiter.size() == 64);

  clock.advance(refused.retry_after);
  CHECK(limiter.try_acquire(1000));  // key 0 was full, swept, and its slot reused
  CHECK(limiter.size() <= 64);
}

TEST_CASE("keyed limiter: a small cap with the default shards admits up to the cap", "[limiter]") {
  // Found under faults: with max_keys <= 5 x shards no table could grow past
  // 16 slots and every new key was refused with a retry_after of ~292 years.
  for (const std::size_t cap : {std::size_t{1}, std::size_t{5}, std::size_t{100}, std::size_t{320}}) {
    ManualClock clock;
    floodgate::KeyedLimiterOptions options;
    options.max_keys = cap;  // shards left at the default
    floodgate::KeyedLimiter<std::int64_t, ManualClock> limiter(Rate::per_second(1), 1, options, clock);
    for (std::int64_t key = 0; key < static_cast<std::int64_t>(cap); ++key) {
      INFO("cap " << cap << ", key " << key);
      REQUIRE(limiter.try_acquire(key));
    }
    const auto refused = limiter.try_acquire(-1);
    INFO("cap " << cap);
    CHECK(refused.at_capacity);
    CHECK(refused.retry_after == 1s);  // when the first bucket is full again, not centuries
    clock.advance(1s);
    CHECK(limiter.try_acquire(-1));
  }
}

TEST_CASE("keyed limiter: two threads on shared keys never over-admit", "[limiter]") {
  ManualClock clock;
  floodgate::KeyedLimiter<std::int64_t, ManualClock> limiter(Rate::per_hour(1), 3, {}, clock);
  std::atomic<int> admitted{0};
  auto hammer = [&] {
    for (int i = 0; i < 50'000; ++i) {
      if (limiter.try_acquire(i % 1000)) admitted.fetch_add(1, std::memory_order_relaxed);
    }
  };
  {
    std::jthread a(hammer), b(hammer);
  }
  CHECK(admitted.load() == 3000);
}

TEST_CASE("limit set: passes only when every limit admits, and a refusal costs nothing", "[limiter]") {
  ManualClock clock;
  floodgate::LimitSet<std::int64_t, ManualClock> limits(clock);
  limits.add("global", Rate::per_second(10), 2).add_per_key("per_key", Rate::per_second(1), 1);

  CHECK(limits.try_acquire(1));  // global 1 left, key 1 empty
  const auto by_key = limits.try_acquire(1);
  CHECK_FALSE(by_key);
  CHECK(by_key.limit == "per_key");
  CHECK(by_key.per_key);
  CHECK(by_key.retry_after == 1s);
  CHECK(limits.try_acquire(2));  // the refused request left the global token in place

  const auto by_global = limits.try_acquire(3);
  CHECK_FALSE(by_global);
  CHECK(by_global.limit == "global");
  CHECK_FALSE(by_global.per_key);
  CHECK(by_global.retry_after == 100ms);
  clock.advance(100ms);
  CHECK(limits.try_acquire(3));  // key 3's token, taken before "global" refused, was given back
  CHECK_FALSE(limits.try_acquire(3));

  // Per-key limits are checked first; the wait is the longest of all limits.
  clock.advance(200ms);
  REQUIRE(limits.try_acquire(4));
  REQUIRE(limits.try_acquire(5));
  const auto both = limits.try_acquire(4);
  CHECK(both.limit == "per_key");
  CHECK(both.retry_after == 1s);
  CHECK(limits.time_until(4) == 1s);
  CHECK(limits.time_until(6) == 100ms);
}

TEST_CASE("limit set: a refusal by a later shared limit gives back the earlier one's tokens", "[limiter]") {
  ManualClock clock;
  floodgate::LimitSet<std::int64_t, ManualClock> limits(clock);
  limits.add("hourly", Rate::per_hour(1), 2).add("per_second", Rate::per_second(1), 1);
  REQUIRE(limits.try_acquire(1));
  const auto refused = limits.try_acquire(1);
  CHECK(refused.limit == "per_second");
  clock.advance(1s);
  CHECK(limits.try_acquire(1));  // "hourly" still had its second token
  CHECK(limits.try_acquire(1).limit == "hourly");
}

TEST_CASE("limit set: refund gives a passed request's tokens back to every limit", "[limiter]") {
  ManualClock clock;
  floodgate::LimitSet<std::int64_t, ManualClock> limits(clock);
  limits.add("global", Rate::per_second(1), 1).add_per_key("per_key", Rate::per_minute(1), 1);
  REQUIRE(limits.try_acquire(1));
  limits.refund(1);
  CHECK(limits.time_until(1) == 0s);
  CHECK(limits.try_acquire(1));
}

TEST_CASE("telegram bot limits: private chats, groups and the bot-wide rate", "[limiter]") {
  ManualClock clock;
  auto limits = floodgate::telegram_bot_limits(clock);
  const auto bot_interval = Rate::per_second(30).interval();
  const std::int64_t user = 123456789;
  const std::int64_t group = -1001234567890;

  SECTION("a private chat allows a short burst, then one message per second") {
    for (int i = 0; i < 3; ++i) {
      REQUIRE(limits.try_acquire(user));
      clock.advance(bot_interval);
    }
    const auto refused = limits.try_acquire(user);
    CHECK(refused.limit == "private_chat");
    CHECK(refused.retry_after == 1s - 3 * bot_interval);
  }
  SECTION("a group allows 20 messages per minute: one each 3 seconds") {
    REQUIRE(limits.try_acquire(group));
    clock.advance(bot_interval);
    const auto refused = limits.try_acquire(group);
    CHECK(refused.limit == "group_chat");
    CHECK(refused.retry_after == 3s - bot_interval);
    CHECK(limits.try_acquire(user));  // other chats are not held up
    clock.advance(refused.retry_after);
    CHECK(limits.try_acquire(group));
  }
  SECTION("30 messages per second for the whole bot") {
    int sent = 0;
    const auto end = clock.now() + 1s;
    for (std::int64_t chat = 1; clock.now() < end; ++chat) {  // a new chat every millisecond
      if (limits.try_acquire(chat)) ++sent;
      clock.advance(1ms);
    }
    CHECK(sent == 30);
  }
}

TEST_CASE("keyed concurrency limit: at most K in flight per key, released by RAII", "[limiter]") {
  floodgate::KeyedConcurrencyLimit<std::int64_t> limit(2);
  auto a = limit.try_acquire(1);
  auto b = limit.try_acquire(1);
  REQUIRE(a);
  REQUIRE(b);
  CHECK_FALSE(limit.try_acquire(1));
  CHECK(limit.try_acquire(2));  // temporary: released at once
  CHECK(limit.in_flight(1) == 2);
  CHECK(limit.in_flight(2) == 0);

  std::vector<std::int64_t> released;
  limit.set_release_listener([&](const std::int64_t& key) { released.push_back(key); });
  {
    auto moved = std::move(a);
    CHECK_FALSE(a);
  }
  CHECK(released == std::vector<std::int64_t>{1});
  auto c = limit.try_acquire(1);
  CHECK(c);
  b.release();
  b.release();  // idempotent
  c = {};
  CHECK(limit.in_flight(1) == 0);
  CHECK(limit.active_keys() == 0);  // idle keys take no memory
  CHECK(released.size() == 3);
  CHECK_THROWS_AS(floodgate::KeyedConcurrencyLimit<int>(0), floodgate::Error);
}

TEST_CASE("huge-page allocator: big blocks are whole, aligned 2 MB pages, small ones ordinary", "[limiter]") {
  floodgate::detail::HugePageAllocator<std::uint64_t> allocator;
  const std::size_t big = floodgate::detail::kHugePageBytes / sizeof(std::uint64_t) + 1;  // just over 2 MB
  std::uint64_t* block = allocator.allocate(big);
  CHECK(reinterpret_cast<std::uintptr_t>(block) % floodgate::detail::kHugePageBytes == 0);
  for (std::size_t i = 0; i < big; ++i) block[i] = i;  // all of it is usable memory
  CHECK(block[big - 1] == big - 1);
  allocator.deallocate(block, big);
  std::uint64_t* small = allocator.allocate(16);
  small[15] = 7;
  CHECK(small[15] == 7);
  allocator.deallocate(small, 16);
  CHECK_THROWS_AS(allocator.allocate(std::numeric_limits<std::size_t>::max() / 4), std::bad_array_new_length);
}
