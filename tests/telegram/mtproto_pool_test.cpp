// MtprotoPool against the fake libtdjson, loaded through the real loader:
// rotation on every flood form, slow-mode scoping, bound requests, persisted
// cooldowns, disabled sessions, secrets. Cooldowns run on a ManualClock, so
// "cooling for exactly 30 s" is checked to the tick and no test sleeps for it.
#include "fake_control.hpp"
#include "io_runner.hpp"
#include "test_support.hpp"

#include <floodgate/core/format.hpp>
#include <floodgate/telegram/mtproto_pool.hpp>
#include <floodgate/core/cooldown_store.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using floodgate::CooldownStore;
using floodgate::Credential;
using floodgate::CredentialState;
using floodgate::errc;
using floodgate::ManualClock;
using floodgate::MtprotoApp;
using floodgate::Secret;
using floodgate::telegram::MtprotoSession;
using floodgate::telegram::TdjsonClient;
using floodgate::telegram::TdjsonLibrary;
using floodgate::test::FakeTdjson;
using floodgate::test::IoRunner;
using floodgate::test::LogCapture;
using floodgate::test::TempRoot;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

using Pool = floodgate::telegram::BasicMtprotoPool<ManualClock>;

constexpr const char* kApiHash = "fedcba9876543210fedcba9876543210";
constexpr const char* kBotToken = "424242:AAH-pool-test-bot-token";
constexpr std::int64_t kFirstApiId = 3000;  // account N has api_id 3000 + N

json td_error(int code, const std::string& message) { return {{"@type", "error"}, {"code", code}, {"message", message}}; }
json history(std::int64_t chat) { return {{"@type", "getChatHistory"}, {"chat_id", chat}, {"limit", 10}}; }
json send_message(std::int64_t chat) { return {{"@type", "sendMessage"}, {"chat_id", chat}}; }
const json kMessages = {{"@type", "messages"}, {"total_count", 0}, {"messages", json::array()}};
const json kSent = {{"@type", "message"}, {"id", 1}};

struct Fixture {
  FakeTdjson fake{FAKE_TDJSON_PATH};
  TempRoot root;
  IoRunner io;
  TdjsonClient tdjson{io.executor(), TdjsonLibrary::open({.path = FAKE_TDJSON_PATH})};
  ManualClock clock{std::chrono::system_clock::now()};
  fs::path store_file = root.base / "cooldowns.json";
  std::optional<CooldownStore> store;

  explicit Fixture(int accounts) {
    for (int n = 1; n <= accounts; ++n) {
      // Every account logs in as a bot and answers history and messages unless a test says otherwise.
      fake.script({{"api_id", kFirstApiId + n},
                   {"bot_token", kBotToken},
                   {"responses", {{"getChatHistory", {kMessages}}, {"sendMessage", {kSent}}}}});
      credentials.push_back({fmt::format("account{}", n), {kFirstApiId + n, Secret(kApiHash)}});
    }
    open_store();
  }

  /// (Re)reads the store file, as a restarted program would.
  void open_store() {
    store.reset();
    store.emplace(store_file, CooldownStore::OnCorrupt::fail, [c = clock] { return c.wall_now(); });
  }

  void script(int account, const json& responses) const {
    fake.script({{"api_id", kFirstApiId + account}, {"responses", responses}});
  }

  std::unique_ptr<Pool> pool() {
    Pool::Options options;
    options.session = {.sessions_root = root.path, .bot_token = Secret(kBotToken)};
    options.retry = {.max_wait = 0ns, .flood_jitter = 0};  // exact cooldowns; never wait in these tests
    options.store = &*store;
    options.clock = clock;
    auto made = std::make_unique<Pool>(tdjson, credentials, std::move(options));
    REQUIRE_FALSE(made->async_wait_ready(asio::use_future).get());
    return made;
  }

  /// Requests of `type` that the fake received from `account`'s TDLib client in `pool`.
  int received(const Pool& pool, const std::string& account, const std::string& type) const {
    const auto client = pool.session(account)->client_id();
    int count = 0;
    for (const auto& entry : fake.requests()) {
      count += entry.value("client", 0) == *client && entry.contains("request") &&
               entry["request"].value("@type", "") == type;
    }
    return count;
  }

  std::vector<Credential<MtprotoApp>> credentials;
};

