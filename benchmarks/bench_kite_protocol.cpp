// Kite ticker parsing throughput and allocations per tick.
//
//   build-release/benchmarks/bench_kite_protocol
//
// Each benchmark parses one realistic frame of 100 packets per iteration:
// FrameView's structure check, then either a full decode of every packet into
// a Tick or (the *_view variants) a zero-copy read of token and last price.
// Counters: bytes_per_second (frame bytes), items_per_second (ticks), and
// allocs_per_tick, counted by the global operator new replaced below.
#include <floodgate/kite/frame.hpp>
#include <floodgate/sim/kite_frame_encoder.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

namespace {
std::atomic<std::size_t> allocations{0};
}  // namespace

// Counting replacements for the global allocation functions (the nothrow and
// array forms forward to these in libstdc++). noinline keeps GCC from pairing
// the inlined malloc and free and warning about a mismatch that is not one.
[[gnu::noinline]] void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace kite = floodgate::kite;

constexpr std::size_t packets_per_frame = 100;

// A deterministic mix of NSE, NFO, CDS and MCX instruments with plausible prices.
kite::Tick make_tick(std::size_t i) {
  static constexpr std::uint32_t segments[] = {1, 2, 3, 7};
  kite::Tick tick;
  tick.instrument_token = static_cast<std::uint32_t>((100000 + i) << 8 | segments[i % 4]);
  tick.last_price = 1000.0 + static_cast<double>(i);
  tick.last_traded_quantity = 10;
  tick.average_traded_price = 999.5;
  tick.volume_traded = 123456;
  tick.total_buy_quantity = 5000;
  tick.total_sell_quantity = 6000;
  tick.ohlc = {990.0, 1010.0, 980.0, 995.0};
  tick.last_trade_time = kite::Tick::seconds{std::chrono::seconds{1700000000}};
  tick.exchange_timestamp = tick.last_trade_time;
  tick.oi = 42;
  for (std::size_t level = 0; level < 5; ++level) {
    tick.depth.buy[level] = {100, tick.last_price - 0.05 * static_cast<double>(level + 1), 3};
    tick.depth.sell[level] = {100, tick.last_price + 0.05 * static_cast<double>(level + 1), 4};
  }
  return tick;
}

std::vector<std::byte> make_frame(kite::Mode mode) {
  floodgate::sim::KiteFrameEncoder encoder;
  for (std::size_t i = 0; i < packets_per_frame; ++i) encoder.add(make_tick(i), mode);
  return {encoder.bytes().begin(), encoder.bytes().end()};
}

template <class ReadPacket>
void run(benchmark::State& state, kite::Mode mode, ReadPacket read) {
  const std::size_t allocations_at_start = allocations.load();
  const auto frame = make_frame(mode);
  if (allocations.load() == allocations_at_start) {  // building the frame must have been counted
    state.SkipWithError("the operator new replacement is not counting allocations");
    return;
  }
  std::size_t ticks = 0;
  const std::size_t allocations_before = allocations.load();
  for (auto _ : state) {
    const kite::FrameView view(frame);
    for (const kite::PacketView packet : view) read(packet);
    ticks += view.size();
  }
  const std::size_t allocated = allocations.load() - allocations_before;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frame.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(ticks));
  state.counters["allocs_per_tick"] = static_cast<double>(allocated) / static_cast<double>(ticks);
  state.counters["frame_bytes"] = static_cast<double>(frame.size());
}

void decode(const kite::PacketView& packet) {
  kite::Tick tick = packet.decode();
  benchmark::DoNotOptimize(tick);
}

void peek(const kite::PacketView& packet) {
  benchmark::DoNotOptimize(packet.instrument_token());
  benchmark::DoNotOptimize(packet.last_price());
}

void BM_KiteDecodeLtp(benchmark::State& state) { run(state, kite::Mode::ltp, decode); }
void BM_KiteDecodeQuote(benchmark::State& state) { run(state, kite::Mode::quote, decode); }
void BM_KiteDecodeFull(benchmark::State& state) { run(state, kite::Mode::full, decode); }
void BM_KiteViewFull(benchmark::State& state) { run(state, kite::Mode::full, peek); }
void BM_KiteViewLtp(benchmark::State& state) { run(state, kite::Mode::ltp, peek); }

BENCHMARK(BM_KiteDecodeLtp);
BENCHMARK(BM_KiteDecodeQuote);
BENCHMARK(BM_KiteDecodeFull);
BENCHMARK(BM_KiteViewLtp);
BENCHMARK(BM_KiteViewFull);

}  // namespace

BENCHMARK_MAIN();
