#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

using namespace floodgate;
using namespace floodgate::test;
using Ids = std::vector<std::string>;

TEST_CASE("RoundRobin serves each credential in turn", "[strategy]") {
  Pool<RoundRobin> pool;
  add_credentials(pool, {"A", "B", "C"});
  CHECK(picks(pool, 7) == Ids{"A", "B", "C", "A", "B", "C", "A"});
}

TEST_CASE("RoundRobin serves a returning credential after everyone else had a turn", "[strategy]") {
  ManualClock clock;
  Pool<RoundRobin> pool({}, clock);
  add_credentials(pool, {"A", "B", "C"});
  pool.cooldown("A", 1s);
  CHECK(picks(pool, 1) == Ids{"B"});
  clock.advance(1s);
  CHECK(picks(pool, 6) == Ids{"C", "B", "A", "C", "B", "A"});
}

TEST_CASE("BestHealth prefers the healthiest, ties to the least recently used", "[strategy]") {
  Pool<BestHealth> pool;
  add_credentials(pool, {"A", "B", "C"});
  // Equal health: least recently used first, i.e. a rotation.
  CHECK(picks(pool, 6) == Ids{"A", "B", "C", "A", "B", "C"});

  // B fails once: A and C carry the load while B's smoothed rate is lower.
  pool.acquire()->success(1ms);
  auto b = pool.acquire();
  REQUIRE(b->id() == "B");
  b->report(Outcome<>::not_sent("connect failed"));
  const auto after = picks(pool, 10);
  CHECK(std::count(after.begin(), after.end(), "B") == 0);
  CHECK(pool.snapshot("B")->smoothed_success_rate < pool.snapshot("A")->smoothed_success_rate);
}

TEST_CASE("BestHealth: a fresh credential is tried, and judged by what it does", "[strategy]") {
  ManualClock clock;
  Pool<BestHealth> pool({}, clock);
  add_credentials(pool, {"old"});
  for (int i = 0; i < 200; ++i) pool.acquire()->success(1ms);
  pool.add({"new", {"n"}});
  // Untested ranks with flawless, and the least recently used goes first.
  CHECK(picks(pool, 2) == Ids{"new", "old"});
  // One failure on the newcomer, and the proven credential carries the load.
  auto lease = pool.acquire();
  REQUIRE(lease->id() == "new");
  lease->report(Outcome<>::not_sent("connect failed"));
  CHECK(picks(pool, 5) == Ids{"old", "old", "old", "old", "old"});
  CHECK(pool.snapshot("new")->smoothed_success_rate < 0.8);
}

TEST_CASE("BestHealth forgets old failures as time passes", "[strategy]") {
  ManualClock clock;
  Pool<BestHealth> pool({}, clock);
  add_credentials(pool, {"A", "B"});
  auto lease = pool.acquire();
  REQUIRE(lease->id() == "A");
  lease->report(Outcome<>::not_sent("connect failed"));
  CHECK(pool.snapshot("A")->smoothed_success_rate == Approx(2.0 / 3.0));
  CHECK(picks(pool, 3) == Ids{"B", "B", "B"});
  clock.advance(60s);  // one half-life: the failure weighs half as much
  CHECK(pool.snapshot("A")->smoothed_success_rate == Approx(2.0 / 2.5));
  clock.advance(15min);
  CHECK(pool.snapshot("A")->smoothed_success_rate > 0.999);
  // Idle scores are refreshed as other acquires go by, so A is back in rotation.
  const auto back = picks(pool, 6);
  CHECK(std::count(back.begin(), back.end(), "A") >= 2);
}

