// The Tiered strategy (core/strategy.hpp) in a pool on a virtual clock: the
// fallback chain of ApiKeyPool without I/O.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "floodgate/core/pool.hpp"

using namespace floodgate;
using namespace std::chrono_literals;

namespace {

using Pool = CredentialPool<std::string, Tiered<Weighted>, ManualClock>;

std::map<std::string, int> share(Pool& pool, int rounds) {
  std::map<std::string, int> counts;
  for (int i = 0; i < rounds; ++i) {
    auto lease = pool.acquire();
    if (!lease) {
      ++counts["-"];
      continue;
    }
    ++counts[lease->id()];
    lease->success();
  }
  return counts;
}

}  // namespace

TEST_CASE("Tiered: the lowest tier with a usable credential serves, by weight") {
  ManualClock clock;
  Pool pool({}, clock);
  pool.add({"p-1", "a", 3, true, 0});
  pool.add({"p-2", "b", 1, true, 0});
  pool.add({"b-1", "c", 1, true, 1});
  pool.add({"c-1", "d", 1, true, 2});
  CHECK(share(pool, 8) == std::map<std::string, int>{{"p-1", 6}, {"p-2", 2}});
}

TEST_CASE("Tiered: falls back while the primary tier cools and comes back when it ends") {
  ManualClock clock;
  Pool pool({}, clock);
  pool.add({"p-1", "a", 1, true, 0});
  pool.add({"p-2", "b", 1, true, 0});
  pool.add({"b-1", "c", 1, true, 1});
  pool.add({"c-1", "d", 1, true, 2});
  pool.cooldown("p-1", 30s);
  CHECK(share(pool, 2) == std::map<std::string, int>{{"p-2", 2}});
  pool.cooldown("p-2", 60s);
  CHECK(share(pool, 3) == std::map<std::string, int>{{"b-1", 3}});
  pool.disable("b-1", "revoked");
  CHECK(share(pool, 2) == std::map<std::string, int>{{"c-1", 2}});
  clock.advance(30s);
  CHECK(share(pool, 2) == std::map<std::string, int>{{"p-1", 2}});
  clock.advance(30s);
  CHECK(share(pool, 4) == std::map<std::string, int>{{"p-1", 2}, {"p-2", 2}});
}

TEST_CASE("Tiered: when every tier is cooling the pool says when the earliest is usable") {
  ManualClock clock;
  Pool pool({}, clock);
  pool.add({"p-1", "a", 1, true, 0});
  pool.add({"b-1", "b", 1, true, 1});
  pool.cooldown("p-1", 20s);
  pool.cooldown("b-1", 10s);
  auto refused = pool.acquire();
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == errc::all_credentials_cooling);
  CHECK(*refused.earliest() == clock.now() + 10s);
  pool.remove("b-1");
  clock.advance(20s);
  CHECK(share(pool, 1) == std::map<std::string, int>{{"p-1", 1}});
}
