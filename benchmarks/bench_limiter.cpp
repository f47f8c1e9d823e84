// Rate limiter micro-benchmarks (Google Benchmark). Results and the command
// that produced them: docs/benchmarks.md, "Rate limiter micro-benchmarks".
//
// All limiters run on the real SteadyClock, so every figure includes one
// clock read (the vDSO clock_gettime, ~15-20 ns on common x86 VMs).
#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/telegram/limits.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

namespace {

using floodgate::Rate;

constexpr std::int64_t kKeys = 1'000'000;

// A tiny PRNG so that picking a random key costs next to nothing and touches
// no memory.
struct XorShift {
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  std::uint64_t next() noexcept {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// Admits every call: 1e9 tokens/s refills faster than anyone can take.
floodgate::TokenBucket<>& shared_bucket() {
  static floodgate::TokenBucket<> bucket(Rate::per_second(1e9), 1e6);
  return bucket;
}

// The clock read every check pays: the floor under the figures below.
void BM_SteadyClock_Now(benchmark::State& state) {
  floodgate::SteadyClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(BM_SteadyClock_Now);

void BM_TokenBucket_TryAcquire(benchmark::State& state) {
  auto& bucket = shared_bucket();
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_acquire());
  state.SetItemsProcessed(state.iterations());  // summed over threads: total checks per second
}
BENCHMARK(BM_TokenBucket_TryAcquire);
BENCHMARK(BM_TokenBucket_TryAcquire)->Threads(2)->UseRealTime();

// The bucket's own work without the system clock: ManualClock's now() is one
// atomic load.
void BM_TokenBucket_TryAcquire_ManualClock(benchmark::State& state) {
  floodgate::ManualClock clock;
  floodgate::TokenBucket<floodgate::ManualClock> bucket(Rate::per_second(1e9), 1e6, clock);
  std::int64_t i = 0;
  for (auto _ : state) {
    if ((++i & 0xfff) == 0) clock.advance(std::chrono::milliseconds{1});  // refill now and then
    benchmark::DoNotOptimize(bucket.try_acquire());
  }
}
BENCHMARK(BM_TokenBucket_TryAcquire_ManualClock);

// The refusal path: an empty bucket that refills once an hour.
void BM_TokenBucket_TryAcquire_Refused(benchmark::State& state) {
  floodgate::TokenBucket<> bucket(Rate::per_hour(1), 1);
  bucket.try_acquire();
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_acquire());
}
BENCHMARK(BM_TokenBucket_TryAcquire_Refused);

// One million live keys (each bucket owes tokens, so none can be forgotten),
// checked in random order: every check is a cache miss into a 32 MB table.
void BM_KeyedLimiter_1M_Keys(benchmark::State& state) {
  floodgate::KeyedLimiter<std::int64_t> limiter(Rate::per_second(1), 1e6);
  for (std::int64_t key = 0; key < kKeys; ++key) limiter.try_acquire(key);
  XorShift random;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.try_acquire(static_cast<std::int64_t>(random.next() % kKeys)));
  }
  state.counters["keys"] = static_cast<double>(limiter.size());
  state.counters["bytes_per_key"] =
      static_cast<double>(limiter.memory_bytes()) / static_cast<double>(limiter.size());
}
BENCHMARK(BM_KeyedLimiter_1M_Keys);

// The same with 1,000 keys, whose table stays in cache: the fixed cost of a
// check (clock, hash, shard lock) without the memory miss.
void BM_KeyedLimiter_1K_Keys(benchmark::State& state) {
  floodgate::KeyedLimiter<std::int64_t> limiter(Rate::per_second(1), 1e6);
  XorShift random;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.try_acquire(static_cast<std::int64_t>(random.next() % 1000)));
  }
}
BENCHMARK(BM_KeyedLimiter_1K_Keys);

// Telegram's bot limits over a million private chats: a bot-wide bucket plus
// the per-chat table, all-or-nothing.
void BM_TelegramLimits_1M_Chats(benchmark::State& state) {
  floodgate::TelegramBotLimits config;
  config.bot = Rate::per_second(1e9);  // keep the bot-wide bucket admitting, so the per-chat path runs
  config.bot_burst = 1e6;
  config.private_chat = Rate::per_second(1);
  config.private_chat_burst = 1e6;
  auto limits = floodgate::telegram_bot_limits(floodgate::SteadyClock{}, config);
  for (std::int64_t chat = 1; chat <= kKeys; ++chat) limits.try_acquire(chat);
  XorShift random;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limits.try_acquire(1 + static_cast<std::int64_t>(random.next() % kKeys)));
  }
  state.counters["bytes_per_chat"] = static_cast<double>(limits.memory_bytes()) / static_cast<double>(kKeys);
}
BENCHMARK(BM_TelegramLimits_1M_Chats);

}  // namespace

BENCHMARK_MAIN();