std::tuple<std::error_code, Pool::Result> send(Pool& pool, json request, Pool::SendOptions options = {}) {
  return pool.async_send(std::move(request), std::move(options), asio::use_future).get();
}

}  // namespace

TEST_CASE("mtproto pool: each flood form cools the session for exactly N seconds and the request moves",
          "[telegram][mtproto][pool]") {
  const auto [code, message] = GENERATE(table<int, std::string>({
      {429, "Too Many Requests: retry after 30"},
      {420, "FLOOD_WAIT_30"},
      {420, "FLOOD_PREMIUM_WAIT_30"},
  }));
  CAPTURE(message);
  Fixture f(3);
  f.script(1, {{"getChatHistory", {td_error(code, message)}}});
  auto pool = f.pool();

  // Least recently used first: three requests try every session, account1 once.
  std::map<std::string, int> served;
  int moved = 0;
  for (int i = 0; i < 3; ++i) {
    auto [ec, result] = send(*pool, history(-1001));
    REQUIRE_FALSE(ec);
    CHECK(result.value->at("@type") == "messages");
    CHECK(result.credential != "account1");
    ++served[result.credential];
    moved += result.attempts == 2;
  }
  CHECK(moved == 1);
  CHECK(f.received(*pool, "account1", "getChatHistory") == 1);

  const auto cooled = pool->snapshot("account1");
  CHECK(cooled->state == CredentialState::cooling);
  CHECK(cooled->flood_waits == 1);
  CHECK(cooled->cooldown_remaining == 30s);
  const auto persisted = f.store->find("account1");
  REQUIRE(persisted);
  CHECK(*persisted->cooldown_until == f.clock.wall_now() + 30s);

  // While it cools, nothing is sent to it.
  for (int i = 0; i < 4; ++i) CHECK(std::get<1>(send(*pool, history(-1001))).credential != "account1");
  CHECK(f.received(*pool, "account1", "getChatHistory") == 1);

  // One tick before the end it still cools; at the end it is back.
  f.clock.advance(30s - 1ns);
  CHECK(pool->snapshot("account1")->state == CredentialState::cooling);
  f.clock.advance(1ns);
  CHECK(pool->snapshot("account1")->state == CredentialState::ready);
}

TEST_CASE("mtproto pool: concurrent requests each complete once while sessions flood", "[telegram][mtproto][pool]") {
  Fixture f(3);
  f.script(2, {{"getChatHistory", {td_error(420, "FLOOD_WAIT_120")}}});
  auto pool = f.pool();

  std::vector<std::future<std::tuple<std::error_code, Pool::Result>>> replies;
  for (int i = 0; i < 24; ++i) replies.push_back(pool->async_send(history(-5), {}, asio::use_future));
  int ok = 0;
  for (auto& reply : replies) {
    auto [ec, result] = reply.get();
    CHECK_FALSE(ec);
    ok += !ec && result.value && result.credential != "account2";
  }
  CHECK(ok == 24);
  CHECK(f.received(*pool, "account2", "getChatHistory") >= 1);
  CHECK(pool->snapshot("account2")->flood_waits == static_cast<std::uint64_t>(f.received(*pool, "account2", "getChatHistory")));
}

