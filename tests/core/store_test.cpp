#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

using namespace floodgate;
using namespace floodgate::test;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "floodgate-test-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

CooldownStore::WallClock wall_of(const ManualClock& clock) {
  return [clock] { return clock.wall_now(); };
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("a restart in the middle of FLOOD_WAIT_900 sends nothing to that credential", "[store]") {
  TempDir dir;
  const auto file = dir.path / "state" / "cooldowns.json";
  ManualClock clock;
  {
    CooldownStore store(file, CooldownStore::OnCorrupt::fail, wall_of(clock));
    Pool<> pool({}, clock);
    add_credentials(pool, {"A", "B"});
    pool.persist_to(store);
    auto lease = pool.acquire();
    REQUIRE(lease->id() == "A");
    lease->flood_wait(900s);
    pool.acquire("chat-7")->flood_wait(60s, CooldownScope::destination);  // B, for chat-7 only
    pool.disable("B", "revoked");
  }
  CHECK(mode_of(file) == 0600);
  CHECK(mode_of(file.parent_path()) == 0700);

  clock.advance(120s);  // the process was down for two minutes
  CooldownStore store(file, CooldownStore::OnCorrupt::fail, wall_of(clock));
  Pool<> pool({}, clock);  // a new pool: a fresh steady time line
  add_credentials(pool, {"A", "B"});
  pool.persist_to(store);

  auto a = pool.snapshot("A");
  CHECK(a->state == CredentialState::cooling);
  CHECK(a->cooldown_remaining == 780s);
  auto b = pool.snapshot("B");
  CHECK(b->state == CredentialState::disabled);
  CHECK(b->disabled_reason == "revoked");
  CHECK(b->scoped_cooldowns == 0);  // the 60 s chat cooldown expired while down
  CHECK(pool.acquire().error() == errc::all_credentials_cooling);

  clock.advance(780s - 1ms);
  CHECK_FALSE(pool.acquire());
  clock.advance(1ms);
  CHECK(pool.acquire()->id() == "A");
}

TEST_CASE("credentials added after persist_to pick up their stored state", "[store]") {
  TempDir dir;
  ManualClock clock;
  const auto file = dir.path / "c.json";
  {
    CooldownStore store(file, CooldownStore::OnCorrupt::fail, wall_of(clock));
    store.set_cooldown("A", clock.wall_now() + 50s);
    store.set_scoped_cooldown("A", "-100", clock.wall_now() + 500s);
  }
  CooldownStore store(file, CooldownStore::OnCorrupt::fail, wall_of(clock));
  Pool<> pool({}, clock);
  pool.persist_to(store);
  add_credentials(pool, {"A"});
  CHECK(pool.snapshot("A")->cooldown_remaining == 50s);
  clock.advance(50s);
  CHECK(pool.acquire("-1"));
  CHECK_FALSE(pool.acquire("-100"));
}

TEST_CASE("expired entries are dropped and enable clears the flag", "[store]") {
  TempDir dir;
  ManualClock clock;
  CooldownStore store(dir.path / "c.json", CooldownStore::OnCorrupt::fail, wall_of(clock));
  store.set_cooldown("A", clock.wall_now() + 1s);
  store.set_disabled("B", "x");
  clock.advance(2s);
  store.set_enabled("B");
  CHECK(store.entries().empty());
}

TEST_CASE("a corrupt store file is a clear error or an empty store, never a crash", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  for (const std::string& bad : std::vector<std::string>{"{not json", "[]", R"({"format":"other","version":1,"credentials":{}})",
                                R"({"format":"floodgate-cooldowns","version":1,"credentials":{"A":{"cooldown_until_ms":"soon"}}})",
                                std::string("\0\xff\xfe", 3)}) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bad;
    try {
      CooldownStore store(file);
      FAIL("no error for: " << bad);
    } catch (const StoreError& e) {
      CHECK(e.code() == errc::store_corrupt);
      CHECK_THAT(e.what(), Catch::Contains(file.string()));
    }
    std::vector<std::string> warnings;
    auto previous = set_log_sink([&](LogLevel, std::string_view line) { warnings.emplace_back(line); });
    CooldownStore lenient(file, CooldownStore::OnCorrupt::warn_and_start_empty);
    set_log_sink(previous);
    CHECK(lenient.entries().empty());
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("corrupt") || Catch::Contains("not a floodgate-cooldowns"));
  }
}

TEST_CASE("an unreadable store file is an I/O error", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  fs::create_directory(file);  // a directory where the file should be
  try {
    CooldownStore store(file);
    FAIL("expected an error");
  } catch (const StoreError& e) {
    CHECK((e.code() == errc::io_error || e.code() == errc::store_corrupt));
  }
}

TEST_CASE("a store write that fails is logged and the pool goes on", "[store]") {
  TempDir dir;
  const auto blocker = dir.path / "not-a-folder";
  std::ofstream(blocker) << "x";  // the store's folder is a file: every write fails, even as root
  CooldownStore store(blocker / "c.json");
  std::vector<std::string> warnings;
  auto previous = set_log_sink([&](LogLevel, std::string_view line) { warnings.emplace_back(line); });
  Pool<> pool;
  add_credentials(pool, {"A"});
  pool.persist_to(store);
  pool.acquire()->flood_wait(5s);
  set_log_sink(previous);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("cannot write cooldown file"));
  CHECK(pool.snapshot("A")->state == CredentialState::cooling);
}