TEST_CASE("Weighted follows the weights smoothly", "[strategy]") {
  Pool<Weighted> pool;
  add_credentials(pool, {"A", "B", "C"}, {5, 1, 1});
  const auto seq = picks(pool, 7);
  CHECK(std::count(seq.begin(), seq.end(), "A") == 5);
  CHECK(std::count(seq.begin(), seq.end(), "B") == 1);
  CHECK(std::count(seq.begin(), seq.end(), "C") == 1);
  // Smooth: A never runs more than three times in a row (a burst would be 5).
  int run = 0, longest = 0;
  for (const auto& id : seq) {
    run = id == "A" ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  CHECK(longest <= 3);

  // Every full cycle of 7 has the same proportions.
  for (int cycle = 0; cycle < 10; ++cycle) {
    const auto next = picks(pool, 7);
    CHECK(std::count(next.begin(), next.end(), "A") == 5);
  }
}

TEST_CASE("Weighted applies weight changes at run time", "[strategy]") {
  Pool<Weighted> pool;
  add_credentials(pool, {"A", "B"}, {1, 1});
  auto count = [&](int n) {
    std::map<std::string, int> c;
    for (const auto& id : picks(pool, n)) ++c[id];
    return c;
  };
  auto even = count(100);
  CHECK(even["A"] == 50);
  CHECK(pool.set_weight("B", 3));
  auto skewed = count(400);
  CHECK(skewed["B"] == Approx(300).margin(2));
  CHECK(skewed["A"] == Approx(100).margin(2));
}

TEST_CASE("LeastLoaded picks the less busy of two", "[strategy]") {
  Pool<LeastLoaded> pool;
  add_credentials(pool, {"A", "B"});
  // Hold leases: with two credentials both are drawn, so the idle one wins.
  auto first = pool.acquire();
  auto second = pool.acquire();
  CHECK(first->id() != second->id());
  auto third = pool.acquire();
  auto fourth = pool.acquire();
  CHECK(third->id() != fourth->id());
  CHECK(pool.snapshot("A")->in_flight == 2);
  CHECK(pool.snapshot("B")->in_flight == 2);
}

TEST_CASE("LeastLoaded spreads many concurrent leases evenly", "[strategy]") {
  Pool<LeastLoaded> pool;
  add_credentials(pool, {"A", "B", "C", "D", "E", "F", "G", "H"});
  std::vector<Pool<LeastLoaded>::Lease> held;
  for (int i = 0; i < 800; ++i) held.push_back(std::move(pool.acquire()).take());
  for (const auto& s : pool.snapshot()) CHECK(s.in_flight == Approx(100).margin(10));
}

// A strategy a user writes in a few lines: always the heaviest usable credential.
struct HeaviestFirst : ScanStrategy<HeaviestFirst> {
  std::size_t choose(std::span<const ScanEntry> usable) {
    return static_cast<std::size_t>(std::min_element(usable.begin(), usable.end(),
                                                     [](const ScanEntry& a, const ScanEntry& b) {
                                                       return a.candidate.weight > b.candidate.weight;
                                                     }) -
                                    usable.begin());
  }
};

TEST_CASE("a hand-written strategy plugs in", "[strategy]") {
  ManualClock clock;
  Pool<HeaviestFirst> pool({}, clock);
  add_credentials(pool, {"A", "B", "C"}, {1, 5, 3});
  CHECK(picks(pool, 2) == Ids{"B", "B"});
  pool.cooldown("B", 5s);
  CHECK(picks(pool, 2) == Ids{"C", "C"});
  pool.cooldown("C", "chat", 5s);
  CHECK(picks(pool, 1, "chat") == Ids{"A"});
}

TEMPLATE_TEST_CASE("every strategy skips credentials cooling for the destination", "[strategy]", BestHealth,
                   RoundRobin, Weighted, LeastLoaded) {
  Pool<TestType> pool;
  add_credentials(pool, {"A", "B", "C", "D"});
  pool.cooldown("A", "chat", 60s);
  pool.cooldown("C", "chat", 60s);
  for (const auto& id : picks(pool, 40, "chat")) CHECK((id == "B" || id == "D"));
}

TEST_CASE("BestHealth's index picks exactly what sorting every credential would", "[strategy]") {
  // The reference: every usable credential with its key, sorted by (score
  // step descending, last acquire ascending, id ascending). Random inserts,
  // erases, re-scorings, acquires (in the pool's way, and out of order) and
  // picks with a random refusal set.
  const auto seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 random(seed);
  for (int round = 0; round < 20; ++round) {
    BestHealth strategy;
    std::map<SlotId, Candidate> usable;
    const SlotId slots = round < 10 ? 8 : 300;
    std::uint64_t acquires = 0;
    const auto step = [](const Candidate& c) { return static_cast<int>(c.score * 1000.0 + 0.5); };
    const auto random_score = [&] {
      const double scores[] = {1.0, 0.9995, 0.999, 0.5, 0.0, 0.7504, 0.7496};
      return scores[random() % 7];
    };
    for (int op = 0; op < 3000; ++op) {
      const SlotId id = static_cast<SlotId>(random() % slots);
      switch (random() % 6) {
        case 0: {  // becomes usable (or is inserted again with new figures)
          Candidate c{random_score(), random() % 3 == 0 ? 0 : acquires - std::min<std::uint64_t>(acquires, random() % 50)};
          strategy.insert(id, c);
          usable[id] = c;
          break;
        }
        case 1:
          strategy.erase(id);
          usable.erase(id);
          break;
        case 2:
          if (auto it = usable.find(id); it != usable.end()) {
            it->second.score = random_score();
            strategy.update(id, it->second);
          } else {
            strategy.update(id, {random_score(), ++acquires});  // not usable: ignored
          }
          break;
        case 3:  // an out-of-order last acquire, as a hand-driven strategy may see
          if (auto it = usable.find(id); it != usable.end()) {
            it->second.last_acquired = random() % (acquires + 1);
            strategy.update(id, it->second);
          }
          break;
        default: {  // pick with a random set refused, then acquire the pick as the pool does
          std::set<SlotId> refused;
          const auto refusals = random() % 3 == 0 ? random() % slots : 0;
          for (std::uint64_t r = 0; r < refusals; ++r) refused.insert(static_cast<SlotId>(random() % slots));
          std::optional<SlotId> expected;
          for (const auto& [candidate_id, c] : usable) {
            if (refused.count(candidate_id)) continue;
            if (!expected) {
              expected = candidate_id;
              continue;
            }
            const Candidate& best = usable[*expected];
            if (step(c) != step(best) ? step(c) > step(best)
                                      : c.last_acquired != best.last_acquired ? c.last_acquired < best.last_acquired
                                                                              : candidate_id < *expected) {
              expected = candidate_id;
            }
          }
          const auto chosen = strategy.pick([&](SlotId s) { return refused.count(s) == 0; });
          REQUIRE(chosen == expected);
          if (chosen) {
            usable[*chosen].last_acquired = ++acquires;
            strategy.update(*chosen, usable[*chosen]);
          }
        }
      }
    }
  }
}
