// Rate limiter micro-benchmarks (Google Benchmark). Results and the command
// that produced them (scripts/bench): docs/benchmarks.md, "Rate limiter
// micro-benchmarks".
//
// Each limiter runs on its default clock, SteadyClock (steady_clock, 24 to
// 38 ns a read depending on the machine's clock source), and on CoarseClock
// (opt-in: a few ns a read, its lag charged to each admission; buckets whose
// burst refills in under 0.8 s still read steady_clock on it); see rate.hpp,
// "Limiting on a lagging clock". The one-million-key check is set against the
// memory floor: one dependent random load in a table of the same size,
// measured in the same run; the program prints the ratio at the end.
#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/telegram/limits.hpp>
#include <floodgate/core/token_bucket.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

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

// Anonymous memory on huge pages in this process now, in MB (Linux; 0 elsewhere).
double huge_page_mb() {
  std::ifstream rollup("/proc/self/smaps_rollup");
  std::string field;
  double kb = 0;
  while (rollup >> field) {
    if (field == "AnonHugePages:" && rollup >> kb) return kb / 1024;
  }
  return 0;
}

// Admits every call: 1e9 tokens/s refills faster than anyone can take. On
// CoarseClock its burst, which refills in 1 s, absorbs the clock's lag, so it
// reads the coarse time; on the default SteadyClock it reads steady_clock.
template <floodgate::Clock C>
floodgate::TokenBucket<C>& shared_bucket() {
  static floodgate::TokenBucket<C> bucket(Rate::per_second(1e9), 1e9);
  return bucket;
}

// The clock read every check pays: the floor under the figures below.
void BM_SteadyClock_Now(benchmark::State& state) {
  floodgate::SteadyClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(BM_SteadyClock_Now);

// The pool's default clock.
void BM_CoarseClock_Now(benchmark::State& state) {
  floodgate::CoarseClock clock;
  for (auto _ : state) benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(BM_CoarseClock_Now);

// The CPU's time-stamp counter alone, before any scaling to nanoseconds: the
// floor of a TSC-based precise clock. On a KVM guest whose clock source is
// kvm-clock it cost as much as the whole steady_clock read (~34 ns); where the
// guest's clock source is the TSC, steady_clock reads it through the vDSO for
// about 2.5 times the bare rdtsc (docs/benchmarks.md, "The hot path").
#if defined(__x86_64__)
void BM_TimeStampCounter_Read(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(__rdtsc());
}
BENCHMARK(BM_TimeStampCounter_Read);
#endif

// The default clock (SteadyClock), then CoarseClock (opt-in, its lag charged).
template <floodgate::Clock C>
void token_bucket_check(benchmark::State& state) {
  auto& bucket = shared_bucket<C>();
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_acquire());
  state.SetItemsProcessed(state.iterations());  // summed over threads: total checks per second
}
BENCHMARK(token_bucket_check<floodgate::SteadyClock>)->Name("BM_TokenBucket_TryAcquire");
BENCHMARK(token_bucket_check<floodgate::SteadyClock>)->Name("BM_TokenBucket_TryAcquire")->Threads(2)->UseRealTime();
BENCHMARK(token_bucket_check<floodgate::CoarseClock>)->Name("BM_TokenBucket_TryAcquire_CoarseClock");

// On CoarseClock, a bucket whose burst refills in 1 ms, far less than 100
// lag bounds: it reads steady_clock instead.
void BM_TokenBucket_TryAcquire_SmallBurst(benchmark::State& state) {
  floodgate::TokenBucket<floodgate::CoarseClock> bucket(Rate::per_second(1e9), 1e6);
  if (bucket.reads_fast()) state.SkipWithError("expected the precise clock");
  for (auto _ : state) benchmark::DoNotOptimize(bucket.try_acquire());
}
BENCHMARK(BM_TokenBucket_TryAcquire_SmallBurst);

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
// On the default clock, then on CoarseClock (opt-in).
template <floodgate::Clock C>
void keyed_limiter_1m_keys(benchmark::State& state) {
  floodgate::KeyedLimiter<std::int64_t, C> limiter(Rate::per_second(1), 1e6);
  for (std::int64_t key = 0; key < kKeys; ++key) limiter.try_acquire(key);
  XorShift random;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.try_acquire(static_cast<std::int64_t>(random.next() % kKeys)));
  }
  state.counters["keys"] = static_cast<double>(limiter.size());
  state.counters["bytes_per_key"] =
      static_cast<double>(limiter.memory_bytes()) / static_cast<double>(limiter.size());
  // Huge pages in the process now. With THP in "madvise" mode only ranges
  // marked MADV_HUGEPAGE get them, and nothing but the limiter's tables is
  // marked while this runs (tables freed by earlier runs may be reused, so a
  // difference before and after would say nothing).
  state.counters["huge_page_MB"] = huge_page_mb();
}
BENCHMARK(keyed_limiter_1m_keys<floodgate::SteadyClock>)->Name("BM_KeyedLimiter_1M_Keys");
BENCHMARK(keyed_limiter_1m_keys<floodgate::CoarseClock>)->Name("BM_KeyedLimiter_1M_Keys_CoarseClock");