TEST_CASE("mtproto pool: SLOWMODE_WAIT cools only that chat, the session still serves other chats",
          "[telegram][mtproto][pool]") {
  Fixture f(2);
  f.script(1, {{"sendMessage", {td_error(420, "SLOWMODE_WAIT_20"), kSent}}});
  auto pool = f.pool();

  // Sending as account1 into a slow-mode group: only that chat cools.
  auto [ec, result] = send(*pool, send_message(-100), {.bound_to = "account1"});
  CHECK(ec == errc::all_credentials_cooling);
  CHECK(result.earliest == f.clock.now() + 20s);
  CHECK(result.description == "SLOWMODE_WAIT_20");
  auto record = pool->snapshot("account1");
  CHECK(record->state == CredentialState::ready);
  CHECK(record->scoped_cooldowns == 1);
  CHECK(record->flood_waits == 1);
  REQUIRE(f.store->find("account1"));
  CHECK(f.store->find("account1")->scoped.contains("-100"));
  CHECK_FALSE(f.store->find("account1")->cooldown_until);

  // The same session sends to another chat at once...
  auto [other_ec, other] = send(*pool, send_message(-200), {.bound_to = "account1"});
  CHECK_FALSE(other_ec);
  CHECK(other.credential == "account1");
  // ...but not to the slow chat, which is refused without a request to Telegram.
  auto [again_ec, again] = send(*pool, send_message(-100), {.bound_to = "account1"});
  CHECK(again_ec == errc::all_credentials_cooling);
  CHECK(again.earliest == f.clock.now() + 20s);
  CHECK(f.received(*pool, "account1", "sendMessage") == 2);
  CHECK(pool->snapshot("account1")->requests == 2);
  CHECK(pool->snapshot("account1")->successes == 1);

  // Movable requests for the slow chat go to account2.
  std::map<std::string, int> for_slow_chat;
  for (int i = 0; i < 4; ++i) ++for_slow_chat[std::get<1>(send(*pool, history(-100))).credential];
  CHECK(for_slow_chat == std::map<std::string, int>{{"account2", 4}});
  // Other chats may still use account1 (which one the strategy prefers is its
  // business): with account2 cooling, another chat is served by account1,
  // while the slow chat has no session left.
  pool->pool().cooldown("account2", 5s);
  auto [elsewhere_ec, elsewhere] = send(*pool, history(-300));
  CHECK_FALSE(elsewhere_ec);
  CHECK(elsewhere.credential == "account1");
  CHECK(std::get<0>(send(*pool, history(-100))) == errc::all_credentials_cooling);

  f.clock.advance(20s);
  CHECK_FALSE(std::get<0>(send(*pool, send_message(-100), {.bound_to = "account1"})));
}

TEST_CASE("mtproto pool: a movable request that meets slow mode moves, for that chat only",
          "[telegram][mtproto][pool]") {
  Fixture f(2);
  f.script(1, {{"getChatHistory", {td_error(420, "SLOWMODE_WAIT_45")}}});
  auto pool = f.pool();

  // Two requests: the second session in LRU order is account1 at the latest.
  int moved = 0;
  for (int i = 0; i < 2; ++i) {
    auto [ec, result] = send(*pool, history(0), {.destination = "@public_channel"});
    REQUIRE_FALSE(ec);
    CHECK(result.credential == "account2");
    moved += result.attempts == 2;
  }
  CHECK(moved == 1);
  const auto record = pool->snapshot("account1");
  CHECK(record->state == CredentialState::ready);  // the session as a whole does not cool
  CHECK(record->scoped_cooldowns == 1);
  CHECK(f.store->find("account1")->scoped.at("@public_channel") == f.clock.wall_now() + 45s);
}

TEST_CASE("mtproto pool: a bound request is never moved to another session", "[telegram][mtproto][pool]") {
  Fixture f(2);
  f.script(1, {{"sendMessage", {td_error(420, "FLOOD_WAIT_60"), kSent}}});
  auto pool = f.pool();

  auto [ec, result] = send(*pool, send_message(7), {.bound_to = "account1"});
  CHECK(ec == errc::all_credentials_cooling);
  CHECK(result.credential == "account1");
  CHECK(result.attempts == 1);
  CHECK(result.earliest == f.clock.now() + 60s);
  CHECK(result.description == "FLOOD_WAIT_60");
  CHECK(f.received(*pool, "account2", "sendMessage") == 0);

  // Refused at once while it cools: not sent, not moved.
  auto [refused, refusal] = send(*pool, send_message(7), {.bound_to = "account1"});
  CHECK(refused == errc::all_credentials_cooling);
  CHECK(refusal.earliest == f.clock.now() + 60s);
  CHECK(f.received(*pool, "account1", "sendMessage") == 1);
  CHECK(f.received(*pool, "account2", "sendMessage") == 0);

  // The account's cooldown is the pool's: movable traffic avoids it too, and it is persisted.
  const auto record = pool->snapshot("account1");
  CHECK(record->state == CredentialState::cooling);
  CHECK(record->flood_waits == 1);
  CHECK(record->requests == 1);  // bound requests count in the pool's snapshot
  CHECK(f.store->find("account1")->cooldown_until);
  CHECK(std::get<1>(send(*pool, history(7))).credential == "account2");

  CHECK(std::get<0>(send(*pool, send_message(7), {.bound_to = "account9"})) == errc::unknown_credential);

  f.clock.advance(60s);
  auto [later_ec, later] = send(*pool, send_message(7), {.bound_to = "account1"});
  CHECK_FALSE(later_ec);
  CHECK(later.value->at("@type") == "message");
  const auto after = pool->snapshot("account1");
  CHECK(after->successes == 1);
  CHECK(after->requests == 2);  // the refusals were no requests
  CHECK(after->in_flight == 0);
  CHECK(pool->snapshot("account2")->requests == 1);  // the movable history request only
}

