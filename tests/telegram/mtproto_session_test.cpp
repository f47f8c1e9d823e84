// MtprotoSession against the fake libtdjson: logins, folders, revocation, secrets.
#include "fake_control.hpp"
#include "io_runner.hpp"

#include <floodgate/core/log.hpp>
#include <floodgate/telegram/mtproto_session.hpp>

#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using floodgate::errc;
using floodgate::Secret;
using floodgate::telegram::AuthPrompt;
using floodgate::telegram::AuthReply;
using floodgate::telegram::AuthStep;
using floodgate::telegram::MtprotoCredentials;
using floodgate::telegram::MtprotoSession;
using floodgate::telegram::TdjsonClient;
using floodgate::telegram::TdjsonLibrary;
using floodgate::test::FakeTdjson;
using floodgate::test::IoRunner;
using nlohmann::json;

namespace {

constexpr const char* kApiHash = "0123456789abcdef0123456789abcdef";
constexpr const char* kBotToken = "123456:AAE-secret-bot-token";

// A sessions root of its own, removed afterwards.
struct TempRoot {
  TempRoot() {
    static std::atomic<int> counter{0};
    base = fs::temp_directory_path() / fmt::format("floodgate-mtproto-{}-{}", ::getpid(), ++counter);
    path = base / "sessions";
  }
  ~TempRoot() { fs::remove_all(base); }
  fs::path base;
  fs::path path;
};

// Every log line, to prove what never appears in one.
struct LogCapture {
  LogCapture() {
    floodgate::set_log_level(floodgate::LogLevel::debug);
    old = floodgate::set_log_sink([this](floodgate::LogLevel, std::string_view line) {
      std::lock_guard lock(mutex);
      lines.emplace_back(line);
    });
  }
  ~LogCapture() {
    floodgate::set_log_sink(old);
    floodgate::set_log_level(floodgate::LogLevel::info);
  }
  bool contains(std::string_view text) {
    std::lock_guard lock(mutex);
    for (const auto& line : lines) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::mutex mutex;
  std::vector<std::string> lines;
  floodgate::LogSink old;
};

struct Fixture {
  FakeTdjson fake{FAKE_TDJSON_PATH};
  TempRoot root;
  IoRunner io;
  TdjsonClient tdjson{io.executor(), TdjsonLibrary::open({.path = FAKE_TDJSON_PATH})};

  MtprotoSession::Options bot_options(const char* token = kBotToken) {
    return {.sessions_root = root.path, .bot_token = Secret(token)};
  }
  std::unique_ptr<MtprotoSession> session(const std::string& id, std::int32_t api_id, MtprotoSession::Options options) {
    return std::make_unique<MtprotoSession>(tdjson, id, MtprotoCredentials{api_id, Secret(kApiHash)}, std::move(options));
  }
};

std::error_code wait_ready(MtprotoSession& session) { return session.async_wait_ready(asio::use_future).get(); }

unsigned mode_of(const fs::path& path) {
  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

}  // namespace

TEST_CASE("mtproto session: a bot logs in, its folder is private, a restart reuses the login",
          "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1001}, {"bot_token", kBotToken}});
  const auto old_umask = ::umask(0);  // permissions must not depend on it

  auto first = f.session("bot1", 1001, f.bot_options());
  CHECK_FALSE(wait_ready(*first));
  CHECK(first->state() == MtprotoSession::State::ready);
  CHECK(first->folder() == f.root.path / "bot1");

  const auto parameters = f.fake.requests_of("setTdlibParameters");
  REQUIRE(parameters.size() == 1);
  CHECK(parameters[0]["api_id"] == 1001);
  CHECK(parameters[0]["api_hash"] == kApiHash);  // the one place it goes: TDLib
  CHECK(parameters[0]["database_directory"] == first->folder().string());

  // Authorization updates TDLib would never send must not confuse the session.
  const int id = *first->client_id();
  f.fake.push(id, json{{"@type", "updateAuthorizationState"}, {"@client_id", id}, {"authorization_state", {{"@type", 7}}}}.dump());
  f.fake.push(id, json{{"@type", "updateAuthorizationState"}, {"@client_id", id}, {"authorization_state", "closed"}}.dump());
  f.fake.push(id, json{{"@type", 5}, {"@client_id", id}}.dump());
  auto [ec, reply] = first->async_send({{"@type", "testCallString"}, {"x", "still"}}, asio::use_future).get();
  CHECK_FALSE(ec);
  CHECK(reply["value"] == "still");
  CHECK(first->state() == MtprotoSession::State::ready);

  CHECK_FALSE(first->async_close(asio::use_future).get());
  CHECK(first->state() == MtprotoSession::State::closed);
  ::umask(old_umask);

  // Every folder floodgate created, and everything TDLib wrote, is private.
  CHECK(mode_of(f.root.path) == 0700);
  CHECK(mode_of(first->folder()) == 0700);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(first->folder())) {
    CAPTURE(entry.path());
    CHECK(mode_of(entry.path()) == (entry.is_directory() ? 0700u : 0600u));
    files += entry.is_regular_file();
  }
  CHECK(files >= 1);

