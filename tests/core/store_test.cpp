#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

std::string store_file(const std::string& credentials) {
  return R"({"format":"floodgate-cooldowns","version":1,"credentials":)" + credentials + "}";
}

}  // namespace

TEST_CASE("far-future store times saturate instead of overflowing", "[store]") {
  // Found under faults: dates after 2262 overflowed (UBSan) and the entry was
  // dropped silently, even with OnCorrupt::fail.
  TempDir dir;
  const auto file = dir.path / "c.json";
  write_text(file, store_file(R"({"A":{"cooldown_until_ms":32503680000000},)"
                              R"("B":{"scoped":{"-100":18446744073709551615}},)"
                              R"("C":{"cooldown_until_ms":9223372036854775807}})"));
  CooldownStore store(file, CooldownStore::OnCorrupt::fail);
  REQUIRE(store.find("A"));
  CHECK(store.find("A")->cooldown_until == CooldownStore::WallTime::max());
  REQUIRE(store.find("B"));
  CHECK(store.find("B")->scoped.at("-100") == CooldownStore::WallTime::max());
  REQUIRE(store.find("C"));
  CHECK(store.find("C")->cooldown_until == CooldownStore::WallTime::max());

  store.set_disabled("D", "x");  // written back saturated, read again the same
  CooldownStore again(file, CooldownStore::OnCorrupt::fail);
  CHECK(again.find("A")->cooldown_until == CooldownStore::WallTime::max());
}

TEST_CASE("a store value of the wrong kind is corrupt, not dropped", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  for (const std::string& bad : {store_file(R"({"A":{"cooldown_until_ms":1.9e12}})"),
                                 store_file(R"({"A":{"scoped":[1900000000000]}})"),
                                 store_file(R"({"A":{"scoped":{"x":"soon"}}})"),
                                 store_file(R"({"A":{"disabled":"yes"}})"), store_file(R"({"A":17})"),
                                 store_file(R"({"A":{"disabled":true,"reason":[]}})"),
                                 store_file(std::string(100, '[') + std::string(100, ']'))}) {
    write_text(file, bad);
    INFO(bad);
    CHECK_THROWS_AS(CooldownStore(file, CooldownStore::OnCorrupt::fail), StoreError);
  }
}

TEST_CASE("temporary files a crash left behind are removed when the store opens", "[store]") {
  // Found under faults: 30 kill -9 during writes left 18 `.c.json.XXXXXX` files.
  TempDir dir;
  const auto file = dir.path / "c.json";
  write_text(dir.path / ".c.json.Ab3xYz", "{half a fi");
  write_text(dir.path / ".c.json.q1w2e3", "");
  write_text(dir.path / ".other.json.Ab3xYz", "not ours");
  write_text(dir.path / "c.json.keep", "not ours");
  CooldownStore store(file);
  CHECK_FALSE(fs::exists(dir.path / ".c.json.Ab3xYz"));
  CHECK_FALSE(fs::exists(dir.path / ".c.json.q1w2e3"));
  CHECK(fs::exists(dir.path / ".other.json.Ab3xYz"));
  CHECK(fs::exists(dir.path / "c.json.keep"));
  store.set_cooldown("A", std::chrono::system_clock::now() + 1h);
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir.path)) names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{".c.json.lock", ".other.json.Ab3xYz", "c.json", "c.json.keep"});
}

TEST_CASE("warn_and_start_empty never overwrites a file of a newer version", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  const std::string newer = R"({"format":"floodgate-cooldowns","version":2,"credentials":{},"shards":[1,2]})";
  write_text(file, newer);
  CHECK_THROWS_AS(CooldownStore(file, CooldownStore::OnCorrupt::fail), StoreError);

  std::vector<std::string> warnings;
  auto previous = set_log_sink([&](LogLevel, std::string_view line) { warnings.emplace_back(line); });
  CooldownStore lenient(file, CooldownStore::OnCorrupt::warn_and_start_empty);
  lenient.set_cooldown("A", std::chrono::system_clock::now() + 1h);
  lenient.set_disabled("B", "revoked");
  set_log_sink(previous);
  CHECK(read_text(file) == newer);
  REQUIRE(lenient.find("A"));  // kept in memory for this process
  CHECK(lenient.find("B")->disabled);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("version 2") && Catch::Contains("newer"));
}

