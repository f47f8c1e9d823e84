// The MTProto layer against real TDLib 1.8.65 (scripts/bootstrap installs it
// from npm). No network: TDLib stays "connecting", which is what these tests
// want. They cover what TDLib itself decides: parameters, the login states up
// to the prompt, close semantics ("Request aborted"), error shapes
// (testReturnError), database key errors, binlog corruption, file modes and
// teardown. The numbered cases are the six lifecycle failures of issue 12;
// each failed before its fix.
#include "io_runner.hpp"
#include "lsan_tdlib.hpp"
#include "real_tdjson.hpp"
#include "test_support.hpp"

#include <floodgate/core/cooldown_store.hpp>
#include <floodgate/telegram/flood_errors.hpp>
#include <floodgate/telegram/mtproto_pool.hpp>

#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace tg = floodgate::telegram;
using floodgate::errc;
using floodgate::Secret;
using floodgate::test::IoRunner;
using floodgate::test::real_tdjson;
using floodgate::test::real_tdjson_path;
using floodgate::test::TempRoot;
using nlohmann::json;
using State = tg::MtprotoSession::State;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiHash = "a3406de8d171bb422bb6ddf3bbd800e2";
constexpr const char* kBotToken = "123456:AAE-real-tdlib-test-token";

unsigned mode_of(const fs::path& path) {
  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

std::string contents(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every state change of a session, and the prompts it asked.
struct Recorder {
  std::mutex mutex;
  std::vector<std::pair<State, std::string>> states;
  std::vector<tg::AuthPrompt> prompts;
  std::vector<tg::AuthReply> replies;  // held, unanswered, unless a test answers

  void attach(tg::MtprotoSession::Options& options) {
    options.on_state_change = [this](State s, const std::string& reason) {
      std::lock_guard lock(mutex);
      states.emplace_back(s, reason);
    };
    options.prompt = [this](const tg::AuthPrompt& prompt, tg::AuthReply reply) {
      std::lock_guard lock(mutex);
      prompts.push_back(prompt);
      replies.push_back(std::move(reply));
    };
  }
  std::size_t prompt_count() {
    std::lock_guard lock(mutex);
    return prompts.size();
  }
  std::string first_reason(State s) {
    std::lock_guard lock(mutex);
    for (const auto& [state, reason] : states) {
      if (state == s) return reason;
    }
    return "(never in that state)";
  }
  bool saw(State s) {
    std::lock_guard lock(mutex);
    for (const auto& [state, reason] : states) {
      if (state == s) return true;
    }
    return false;
  }
  int count(State s) {
    std::lock_guard lock(mutex);
    int n = 0;
    for (const auto& [state, reason] : states) n += state == s;
    return n;
  }
};

struct Fixture {
  TempRoot root;
  IoRunner io{2};  // two threads: ordering bugs between callbacks show
  tg::TdjsonClient tdjson{io.executor(), real_tdjson()};

  tg::MtprotoSession::Options options() { return {.sessions_root = root.path}; }
  std::unique_ptr<tg::MtprotoSession> session(const std::string& id, tg::MtprotoSession::Options options,
                                              std::int32_t api_id = 94575) {
    return std::make_unique<tg::MtprotoSession>(tdjson, id, tg::MtprotoCredentials{api_id, Secret(kApiHash)},
                                                std::move(options));
  }
};

}  // namespace

TEST_CASE("real tdlib: a user session reaches the phone prompt, its files are private while it runs",
          "[telegram][mtproto][real]") {
  Fixture f;
  Recorder recorder;
  auto options = f.options();
  recorder.attach(options);
  const auto old_umask = ::umask(022);
  auto session = f.session("user1", std::move(options));
  REQUIRE(f.io.wait_until([&] { return recorder.prompt_count() == 1; }));
  ::umask(old_umask);
  CHECK(recorder.prompts[0].step == tg::AuthStep::phone_number);
  CHECK(recorder.prompts[0].attempt == 1);
  CHECK(session->state() == State::authorizing);

  // TDLib made db.sqlite 0644 and files/ 0750; the session tightened them before prompting.
  REQUIRE(fs::exists(session->folder() / "db.sqlite"));
  for (const auto& entry : fs::recursive_directory_iterator(session->folder())) {
    CAPTURE(entry.path());
    CHECK(mode_of(entry.path()) == (entry.is_directory() ? 0700u : 0600u));
  }
  CHECK(mode_of(session->folder()) == 0700);
  CHECK_FALSE(session->async_close(asio::use_future).get());
  CHECK(session->state() == State::closed);
}

TEST_CASE("real tdlib: error objects from testReturnError classify like Telegram's", "[telegram][mtproto][real]") {
  Fixture f;
  const auto client = f.tdjson.create_client();
  auto returned = [&](int code, const std::string& message) {
    auto [ec, reply] = f.tdjson
                           .async_send(client,
                                       {{"@type", "testReturnError"},
                                        {"error", {{"@type", "error"}, {"code", code}, {"message", message}}}},
                                       asio::use_future)
                           .get();
    REQUIRE_FALSE(ec);
    CHECK(reply["@type"] == "error");
    const auto error = tg::classify_td_response(reply);
    REQUIRE(error);
    return *error;
  };
  CHECK(returned(420, "FLOOD_WAIT_30").retry_after == 30s);
  CHECK(returned(420, "SLOWMODE_WAIT_7").chat_scoped);
  CHECK(returned(429, "Too Many Requests: retry after 12").retry_after == 12s);
  CHECK(returned(401, "SESSION_REVOKED").kind == floodgate::OutcomeKind::auth_failed);
  CHECK(returned(500, "Request aborted").kind == floodgate::OutcomeKind::maybe_applied);
  CHECK(returned(400, "PHONE_CODE_INVALID").kind == floodgate::OutcomeKind::rejected);
}

TEST_CASE("real tdlib 1: closing while a login request is pending ends closed, not disabled",
          "[telegram][mtproto][real][lifecycle]") {
  Fixture f;
  Recorder recorder;
  auto options = f.options();
  recorder.attach(options);
  options.bot_token = Secret(kBotToken);  // offline, checkAuthenticationBotToken never gets an answer
  auto session = f.session("bot1", std::move(options));
  REQUIRE(f.io.wait_until([&] { return session->state() == State::authorizing && f.tdjson.stats().pending >= 1; }));

  CHECK_FALSE(session->async_close(asio::use_future).get());  // TDLib answers the login 500 "Request aborted"
  CHECK(session->state() == State::closed);
  CHECK(session->disabled_reason().empty());
  CHECK_FALSE(recorder.saw(State::disabled));
}

TEST_CASE("real tdlib 2: a login that times out is retried and reported waiting, never disabled or persisted",
          "[telegram][mtproto][real][lifecycle]") {
  Fixture f;
  const auto store_file = f.root.base / "cooldowns.json";
  floodgate::CooldownStore store(store_file);
  Recorder recorder;
  tg::MtprotoPool::Options options;
  options.session = f.options();
  recorder.attach(options.session);
  options.session.bot_token = Secret(kBotToken);
  options.session.login_timeout = 200ms;
  options.session.login_retry_max = 300ms;
  options.store = &store;
  {
    tg::MtprotoPool pool(f.tdjson, {{"bot1", {94575, Secret(kApiHash)}}}, std::move(options));
    CHECK(pool.async_wait_ready(asio::use_future).get() == errc::deadline_exceeded);
    // From the recorded states, not the session's current one: under load the
    // 300 ms retry may already have put it back to authorizing. The state
    // callback runs on the session's executor and may come just after the wait ends.
    REQUIRE(f.io.wait_until([&] { return recorder.saw(State::waiting); }));
    CHECK_THAT(recorder.first_reason(State::waiting),
               Catch::Contains("no answer from TDLib to checkAuthenticationBotToken"));
    CHECK(pool.snapshot("bot1")->state != floodgate::CredentialState::disabled);

    // It keeps trying: a second timeout after the backoff.
    REQUIRE(f.io.wait_until([&] { return recorder.count(State::waiting) >= 2; }));
    CHECK(recorder.count(State::authorizing) >= 2);
    CHECK_FALSE(recorder.saw(State::disabled));
    CHECK_FALSE(pool.async_close(asio::use_future).get());
  }
  CHECK_FALSE(store.find("bot1"));
  CHECK_FALSE(fs::exists(store_file));  // nothing was ever persisted
}

TEST_CASE("real tdlib 3: processes that close a pool of three sessions exit without an abort",
          "[telegram][mtproto][real][lifecycle]") {
  TempRoot root;
  const auto mode = GENERATE(as<std::string>{}, "close", "destroy");
  CAPTURE(mode);
  int aborted = 0, failed = 0;
  for (int run = 0; run < 5; ++run) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      const auto path = real_tdjson_path();
      const auto sessions = root.path.string();
      ::execl(TEARDOWN_CYCLE_PATH, TEARDOWN_CYCLE_PATH, path.c_str(), sessions.c_str(), "2", mode.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CAPTURE(status);
    aborted += WIFSIGNALED(status);
    failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  CHECK(aborted == 0);
  CHECK(failed == 0);
}

TEST_CASE("real tdlib 4: a pool destroyed as a session is disabled never writes to a destroyed store",
          "[telegram][mtproto][real][lifecycle]") {
  Fixture f;
  for (int round = 0; round < 10; ++round) {
    const auto folder = f.root.base / fmt::format("store{}", round);
    fs::create_directories(folder);
    {
      floodgate::CooldownStore store(folder / "cooldowns.json");
      tg::MtprotoPool::Options options;
      options.session = f.options();
      options.store = &store;
      // api_id 0: TDLib rejects the parameters at once, so the disable races the teardown.
      tg::MtprotoPool pool(f.tdjson, {{fmt::format("bad{}", round), {0, Secret(kApiHash)}}}, std::move(options));
    }  // the documented order: the pool, then the store
    std::this_thread::sleep_for(20ms);  // a late state change would land here (ASan: use after free)
    for (const auto& entry : fs::directory_iterator(folder)) {
      CAPTURE(entry.path());
      // The store's file and its writers' lock file; no file with a garbage name.
      CHECK((entry.path().filename() == "cooldowns.json" || entry.path().filename() == ".cooldowns.json.lock"));
    }
  }
}

TEST_CASE("real tdlib 5: no callback runs after async_close completed", "[telegram][mtproto][real][lifecycle]") {
  Fixture f;
  for (int round = 0; round < 5; ++round) {
    std::atomic<bool> closed{false};
    std::atomic<int> late{0};
    std::atomic<bool> saw_closed_update{false};
    auto options = f.options();
    options.prompt = [&](const tg::AuthPrompt&, tg::AuthReply) { late += closed.load(); };
    options.on_state_change = [&](State, const std::string&) { late += closed.load(); };
    options.on_update = [&](json update) {
      late += closed.load();
      if (update.value("authorization_state", json::object()).value("@type", "") == "authorizationStateClosed") {
        saw_closed_update = true;
      }
    };
    auto session = f.session(fmt::format("user{}", round), std::move(options));
    REQUIRE(f.io.wait_until([&] { return session->state() == State::authorizing; }));
    REQUIRE_FALSE(session->async_close(asio::use_future).get());
    closed = true;
    f.io.drain();
    std::this_thread::sleep_for(20ms);
    CHECK(saw_closed_update);  // the user saw TDLib's last update, before the close completed
    CHECK(late == 0);
  }
}

TEST_CASE("real tdlib 6: an empty answer cancels the login instead of re-prompting forever",
          "[telegram][mtproto][real][lifecycle]") {
  Fixture f;
  std::atomic<int> prompts{0};
  auto options = f.options();
  // A terminal at end of input: every answer is empty.
  options.prompt = [&](const tg::AuthPrompt&, tg::AuthReply reply) {
    ++prompts;
    reply(Secret(""));
  };
  auto session = f.session("eof", std::move(options));
  CHECK(session->async_wait_ready(asio::use_future).get() == errc::cancelled);
  CHECK(session->state() == State::needs_user_action);
  CHECK_THAT(session->reason(), Catch::Contains("no answer to the phone number prompt"));
  std::this_thread::sleep_for(100ms);
  CHECK(prompts == 1);
}

TEST_CASE("real tdlib: a wrong database encryption key is reported as such", "[telegram][mtproto][real]") {
  Fixture f;
  auto options = f.options();
  options.database_encryption_key = Secret("Zmlyc3Qta2V5");
  Recorder recorder;
  recorder.attach(options);
  {
    auto first = f.session("keyed", options);
    REQUIRE(f.io.wait_until([&] { return recorder.prompt_count() == 1; }));
    REQUIRE_FALSE(first->async_close(asio::use_future).get());
  }
  options.database_encryption_key = Secret("b3RoZXIta2V5");
  auto again = f.session("keyed", options);
  CHECK(again->async_wait_ready(asio::use_future).get() == errc::store_corrupt);
  CHECK_THAT(again->disabled_reason(), Catch::Contains("encrypted with another key"));
  CHECK_THAT(again->disabled_reason(), Catch::Contains("keyed"));
  CHECK(again->disabled_reason().find("api_id") == std::string::npos);
}

TEST_CASE("real tdlib: a corrupt td.binlog is reported and left as it was, not truncated",
          "[telegram][mtproto][real]") {
  Fixture f;
  Recorder recorder;
  auto options = f.options();
  recorder.attach(options);
  {
    auto first = f.session("corrupt", options);
    REQUIRE(f.io.wait_until([&] { return recorder.prompt_count() == 1; }));
    REQUIRE_FALSE(first->async_close(asio::use_future).get());
  }
  const auto binlog = f.root.path / "corrupt" / "td.binlog";
  {
    std::fstream file(binlog, std::ios::in | std::ios::out | std::ios::binary);
    file.write("\x01\x02 not a database at all", 24);
  }
  const auto before = contents(binlog);
  auto again = f.session("corrupt", options);
  CHECK(again->async_wait_ready(asio::use_future).get() == errc::store_corrupt);
  CHECK_THAT(again->disabled_reason(), Catch::Contains("corrupt") && Catch::Contains("td.binlog"));
  CHECK(contents(binlog) == before);
}

TEST_CASE("real tdlib: 100 cycles of a pool of three sessions to the prompt, closed and destroyed",
          "[telegram][mtproto][real][lifecycle]") {
  TempRoot root;
  IoRunner io(2);
  auto library = real_tdjson();
  for (int cycle = 0; cycle < 100; ++cycle) {
    CAPTURE(cycle);
    tg::TdjsonClient tdjson(io.executor(), library);
    std::atomic<int> prompts{0};
    tg::MtprotoPool::Options options;
    options.session.sessions_root = root.path;
    options.session.prompt = [&](const tg::AuthPrompt&, tg::AuthReply) { ++prompts; };
    std::vector<floodgate::Credential<floodgate::MtprotoApp>> accounts;
    for (int n = 1; n <= 3; ++n) accounts.push_back({fmt::format("account{}", n), {94575 + n, Secret(kApiHash)}});
    tg::MtprotoPool pool(tdjson, accounts, std::move(options));
    REQUIRE(io.wait_until([&] { return prompts == 3; }, 30s));
    if (cycle % 2 == 0) REQUIRE_FALSE(pool.async_close(asio::use_future).get());  // odd cycles: the destructor
    for (int n = 1; n <= 3; ++n) CHECK(pool.session(fmt::format("account{}", n))->state() != State::disabled);
  }
}
