// Acquire + report through CredentialPool, per strategy and pool size, on one
// and two threads, on the pool's default clock (CoarseClock), as production
// runs it; then on SteadyClock and on a virtual clock, to show what the clock
// costs. scripts/bench runs it (docs/benchmarks.md).
#include "floodgate/core/pool.hpp"

#include <benchmark/benchmark.h>

#include <memory>
#include <string>

namespace {

struct Token {
  std::string value;
};

template <class Pool>
void acquire_report(benchmark::State& state) {
  static std::unique_ptr<Pool> pool;  // shared by the benchmark's threads
  if (state.thread_index() == 0) {
    pool = std::make_unique<Pool>();
    for (int i = 0; i < state.range(0); ++i) {
      pool->add({"cred-" + std::to_string(i), {"v"}, static_cast<std::uint32_t>(1 + i % 5)});
    }
  }
  for (auto _ : state) {
    auto lease = pool->acquire();
    benchmark::DoNotOptimize(lease->id());
    lease->success(std::chrono::microseconds(100));
  }
  if (state.thread_index() == 0) pool.reset();
}

#define FLOODGATE_POOL_BENCHMARK(Strategy) \
  BENCHMARK(acquire_report<floodgate::CredentialPool<Token, floodgate::Strategy>>)             \
      ->Name("acquire_report/" #Strategy)->ArgName("credentials")                              \
      ->Arg(3)->Arg(16)->Arg(1000)->Arg(10000)->Threads(1)->Threads(2)->UseRealTime()

FLOODGATE_POOL_BENCHMARK(BestHealth);
FLOODGATE_POOL_BENCHMARK(RoundRobin);
FLOODGATE_POOL_BENCHMARK(Weighted);
FLOODGATE_POOL_BENCHMARK(LeastLoaded);

// The same on SteadyClock (about 30 ns a read on a KVM guest)...
#define FLOODGATE_POOL_BENCHMARK_STEADY_CLOCK(Strategy)                                           \
  BENCHMARK(acquire_report<floodgate::CredentialPool<Token, floodgate::Strategy, floodgate::SteadyClock>>) \
      ->Name("acquire_report_steady_clock/" #Strategy)->ArgName("credentials")                   \
      ->Arg(16)->Arg(10000)->Threads(1)->UseRealTime()

FLOODGATE_POOL_BENCHMARK_STEADY_CLOCK(BestHealth);
FLOODGATE_POOL_BENCHMARK_STEADY_CLOCK(RoundRobin);
FLOODGATE_POOL_BENCHMARK_STEADY_CLOCK(Weighted);
FLOODGATE_POOL_BENCHMARK_STEADY_CLOCK(LeastLoaded);

// ...and without a real clock (ManualClock reads one atomic): what the pool
// itself costs.
#define FLOODGATE_POOL_BENCHMARK_VIRTUAL_CLOCK(Strategy)                                      \
  BENCHMARK(acquire_report<floodgate::CredentialPool<Token, floodgate::Strategy, floodgate::ManualClock>>) \
      ->Name("acquire_report_no_clock/" #Strategy)->ArgName("credentials")                    \
      ->Arg(16)->Arg(10000)->Threads(1)->UseRealTime()

FLOODGATE_POOL_BENCHMARK_VIRTUAL_CLOCK(BestHealth);
FLOODGATE_POOL_BENCHMARK_VIRTUAL_CLOCK(RoundRobin);
FLOODGATE_POOL_BENCHMARK_VIRTUAL_CLOCK(Weighted);
FLOODGATE_POOL_BENCHMARK_VIRTUAL_CLOCK(LeastLoaded);

}  // namespace

BENCHMARK_MAIN();