  auto again = f.session("bot1", 1001, f.bot_options());
  CHECK_FALSE(wait_ready(*again));
  CHECK(f.fake.requests_of("checkAuthenticationBotToken").size() == 1);  // logged in once only
}

TEST_CASE("mtproto session: a user login goes through the prompt callback, wrong answers are asked again",
          "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1002}, {"phone", "+15550100"}, {"code", "24680"}, {"password", "hunter2"}});

  std::mutex mutex;
  std::vector<AuthPrompt> prompts;
  std::vector<std::thread> answerers;
  auto options = MtprotoSession::Options{.sessions_root = f.root.path};
  options.prompt = [&](const AuthPrompt& prompt, AuthReply reply) {
    std::lock_guard lock(mutex);
    prompts.push_back(prompt);
    const bool retry = !prompt.retry_reason.empty();
    const std::string answer = prompt.step == AuthStep::phone_number ? "+15550100"
                               : prompt.step == AuthStep::code       ? (retry ? "24680" : "11111")
                                                                     : "hunter2";
    // A person answers later, from another thread.
    answerers.emplace_back([reply, answer] { reply(Secret(answer)); });
  };
  auto session = f.session("user1", 1002, std::move(options));
  CHECK_FALSE(wait_ready(*session));

  std::lock_guard lock(mutex);
  for (auto& t : answerers) t.join();
  REQUIRE(prompts.size() == 4);
  CHECK(prompts[0].step == AuthStep::phone_number);
  CHECK(prompts[1].step == AuthStep::code);
  CHECK(prompts[2].step == AuthStep::code);
  CHECK(prompts[2].retry_reason == "PHONE_CODE_INVALID");
  CHECK(prompts[3].step == AuthStep::password);
  CHECK(prompts[3].session_id == "user1");
}

TEST_CASE("mtproto session: revoked authorization disables the session with a clear reason, others go on",
          "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1003}, {"bot_token", kBotToken}});
  f.fake.script({{"api_id", 1004}, {"bot_token", kBotToken}});
  auto revoked = f.session("revoked", 1003, f.bot_options());
  auto healthy = f.session("healthy", 1004, f.bot_options());
  REQUIRE_FALSE(wait_ready(*revoked));
  REQUIRE_FALSE(wait_ready(*healthy));

  SECTION("while running: the 401 reply is delivered and disables the session") {
    f.fake.script({{"api_id", 1003}, {"revoked", true}});
    auto [ec, reply] = revoked->async_send({{"@type", "getChats"}}, asio::use_future).get();
    CHECK_FALSE(ec);
    CHECK(reply["code"] == 401);
    CHECK(revoked->state() == MtprotoSession::State::disabled);
    CHECK_THAT(revoked->disabled_reason(), Catch::Contains("SESSION_REVOKED"));

    auto [refused, nothing] = revoked->async_send({{"@type", "getChats"}}, asio::use_future).get();
    CHECK(refused == errc::auth_failed);
    CHECK(revoked->async_wait_ready(asio::use_future).get() == errc::auth_failed);
  }

  SECTION("at start: a saved login that Telegram revoked") {
    REQUIRE_FALSE(revoked->async_close(asio::use_future).get());
    f.fake.script({{"api_id", 1003}, {"revoked", true}});
    auto restarted = f.session("revoked", 1003, f.bot_options());
    CHECK(wait_ready(*restarted) == errc::auth_failed);
    CHECK(restarted->state() == MtprotoSession::State::disabled);
    CHECK_THAT(restarted->disabled_reason(), Catch::Contains("revoked"));
  }

  f.fake.script({{"api_id", 1004}, {"responses", {{"getMe", {{{"@type", "user"}, {"id", 42}}}}}}});
  auto [ec, me] = healthy->async_send({{"@type", "getMe"}}, asio::use_future).get();
  CHECK_FALSE(ec);
  CHECK(me["id"] == 42);
  CHECK(healthy->state() == MtprotoSession::State::ready);
}

TEST_CASE("mtproto session: a rejected bot token disables the session", "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1005}, {"bot_token", kBotToken}});
  auto session = f.session("wrong-token", 1005, f.bot_options("999:not-the-token"));
  CHECK(wait_ready(*session) == errc::auth_failed);
  CHECK_THAT(session->disabled_reason(), Catch::Contains("ACCESS_TOKEN_INVALID"));
}

TEST_CASE("mtproto session: a corrupt folder disables the session with the folder named", "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1006}, {"bot_token", kBotToken}});

  SECTION("TDLib cannot open the database") {
    fs::create_directories(f.root.path / "corrupt");
    std::ofstream(f.root.path / "corrupt" / "td.binlog") << "\x01\x02 not a database";
    auto session = f.session("corrupt", 1006, f.bot_options());
    CHECK(wait_ready(*session) == errc::store_corrupt);
    CHECK_THAT(session->disabled_reason(), Catch::Contains((f.root.path / "corrupt").string()));
    CHECK_THAT(session->disabled_reason(), Catch::Contains("corrupt"));
  }
  SECTION("the folder is a file") {
    fs::create_directories(f.root.path);
    std::ofstream(f.root.path / "not-a-folder") << "x";
    auto session = f.session("not-a-folder", 1006, f.bot_options());
    CHECK(session->state() == MtprotoSession::State::disabled);
    CHECK_FALSE(session->client_id());
    CHECK_THAT(session->disabled_reason(), Catch::Contains("is not a folder"));
    auto [ec, reply] = session->async_send({{"@type", "getMe"}}, asio::use_future).get();
    CHECK(ec == errc::io_error);
  }
  SECTION("an id that cannot be a folder name is a configuration error") {
    CHECK_THROWS_AS(f.session("../escape", 1006, f.bot_options()), floodgate::Error);
    CHECK_THROWS_AS(f.session("", 1006, f.bot_options()), floodgate::Error);
  }
}

TEST_CASE("mtproto session: waiting on a session that never answers ends when it is destroyed",
          "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1007}, {"silent", true}});
  auto session = f.session("silent", 1007, f.bot_options());
  auto ready = session->async_wait_ready(asio::use_future);
  CHECK(ready.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
  CHECK(session->state() == MtprotoSession::State::starting);
  session.reset();
  CHECK(ready.get() == errc::shut_down);
}

TEST_CASE("mtproto session: api_hash, bot tokens and passwords never reach a log line or a reason",
          "[telegram][mtproto]") {
  LogCapture logs;
  Fixture f;
  f.fake.script({{"api_id", 1008}, {"bot_token", kBotToken}});
  f.fake.script({{"api_id", 1009}, {"bot_token", kBotToken}, {"revoked", true}});
  f.fake.script({{"api_id", 1010}, {"phone", "+15550199"}, {"code", "1"}, {"password", "s3cret-pw"}});

  auto good = f.session("good", 1008, f.bot_options());
  auto bad_token = f.session("bad-token", 1008, f.bot_options("777:wrong-bot-token"));
  auto user_options = MtprotoSession::Options{.sessions_root = f.root.path};
  user_options.prompt = [](const AuthPrompt& prompt, AuthReply reply) {
    reply(Secret(prompt.step == AuthStep::phone_number ? "+15550199" : prompt.step == AuthStep::code ? "1" : "s3cret-pw"));
  };
  auto user = f.session("user", 1010, std::move(user_options));
  CHECK_FALSE(wait_ready(*good));
  CHECK(wait_ready(*bad_token) == errc::auth_failed);
  CHECK_FALSE(wait_ready(*user));
  CHECK_FALSE(good->async_close(asio::use_future).get());
  auto revoked = f.session("good", 1009, f.bot_options());  // the saved login, now revoked
  CHECK(wait_ready(*revoked) == errc::auth_failed);

  CHECK(logs.contains("good"));  // the capture works
  for (const char* secret : {kApiHash, kBotToken, "777:wrong-bot-token", "s3cret-pw"}) {
    CAPTURE(secret);
    CHECK_FALSE(logs.contains(secret));
    for (auto* session : {good.get(), bad_token.get(), user.get(), revoked.get()}) {
      CHECK(session->disabled_reason().find(secret) == std::string::npos);
    }
  }
}

TEST_CASE("mtproto session 6: rejected answers are asked again a bounded number of times", "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1011}, {"phone", "+15550100"}});
  std::atomic<int> prompts{0};
  auto options = MtprotoSession::Options{.sessions_root = f.root.path, .max_prompt_retries = 2};
  options.prompt = [&](const AuthPrompt& prompt, AuthReply reply) {
    ++prompts;
    CHECK(prompt.attempt == prompts.load());
    reply(Secret("+1000"));  // always wrong: PHONE_NUMBER_INVALID
  };
  auto session = f.session("typo", 1011, std::move(options));
  CHECK(wait_ready(*session) == errc::cancelled);
  CHECK(session->state() == MtprotoSession::State::needs_user_action);
  CHECK_THAT(session->reason(), Catch::Contains("3 rejected answers") && Catch::Contains("PHONE_NUMBER_INVALID"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(prompts == 3);  // the first question and two retries
  CHECK(f.fake.requests_of("setAuthenticationPhoneNumber").size() == 3);
  CHECK(session->disabled_reason().empty());
}

TEST_CASE("mtproto session: login states only a person can pass need user action, named, never disabled",
          "[telegram][mtproto]") {
  const auto state = GENERATE(as<std::string>{}, "authorizationStateWaitPremiumPurchase",
                              "authorizationStateWaitRegistration", "authorizationStateWaitOtherDeviceConfirmation",
                              "authorizationStateWaitSomethingNew");
  CAPTURE(state);
  Fixture f;
  f.fake.script({{"api_id", 1012}, {"silent", true}});  // stays at the parameters; the test drives the states
  auto session = f.session("steps", 1012, {.sessions_root = f.root.path});
  REQUIRE(f.io.wait_until([&] { return !f.fake.requests_of("setTdlibParameters").empty(); }));
  const int id = *session->client_id();
  f.fake.push(id, json{{"@type", "updateAuthorizationState"}, {"@client_id", id}, {"authorization_state", {{"@type", state}}}}.dump());
  CHECK(wait_ready(*session) == errc::cancelled);
  CHECK(session->state() == MtprotoSession::State::needs_user_action);
  CHECK_THAT(session->reason(), Catch::Contains(state));
}

TEST_CASE("mtproto session: a user login without a prompt needs user action, not a disable", "[telegram][mtproto]") {
  Fixture f;
  f.fake.script({{"api_id", 1013}});
  auto session = f.session("no-prompt", 1013, {.sessions_root = f.root.path});
  CHECK(wait_ready(*session) == errc::cancelled);
  CHECK(session->state() == MtprotoSession::State::needs_user_action);
  CHECK_THAT(session->reason(), Catch::Contains("no") && Catch::Contains("prompt"));
}

TEST_CASE("mtproto session 2: a FLOOD_WAIT or a 5xx during login is waited out, not a disable", "[telegram][mtproto]") {
  const auto error = GENERATE(json{{"@type", "error"}, {"code", 420}, {"message", "FLOOD_WAIT_1"}},
                              json{{"@type", "error"}, {"code", 500}, {"message", "Internal Server Error"}});
  CAPTURE(error);
  Fixture f;
  // The bot token login is answered with the error once, then accepted.
  f.fake.script({{"api_id", 1014}, {"bot_token", kBotToken}});
  std::mutex mutex;
  std::vector<MtprotoSession::State> states;
  auto options = f.bot_options();
  options.on_state_change = [&](MtprotoSession::State s, const std::string&) {
    std::lock_guard lock(mutex);
    states.push_back(s);
  };
  // Script per client: the first checkAuthenticationBotToken gets the error.
  f.fake.script({{"api_id", 1014}, {"responses", {{"checkAuthenticationBotToken", {error, "pass"}}}}});
  auto session = f.session("flooded", 1014, std::move(options));
  CHECK(wait_ready(*session) == errc::deadline_exceeded);  // waiting: the caller may wait again
  CHECK(session->state() == MtprotoSession::State::waiting);
  CHECK(session->disabled_reason().empty());
  CHECK_THAT(session->reason(), Catch::Contains(error["message"].get<std::string>()));
  REQUIRE(f.io.wait_until([&] { return f.fake.requests_of("checkAuthenticationBotToken").size() >= 2; }));
  std::lock_guard lock(mutex);
  CHECK(std::find(states.begin(), states.end(), MtprotoSession::State::disabled) == states.end());
}