TEST_CASE("mtproto pool: a cooldown survives a restart, the new pool refuses the cooled session",
          "[telegram][mtproto][pool]") {
  Fixture f(2);
  f.script(1, {{"getChatHistory", {td_error(429, "Too Many Requests: retry after 600")}}});
  f.script(2, {{"sendMessage", {td_error(420, "SLOWMODE_WAIT_900"), kSent}}});
  {
    auto first = f.pool();
    for (int i = 0; i < 2; ++i) REQUIRE_FALSE(std::get<0>(send(*first, history(-9))));
    REQUIRE(first->snapshot("account1")->state == CredentialState::cooling);
    REQUIRE(std::get<0>(send(*first, send_message(-77), {.bound_to = "account2"})) == errc::all_credentials_cooling);
  }

  f.clock.advance(100s);  // the program was down for a while
  f.open_store();
  auto second = f.pool();
  const auto record = second->snapshot("account1");
  CHECK(record->state == CredentialState::cooling);
  CHECK(record->cooldown_remaining <= 500s);
  CHECK(record->cooldown_remaining > 499s);  // the file keeps milliseconds

  auto [ec, result] = send(*second, history(-9), {.bound_to = "account1"});
  CHECK(ec == errc::all_credentials_cooling);
  CHECK(*result.earliest - f.clock.now() == record->cooldown_remaining);
  for (int i = 0; i < 3; ++i) CHECK(std::get<1>(send(*second, history(-9))).credential == "account2");
  CHECK(f.received(*second, "account1", "getChatHistory") == 0);

  // account2's slow mode in chat -77 survived too; its other chats are open.
  f.script(2, {{"sendMessage", {kSent}}});
  auto [slow_ec, slow] = send(*second, send_message(-77), {.bound_to = "account2"});
  CHECK(slow_ec == errc::all_credentials_cooling);
  CHECK(*slow.earliest - f.clock.now() > 799s);
  CHECK_FALSE(std::get<0>(send(*second, send_message(-78), {.bound_to = "account2"})));
  CHECK(f.received(*second, "account2", "sendMessage") == 1);
}

TEST_CASE("mtproto pool: revoked or corrupt sessions are disabled with their reason, the others serve",
          "[telegram][mtproto][pool]") {
  Fixture f(3);
  fs::create_directories(f.root.path / "account3");
  std::ofstream(f.root.path / "account3" / "td.binlog") << "\x01\x02 not a database";
  auto pool = f.pool();

  const auto corrupt = pool->snapshot("account3");
  CHECK(corrupt->state == CredentialState::disabled);
  CHECK_THAT(corrupt->disabled_reason, Catch::Contains("corrupt") && Catch::Contains("account3"));

  f.fake.script({{"api_id", kFirstApiId + 1}, {"revoked", true}});
  for (int i = 0; i < 2; ++i) {
    auto [ec, result] = send(*pool, history(-3));
    REQUIRE_FALSE(ec);
    CHECK(result.credential == "account2");
  }
  const auto revoked = pool->snapshot("account1");
  CHECK(revoked->state == CredentialState::disabled);
  CHECK_THAT(revoked->disabled_reason, Catch::Contains("SESSION_REVOKED"));
  CHECK(f.store->find("account1")->disabled);

  const auto table = floodgate::status_table(pool->snapshot());
  CHECK_THAT(table, Catch::Contains("⛔ account1: Disabled (") && Catch::Contains("SESSION_REVOKED"));
  CHECK_THAT(table, Catch::Contains("⛔ account3: Disabled ("));
  CHECK_THAT(table, Catch::Contains("✅ account2: Ready"));

  auto [bound_ec, bound] = send(*pool, send_message(1), {.bound_to = "account1"});
  CHECK(bound_ec == errc::all_credentials_disabled);
  CHECK_THAT(bound.description, Catch::Contains("SESSION_REVOKED"));
  CHECK(std::get<1>(send(*pool, history(-3))).credential == "account2");
}

