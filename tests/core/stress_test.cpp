#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace floodgate;
using namespace floodgate::test;

// Two threads hammer one pool with every kind of report, while a third thread
// changes membership, weights and cooldowns. Afterwards the books must balance.
TEMPLATE_TEST_CASE("a million acquire/report pairs on two threads keep the books", "[pool][stress]", BestHealth,
                   RoundRobin, Weighted, LeastLoaded) {
  ManualClock clock;
  PoolOptions options;
  options.ejection.base_rest = std::chrono::milliseconds(1);
  CredentialPool<Token, TestType, ManualClock> pool(options, clock);
  for (int i = 0; i < 16; ++i) pool.add({"C" + std::to_string(i), {"v"}, static_cast<std::uint32_t>(1 + i % 4)});

  constexpr int kPerThread = 500'000;
  std::atomic<std::uint64_t> handed{0}, refused{0}, succeeded{0}, flooded{0}, failed{0}, abandoned{0};
  std::atomic<bool> done{false};

  auto worker = [&](unsigned seed) {
    std::uint64_t x = seed;
    for (int i = 0; i < kPerThread; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const std::string destination = (x >> 60) == 0 ? "chat-" + std::to_string((x >> 40) & 7) : "";
      auto lease = destination.empty() ? pool.acquire() : pool.acquire(destination);
      if (!lease) {
        ++refused;
        clock.advance(std::chrono::microseconds(100));
        continue;
      }
      ++handed;
      switch ((x >> 33) % 100) {
        case 0: lease->flood_wait(std::chrono::microseconds(50), CooldownScope::destination); ++flooded; break;
        case 1: lease->flood_wait(std::chrono::microseconds(20)); ++flooded; break;
        case 2: case 3: lease->report(Outcome<>::not_sent("connect failed")); ++failed; break;
        case 4: ++abandoned; break;  // dropped without a report
        default: lease->success(std::chrono::microseconds(1)); ++succeeded;
      }
      if (i % 64 == 0) clock.advance(std::chrono::microseconds(1));
    }
  };
  std::thread churn([&] {
    for (int round = 0; !done.load(); ++round) {
      const std::string id = "C" + std::to_string(round % 16);
      pool.set_weight(id, 1 + round % 3);
      if (round % 7 == 0) pool.cooldown(id, std::chrono::microseconds(10));
      std::this_thread::yield();
    }
  });
  std::thread a(worker, 1), b(worker, 2);
  a.join();
  b.join();
  done = true;
  churn.join();

  CHECK(handed + refused == 2u * kPerThread);
  std::uint64_t requests = 0, successes = 0, flood_waits = 0, failures = 0, abandons = 0;
  for (const auto& s : pool.snapshot()) {
    CHECK(s.in_flight == 0);
    requests += s.requests;
    successes += s.successes;
    flood_waits += s.flood_waits;
    failures += s.failures;
    abandons += s.abandoned;
  }
  CHECK(requests == handed);
  CHECK(successes == succeeded);
  CHECK(flood_waits == flooded);
  CHECK(failures == failed);
  CHECK(abandons == abandoned);
  CHECK(handed > kPerThread);  // most attempts found a credential
}