TEST_CASE("warn_and_start_empty replaces a corrupt file on the next write", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  write_text(file, "{not json");
  auto previous = set_log_sink([](LogLevel, std::string_view) {});
  CooldownStore lenient(file, CooldownStore::OnCorrupt::warn_and_start_empty);
  lenient.set_disabled("B", "revoked");
  set_log_sink(previous);
  CHECK(CooldownStore(file).find("B")->disabled);
}

TEST_CASE("two stores on one file keep each other's entries", "[store]") {
  // Found under faults: two processes sharing a file lost each other's
  // entries (last writer won). Each write now merges under a flock.
  TempDir dir;
  const auto file = dir.path / "c.json";
  const auto now = std::chrono::system_clock::now();
  CooldownStore first(file);
  CooldownStore second(file);  // opened before the first one wrote anything
  first.set_cooldown("A", now + 1h);
  second.set_cooldown("B", now + 2h);
  second.set_scoped_cooldown("A", "-100", now + 3h);
  first.set_disabled("C", "revoked");

  CooldownStore reopened(file);
  REQUIRE(reopened.find("A"));
  CHECK(reopened.find("A")->cooldown_until == CooldownStore::WallTime(
                                                  std::chrono::duration_cast<CooldownStore::WallTime::duration>(
                                                      std::chrono::floor<std::chrono::milliseconds>(now + 1h)
                                                          .time_since_epoch())));
  CHECK(reopened.find("A")->scoped.size() == 1);
  REQUIRE(reopened.find("B"));
  CHECK(reopened.find("C")->disabled);
  CHECK(first.entries().size() == 3);  // a write also brings in the others' entries

  second.set_enabled("C");  // an enable applies to the shared record
  second.clear_cooldowns("A");
  CooldownStore last(file);
  CHECK_FALSE(last.find("C"));
  CHECK_FALSE(last.find("A"));
  CHECK(last.find("B"));
}

TEST_CASE("two processes writing one store at once lose nothing", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  const auto until = std::chrono::system_clock::now() + 1h;
  constexpr int kEach = 40;
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  const std::string prefix = child == 0 ? "child-" : "parent-";
  {
    CooldownStore store(file);
    for (int i = 0; i < kEach; ++i) store.set_cooldown(prefix + std::to_string(i), until);
  }
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(CooldownStore(file).entries().size() == 2 * kEach);
}

TEST_CASE("a wall clock stepped back while down never lengthens a cooldown", "[store]") {
  // Found under faults: stepped back 1 h, a 13 min cooldown became 73 min.
  TempDir dir;
  const auto file = dir.path / "c.json";
  auto wall = std::chrono::system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 12 / 1));
  const auto clock = [&wall] { return wall; };
  CooldownStore(file, CooldownStore::OnCorrupt::fail, clock).set_cooldown("A", wall + 13min);

  wall -= 1h;  // NTP stepped the clock back while the process was down
  CooldownStore store(file, CooldownStore::OnCorrupt::fail, clock);
  REQUIRE(store.find("A"));
  CHECK(*store.find("A")->cooldown_until - wall == 13min);

  wall += 2h;  // and forward: the cooldown ends early by the step (documented)
  CHECK_FALSE(CooldownStore(file, CooldownStore::OnCorrupt::fail, clock).find("A"));
}

TEST_CASE("a pool reading a saturated far-future time keeps the credential cooling", "[store]") {
  TempDir dir;
  const auto file = dir.path / "c.json";
  write_text(file, store_file(R"({"A":{"cooldown_until_ms":32503680000000}})"));
  ManualClock clock;
  CooldownStore store(file, CooldownStore::OnCorrupt::fail, wall_of(clock));
  Pool<> pool({}, clock);
  add_credentials(pool, {"A", "B"});
  pool.persist_to(store);
  CHECK(pool.snapshot("A")->state == CredentialState::cooling);
  CHECK(pool.snapshot("A")->cooldown_remaining == kMaxServerWait);  // clamped to the documented maximum, never wrapped
  CHECK(pool.acquire()->id() == "B");
}