TEST_CASE("mtproto pool: with every session disabled, requests end with all_credentials_disabled",
          "[telegram][mtproto][pool]") {
  Fixture f(1);
  f.fake.script({{"api_id", kFirstApiId + 1}, {"revoked", true}});
  auto pool = f.pool();
  auto [ec, result] = send(*pool, history(-3));
  CHECK(ec == errc::all_credentials_disabled);
  CHECK(result.attempts == 1);
  CHECK_THAT(result.description, Catch::Contains("SESSION_REVOKED"));
}

TEST_CASE("mtproto pool: api_hash and bot token never reach a log line, a status line or the store",
          "[telegram][mtproto][pool]") {
  LogCapture logs;
  Fixture f(2);
  f.script(1, {{"getChatHistory", {td_error(420, "FLOOD_WAIT_5")}}});
  f.script(2, {{"sendMessage", {td_error(420, "SLOWMODE_WAIT_9")}}});
  auto pool = f.pool();
  for (int i = 0; i < 2; ++i) send(*pool, history(-1));
  send(*pool, send_message(-2), {.bound_to = "account2"});
  f.fake.script({{"api_id", kFirstApiId + 2}, {"revoked", true}});
  send(*pool, history(-1), {.bound_to = "account2"});

  CHECK(logs.contains("FLOOD_WAIT_5"));  // the capture works and flood waits are logged
  CHECK(logs.contains("SLOWMODE_WAIT_9"));
  std::stringstream store_text;
  store_text << std::ifstream(f.store_file).rdbuf();
  CHECK_THAT(store_text.str(), Catch::Contains("account1"));
  const auto table = floodgate::status_table(pool->snapshot());
  const auto metrics = floodgate::prometheus_text(pool->snapshot());
  for (const char* secret : {kApiHash, kBotToken}) {
    CAPTURE(secret);
    CHECK_FALSE(logs.contains(secret));
    CHECK(store_text.str().find(secret) == std::string::npos);
    CHECK(table.find(secret) == std::string::npos);
    CHECK(metrics.find(secret) == std::string::npos);
  }
}

TEST_CASE("mtproto pool: a send whose answer may have been applied is sent once and ends with outcome_unknown",
          "[telegram][mtproto][pool]") {
  Fixture f(2);
  // A 500 after Telegram received the request: it may have delivered the message before failing.
  f.script(1, {{"sendMessage", {td_error(500, "INTERNAL_SERVER_ERROR")}}});
  f.script(2, {{"sendMessage", {td_error(500, "INTERNAL_SERVER_ERROR")}}});
  auto pool = f.pool();

  for (const auto& options : {Pool::SendOptions{}, Pool::SendOptions{.bound_to = "account2"}}) {
    auto [ec, result] = send(*pool, send_message(5), options);
    CHECK(ec == errc::outcome_unknown);
    CHECK(result.attempts == 1);
    CHECK(result.description == "INTERNAL_SERVER_ERROR");
    CHECK(pool->snapshot(result.credential)->failures >= 1);  // the health still counts it
  }
  // Two calls, two requests in all: neither was repeated on its own session or moved to the other.
  CHECK(f.received(*pool, "account1", "sendMessage") + f.received(*pool, "account2", "sendMessage") == 2);
  CHECK(f.received(*pool, "account2", "sendMessage") >= 1);
}

TEST_CASE("mtproto pool: a send cancelled while TDLib holds it ends at once and is not sent again",
          "[telegram][mtproto][pool][cancel]") {
  Fixture f(2);
  f.script(1, {{"sendMessage", {"silent"}}});  // received, never answered
  f.script(2, {{"sendMessage", {"silent"}}});
  auto pool = f.pool();
  asio::cancellation_signal signal;
  std::promise<std::tuple<std::error_code, Pool::Result>> done;
  asio::post(f.io.executor(), [&] {
    pool->async_send(send_message(8), {}, asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, Pool::Result r) {
                       done.set_value({ec, std::move(r)});
                     }));
  });
  const auto sent = [&] { return f.received(*pool, "account1", "sendMessage") + f.received(*pool, "account2", "sendMessage"); };
  for (int i = 0; i < 500 && sent() == 0; ++i) std::this_thread::sleep_for(2ms);
  REQUIRE(sent() == 1);
  asio::post(f.io.executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
  auto future = done.get_future();
  REQUIRE(future.wait_for(2s) == std::future_status::ready);
  auto [ec, result] = future.get();
  CHECK(ec == std::errc::operation_canceled);
  CHECK(result.attempts == 1);
  CHECK_FALSE(result.credential.empty());  // the session that holds the request
  CHECK(sent() == 1);
}