// The memory floor under the check above: one dependent random load per
// iteration (a pointer chase through one random cycle) in a table of 16-byte
// slots as big as the limiter's tables for a million keys, on 4 KB pages or,
// 2 MB-aligned and marked MADV_HUGEPAGE, on huge pages where the kernel gives
// them: what one cache (and TLB) miss costs on this machine, now.
void memory_floor(benchmark::State& state, bool huge_pages) {
  struct Slot {
    std::uint64_t next;
    std::uint64_t pad;
  };
  const std::size_t bytes = std::size_t{32} << 20;  // the limiter's 1M-key tables: 32 MB (see bytes_per_key)
  const std::size_t count = bytes / sizeof(Slot);
  const double huge_before = huge_page_mb();
  void* memory = std::aligned_alloc(std::size_t{2} << 20, bytes);
  if (memory == nullptr) {
    state.SkipWithError("out of memory");
    return;
  }
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  (void)::madvise(memory, bytes, huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
  auto* table = static_cast<Slot*>(memory);
  std::vector<std::uint64_t> order(count);
  std::iota(order.begin(), order.end(), std::uint64_t{0});
  XorShift random;
  for (std::size_t i = count - 1; i > 0; --i) std::swap(order[i], order[random.next() % i]);  // Sattolo: one cycle
  for (std::size_t i = 0; i < count; ++i) table[order[i]] = {order[(i + 1) % count], 0};
  std::uint64_t at = order[0];
  for (auto _ : state) {
    at = table[at].next;
    benchmark::DoNotOptimize(at);
  }
  state.counters["huge_page_MB"] = huge_page_mb() - huge_before;
  std::free(memory);
}
BENCHMARK_CAPTURE(memory_floor, 4k_pages, false)->Name("BM_MemoryFloor_32MB/4k_pages");
BENCHMARK_CAPTURE(memory_floor, huge_pages, true)->Name("BM_MemoryFloor_32MB/huge_pages");

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

// Shows the runs as usual and keeps each one's CPU time (the median, with
// repetitions) for the ratio printed at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.error_occurred) continue;
      if (run.run_type == Run::RT_Iteration || run.aggregate_name == "median") {
        cpu_ns_[run.run_name.str()] = run.GetAdjustedCPUTime();
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void print_ratios() const {
    const auto limiter = cpu_ns_.find("BM_KeyedLimiter_1M_Keys");
    if (limiter == cpu_ns_.end()) return;
    for (const char* floor : {"BM_MemoryFloor_32MB/huge_pages", "BM_MemoryFloor_32MB/4k_pages"}) {
      if (auto it = cpu_ns_.find(floor); it != cpu_ns_.end() && it->second > 0) {
        std::printf("KeyedLimiter 1M keys / memory floor (%s): %.0f / %.0f ns = %.2f (target <= 1.15)\n", floor,
                    limiter->second, it->second, limiter->second / it->second);
      }
    }
  }

 private:
  std::map<std::string, double> cpu_ns_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios();
  benchmark::Shutdown();
  return 0;
}
