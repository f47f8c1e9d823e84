// BotApiClient and BotPool against sim::BotApiServer over real sockets: TLS
// with the simulator's run-time CA, and plain HTTP on loopback.
#include <catch2/catch.hpp>

#include <boost/asio/use_future.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../net/net_test_support.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/telegram/bot_api_client.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/status_message.hpp"

using floodgate::CredentialState;
using floodgate::Secret;
using floodgate::errc;
using floodgate::sim::BotApiLimits;
using floodgate::sim::BotApiServer;
using floodgate::sim::Fault;
using floodgate::sim::Rate;
using floodgate::telegram::BotApiClient;
using floodgate::telegram::BotApiResponse;
using floodgate::telegram::BotPool;
using floodgate::telegram::BotPoolResult;
using namespace std::chrono_literals;
namespace telegram = floodgate::telegram;
namespace asio = boost::asio;

namespace {

const std::string kTokenA = "100001:AAHsecret-token-alpha";
const std::string kTokenB = "100002:AAHsecret-token-bravo";

BotApiLimits one_message_per_chat_per_minute() {
  BotApiLimits limits;
  limits.per_chat = Rate{1, std::chrono::minutes(1)};
  limits.per_chat_burst = 1;  // exactly one: no burst on top
  return limits;
}

BotApiLimits unlimited() { return {.overall = std::nullopt, .per_chat = std::nullopt, .per_group = std::nullopt}; }

/// A simulator, an io thread and one shared HTTPS client trusting the simulator.
struct Sim {
  explicit Sim(bool tls = true, BotApiLimits limits = unlimited(),
               std::chrono::milliseconds read_timeout = std::chrono::seconds(30))
      : server({.tokens = {Secret(kTokenA), Secret(kTokenB)}, .limits = limits, .tls = tls}) {
    server.start();
    auto options = floodgate::test::client_options_for(server);
    options.read_timeout = read_timeout;
    http.emplace(io.executor(), std::move(options));
  }
  BotApiClient client(const std::string& token) { return BotApiClient(*http, server.endpoint(), Secret(token)); }

  BotApiServer server;
  floodgate::test::IoThread io;
  std::optional<floodgate::net::HttpsClient> http;
};

/// Sim plus a BotPool of both tokens ("token-a", "token-b").
struct PoolSim : Sim {
  explicit PoolSim(BotApiLimits limits = unlimited(), floodgate::RetryPolicy retry = fast_retry(),
                   std::chrono::milliseconds read_timeout = std::chrono::seconds(30))
      : Sim(true, limits, read_timeout),
        bots(io.executor(), *http,
             {{"token-a", {Secret(kTokenA)}}, {"token-b", {Secret(kTokenB)}}},
             {.endpoint = server.endpoint(), .retry = retry}) {}

  static floodgate::RetryPolicy fast_retry() {
    floodgate::RetryPolicy retry;
    retry.max_wait = 5s;  // waits out local pacing (ms), fails at once on a flood wait (60 s)
    retry.backoff_base = 5ms;
    retry.backoff_cap = 20ms;
    return retry;
  }
  std::tuple<std::error_code, BotPoolResult> send(std::int64_t chat, std::string text) {
    return bots.async_send_message({.chat_id = chat, .text = std::move(text)}, asio::use_future).get();
  }

  BotPool bots;
};

}  // namespace

TEST_CASE("BotApiClient: every typed method over TLS") {
  Sim sim;
  auto bot = sim.client(kTokenA);

  auto [me_ec, me] = bot.async_get_me(asio::use_future).get();
  REQUIRE_FALSE(me_ec);
  CHECK(me.result.at("is_bot") == true);

  auto [send_ec, sent] = bot.async_send_message({.chat_id = 42, .text = "hello"}, asio::use_future).get();
  REQUIRE_FALSE(send_ec);
  const auto message = telegram::Message::from_json(sent.result);
  REQUIRE(message);
  CHECK(message->chat_id == 42);
  CHECK(message->text == "hello");

  auto [edit_ec, edited] = bot.async_edit_message_text({42, message->message_id, "hello, edited", {}},
                                                       asio::use_future).get();
  REQUIRE_FALSE(edit_ec);
  CHECK(sim.server.messages(42).at(0).text == "hello, edited");

  auto [copy_ec, copied] = bot.async_copy_message({43, 42, message->message_id}, asio::use_future).get();
  REQUIRE_FALSE(copy_ec);
  CHECK(copied.result.contains("message_id"));
  CHECK(sim.server.messages(43).size() == 1);

  // Documents from memory and streamed from a file, then fetched back.
  auto [doc_ec, doc] = bot.async_send_document({.chat_id = 44, .file_name = "a.txt", .content = std::string("alpha"),
                                                .caption = "in memory"},
                                               asio::use_future).get();
  REQUIRE_FALSE(doc_ec);
  const auto uploaded = telegram::Message::from_json(doc.result);
  REQUIRE(uploaded);
  REQUIRE(uploaded->document_file_id);
  CHECK(uploaded->text == "in memory");

  const auto dir = std::filesystem::temp_directory_path() / ("floodgate-botapi-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "b.bin", std::ios::binary) << std::string(100000, 'b');
  auto [path_ec, from_path] = bot.async_send_document({.chat_id = 45, .file_name = "b.bin", .content = dir / "b.bin"},
                                                      asio::use_future).get();
  REQUIRE_FALSE(path_ec);
  const auto file_id = telegram::Message::from_json(from_path.result)->document_file_id.value();

  auto [file_ec, file] = bot.async_get_file(file_id, asio::use_future).get();
  REQUIRE_FALSE(file_ec);
  const auto file_path = file.result.at("file_path").get<std::string>();
  auto [download_ec, bytes] = bot.async_download(file_path, dir / "copy.bin", asio::use_future).get();
  REQUIRE_FALSE(download_ec);
  CHECK(bytes == 100000);
  CHECK(std::filesystem::file_size(dir / "copy.bin") == 100000);
  std::filesystem::remove_all(dir);

  CHECK(sim.server.stats(Secret(kTokenA)).requests == 8);
}

TEST_CASE("BotApiClient: plain http reuses one keep-alive connection") {
  Sim sim(/*tls=*/false);
  auto bot = sim.client(kTokenA);
  for (int i = 0; i < 5; ++i) {
    auto [ec, response] = bot.async_call("getMe", {}, asio::use_future).get();
    REQUIRE_FALSE(ec);
  }
  CHECK(sim.server.connections_accepted() == 1);
  CHECK(sim.http->stats().connections_reused == 4);
}

TEST_CASE("BotApiClient: ok:false, invalid JSON and network failures become clear errors") {
  Sim sim(true, one_message_per_chat_per_minute());
  auto bot = sim.client(kTokenA);

  SECTION("429 carries retry_after and the Bot API category") {
    REQUIRE_FALSE(std::get<0>(bot.async_send_message({.chat_id = 7, .text = "1"}, asio::use_future).get()));
    auto [ec, response] = bot.async_send_message({.chat_id = 7, .text = "2"}, asio::use_future).get();
    CHECK(ec == std::error_code(429, telegram::bot_api_category()));
    REQUIRE(response.error);
    CHECK(response.error->retry_after == 60s);
    CHECK(response.error->description == "Too Many Requests: retry after 60");
  }
  SECTION("400 carries migrate_to_chat_id") {
    sim.server.migrate_chat(-5, -1000000000005);
    auto [ec, response] = bot.async_send_message({.chat_id = -5, .text = "x"}, asio::use_future).get();
    CHECK(ec == std::error_code(400, telegram::bot_api_category()));
    REQUIRE(response.error);
    CHECK(response.error->migrate_to_chat_id == -1000000000005);
  }
  SECTION("invalid JSON is malformed_response, not a crash") {
    sim.server.inject(Secret(kTokenA), Fault::invalid_json());
    auto [ec, response] = bot.async_get_me(asio::use_future).get();
    CHECK(ec == errc::malformed_response);
    CHECK(response.http_status == 200);
  }
  SECTION("a connection dropped after the request was sent is a transport error that says so") {
    sim.server.inject(Secret(kTokenA), Fault::drop_connection());
    auto [ec, response] = bot.async_get_me(asio::use_future).get();
    CHECK(ec == floodgate::net::errc::response_cut_off);
    CHECK(ec == response.transport);
  }
}

TEST_CASE("classify: Bot API replies in the retry executor's vocabulary") {
  using floodgate::OutcomeKind;
  using telegram::classify;
  using telegram::decode_bot_api_response;
  const auto flood = decode_bot_api_response(
      429, R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}})");
  CHECK(classify(flood, true).kind() == OutcomeKind::flood_wait);
  CHECK(classify(flood, true).wait() == 17s);
  CHECK(classify(flood, true).scope() == floodgate::CooldownScope::destination);
  CHECK(classify(flood, false).scope() == floodgate::CooldownScope::credential);
  CHECK(classify(decode_bot_api_response(401, R"({"ok":false,"error_code":401,"description":"Unauthorized"})"), true)
            .kind() == OutcomeKind::auth_failed);
  CHECK(classify(decode_bot_api_response(400, R"({"ok":false,"error_code":400,"description":"Bad"})"), true).kind() ==
        OutcomeKind::rejected);
  CHECK(classify(decode_bot_api_response(502, R"({"ok":false,"error_code":502,"description":"Bad Gateway"})"), true)
            .kind() == OutcomeKind::maybe_applied);
  CHECK(classify(decode_bot_api_response(200, R"({"ok":true,"result":{"id":1}})"), true).kind() ==
        OutcomeKind::success);
  for (const char* junk : {"", "<html>", "[1,2]", R"({"ok":"yes"})", R"({"result":1})", "{\"ok\":true"}) {
    const auto response = decode_bot_api_response(200, junk);
    CHECK(response.transport == errc::malformed_response);
    CHECK(classify(response, false).kind() == OutcomeKind::maybe_applied);
  }
  // Transport failures follow net::outcome_kind_of: before the request was written, after, or never retried.
  auto failed = [](std::error_code ec) {
    telegram::BotApiResponse response;
    response.transport = ec;
    return classify(std::move(response), true);
  };
  CHECK(failed(floodgate::net::errc::connect_failed).kind() == OutcomeKind::not_sent);
  CHECK(failed(floodgate::net::errc::timeout).kind() == OutcomeKind::not_sent);
  CHECK(failed(floodgate::net::errc::response_timeout).kind() == OutcomeKind::maybe_applied);
  CHECK(failed(floodgate::net::errc::response_cut_off).kind() == OutcomeKind::maybe_applied);
  const auto certificate = failed(floodgate::net::errc::certificate_rejected);
  CHECK(certificate.kind() == OutcomeKind::rejected);
  CHECK(certificate.error() == floodgate::net::errc::certificate_rejected);
}

TEST_CASE("BotPool: a 429 cools that token for the chat, the call moves, other chats still flow") {
  PoolSim sim(one_message_per_chat_per_minute());

  auto [ec1, first] = sim.send(100, "one");
  auto [ec2, second] = sim.send(100, "two");
  REQUIRE_FALSE(ec1);
  REQUIRE_FALSE(ec2);
  CHECK(first.token_id != second.token_id);  // the chat's minute is spent on the first token

  // Both tokens are now spent for chat 100 (the third call learns it from a 429 if not known yet).
  const auto before = std::chrono::steady_clock::now();
  auto [ec3, third] = sim.send(100, "three");
  CHECK(ec3 == errc::all_credentials_cooling);
  REQUIRE(third.earliest);
  const auto wait = *third.earliest - before;
  CHECK(wait > 57s);  // the server's 60 s (counted from the first 429), never shorter
  CHECK(wait < 63s);  // plus at most the policy's 5% jitter
  CHECK(sim.bots.snapshot().at(0).flood_waits + sim.bots.snapshot().at(1).flood_waits >= 1);

  // The cooldown is scoped to chat 100: other chats are served at once.
  auto [ec4, fourth] = sim.send(200, "elsewhere");
  CHECK_FALSE(ec4);
  CHECK(fourth.attempts == 1);

  for (const auto& token : {kTokenA, kTokenB}) {
    const auto stats = sim.server.stats(Secret(token));
    CHECK(stats.sent_during_cooldown == 0);
    CHECK(stats.rate_limited <= 1);
  }
  CHECK(sim.server.messages(100).size() == 2);
}

TEST_CASE("BotPool: a 401 disables the token and the call moves to another") {
  PoolSim sim;
  sim.server.revoke_token(Secret(kTokenA));
  for (int chat = 1; chat <= 4; ++chat) {
    auto [ec, result] = sim.send(chat, "hi");
    REQUIRE_FALSE(ec);
    CHECK(result.token_id == "token-b");
  }
  const auto a = sim.bots.pool().snapshot("token-a");
  REQUIRE(a);
  CHECK(a->state == CredentialState::disabled);
  CHECK(sim.server.stats(Secret(kTokenA)).unauthorized == 1);  // never used again once disabled
  CHECK(sim.server.stats(Secret(kTokenB)).succeeded == 4);
}

TEST_CASE("BotPool: shared limits are asked only once the local ones admit, and a shared wait gives the local token back") {
  Sim sim;
  // The shared gate: the first ask of each chat waits 20 ms (a reservation in
  // flight, as redis::ReservingGate answers), every later ask admits.
  std::mutex mutex;
  std::map<std::int64_t, int> asks;
  auto options = floodgate::telegram::BotPoolOptions{.endpoint = sim.server.endpoint(), .retry = PoolSim::fast_retry()};
  options.limits.private_chat = floodgate::Rate::per_minute(1);
  options.limits.private_chat_burst = 1;  // one message per chat, then a local wait of a minute
  options.shared_limits = [&](std::string_view, std::int64_t chat) -> std::chrono::nanoseconds {
    std::lock_guard lock(mutex);
    return ++asks[chat] == 1 ? std::chrono::nanoseconds(20ms) : std::chrono::nanoseconds::zero();
  };
  BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, options);
  auto send = [&](std::int64_t chat) {
    return bots.async_send_message({.chat_id = chat, .text = "paced"}, asio::use_future).get();
  };

  // Local admits, shared says wait: the local token is given back, so the
  // retry 20 ms later is admitted locally again (one per minute: without the
  // refund it would wait a minute) and sent once the shared gate admits.
  auto [ec1, first] = send(7);
  REQUIRE_FALSE(ec1);
  CHECK(first.attempts == 1);
  {
    std::lock_guard lock(mutex);
    CHECK(asks[7] == 2);
  }
  // The local limit refuses the chat's second message: the shared gate is not
  // asked, so no reservation other processes count as sent is spent on it.
  auto [ec2, second] = send(7);
  CHECK(ec2 == errc::all_credentials_cooling);
  CHECK(second.attempts == 0);
  {
    std::lock_guard lock(mutex);
    CHECK(asks[7] == 2);
  }
  CHECK(sim.server.messages(7).size() == 1);
}

TEST_CASE("BotPool: a send whose answer was lost is sent once and ends with outcome_unknown naming its token") {
  PoolSim sim;
  // The server stores the message, then the answer is cut off in the middle of its body.
  sim.server.inject(Secret(kTokenA), Fault::truncated_response());
  sim.server.inject(Secret(kTokenB), Fault::truncated_response());

  auto [ec, result] = sim.send(9, "exactly once");
  CHECK(ec == errc::outcome_unknown);
  CHECK(result.attempts == 1);
  CHECK((result.token_id == "token-a" || result.token_id == "token-b"));
  const auto& sender = result.token_id == "token-a" ? kTokenA : kTokenB;
  const auto& other = result.token_id == "token-a" ? kTokenB : kTokenA;
  REQUIRE(sim.server.messages(9).size() == 1);  // what the caller can check, before sending again
  CHECK(sim.server.messages(9).at(0).text == "exactly once");
  CHECK(sim.server.stats(Secret(sender)).by_method["sendmessage"] == 1);
  CHECK(sim.server.stats(Secret(other)).by_method.count("sendmessage") == 0);  // never moved to another bot
  // The sender's health still counts the failure.
  CHECK(sim.bots.pool().snapshot(result.token_id)->failures == 1);
}

TEST_CASE("BotPool: a send whose answer times out is not repeated (a slow server, a short read timeout)") {
  PoolSim sim(unlimited(), PoolSim::fast_retry(), 300ms);
  sim.server.inject(Secret(kTokenA), Fault::slow_reply(900ms), 8);
  sim.server.inject(Secret(kTokenB), Fault::slow_reply(900ms), 8);

  auto [ec, result] = sim.send(10, "slow");
  CHECK(ec == errc::outcome_unknown);
  CHECK(result.attempts == 1);
  const auto& sender = result.token_id == "token-a" ? kTokenA : kTokenB;
  // The server applied the one request it got; nothing else reached it.
  CHECK(sim.server.stats(Secret(kTokenA)).requests + sim.server.stats(Secret(kTokenB)).requests == 1);
  CHECK(sim.server.stats(Secret(sender)).by_method["sendmessage"] == 1);
  CHECK(sim.server.messages(10).size() == 1);
}

TEST_CASE("BotPool: destroyed while a call waits to send again it sends nothing more and the call ends with shut_down") {
  // The order a program shutting down uses: the pool, then its HTTPS client,
  // while a call (an abandoned long poll, say) still waits to be sent again.
  Sim sim;
  sim.server.inject(Secret(kTokenA), Fault::flood_wait(1));  // the first getMe: wait 1 s, then send again
  auto pending = [&] {
    BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, {.endpoint = sim.server.endpoint()});
    auto call = bots.async_get_me(asio::use_future);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (sim.server.stats(Secret(kTokenA)).by_method["getme"] < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return call;
  }();  // the pool is destroyed here, its call waiting out the flood wait
  sim.http.reset();
  auto [ec, result] = pending.get();
  CHECK(ec == errc::shut_down);
  CHECK(sim.server.stats(Secret(kTokenA)).by_method["getme"] == 1);
}

namespace {

/// An object a pool borrows from the program (a shared limit over a Redis
/// client, a sink): the test says when the program would destroy it, and it
/// counts the calls that come after that.
struct Borrowed {
  std::atomic<bool> gone{false};
  std::atomic<int> calls{0};
  std::atomic<int> calls_after_gone{0};
  void called() {
    ++calls;
    if (gone) ++calls_after_gone;
  }
};

struct RecordingAffinitySink : telegram::ChatAffinitySink {
  explicit RecordingAffinitySink(Borrowed& watched) : watch(watched) {}
  std::optional<std::string> find(std::int64_t) const override {
    watch.called();
    return std::nullopt;
  }
  void set(std::int64_t, std::string_view) override { watch.called(); }
  Borrowed& watch;
};

struct RecordingCooldownSink : floodgate::CooldownSink {
  explicit RecordingCooldownSink(Borrowed& watched) : watch(watched) {}
  std::optional<floodgate::CooldownRecord> find(std::string_view) const override { return std::nullopt; }
  void set_cooldown(std::string_view, WallTime) override { watch.called(); }
  void set_scoped_cooldown(std::string_view, std::string_view, WallTime) override { watch.called(); }
  void clear_cooldowns(std::string_view) override { watch.called(); }
  void set_disabled(std::string_view, std::string_view) override { watch.called(); }
  void set_enabled(std::string_view) override { watch.called(); }
  Borrowed& watch;
};

/// Waits (up to 10 s) until the server has seen `count` requests of `method` from token A.
void wait_for_requests(Sim& sim, const std::string& method, std::uint64_t count) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sim.server.stats(Secret(kTokenA)).by_method[method] < count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

TEST_CASE("BotPool: destroyed while a call waits to send again it no longer asks the shared limits") {
  // The shared limits borrow a Redis client that the program may destroy
  // right after the pool: the retry after the flood wait must not ask them.
  Sim sim;
  sim.server.inject(Secret(kTokenA), Fault::flood_wait(1));  // the first send: wait 1 s, then send again
  Borrowed shared;
  auto pending = [&] {
    auto options = floodgate::telegram::BotPoolOptions{.endpoint = sim.server.endpoint()};
    options.shared_limits = [&shared](std::string_view, std::int64_t) {
      shared.called();
      return std::chrono::nanoseconds::zero();
    };
    BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, options);
    auto call = bots.async_send_message({.chat_id = 21, .text = "later"}, asio::use_future);
    wait_for_requests(sim, "sendmessage", 1);
    return call;
  }();  // the pool is destroyed here, its call waiting out the flood wait
  shared.gone = true;
  auto [ec, result] = pending.get();
  CHECK(ec == errc::shut_down);
  CHECK(shared.calls == 1);  // the first attempt's
  CHECK(shared.calls_after_gone == 0);
  CHECK(sim.server.stats(Secret(kTokenA)).by_method["sendmessage"] == 1);
  CHECK(sim.server.messages(21).empty());
}

TEST_CASE("BotPool: destroyed with calls still running it no longer calls its ChatAffinitySink") {
  Sim sim;
  Borrowed sink_watch;
  RecordingAffinitySink sink(sink_watch);
  auto options = floodgate::telegram::BotPoolOptions{.endpoint = sim.server.endpoint()};
  options.routing.affinity_sink = &sink;

  SECTION("a send on the wire that succeeds after the pool is gone does not record the chat's token") {
    sim.server.inject(Secret(kTokenA), Fault::slow_reply(600ms));
    auto pending = [&] {
      BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, options);
      auto call = bots.async_send_message({.chat_id = 22, .text = "on the wire"}, asio::use_future);
      wait_for_requests(sim, "sendmessage", 1);
      return call;
    }();  // the pool is destroyed here, its request on the wire
    sink_watch.gone = true;
    auto [ec, result] = pending.get();
    CHECK_FALSE(ec);  // a request already on the wire completes as it will
    CHECK(result.token_id == "token-a");
    CHECK(sink_watch.calls == 1);  // the first call's find
    CHECK(sink_watch.calls_after_gone == 0);
  }
  SECTION("the chat's next call after the pool is gone does not look its token up") {
    sim.server.inject(Secret(kTokenA), Fault::flood_wait(1));  // the first send: wait 1 s, then send again
    auto [first, second] = [&] {
      BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, options);
      auto head = bots.async_send_message({.chat_id = 23, .text = "first"}, asio::use_future);
      // Behind it in the chat's queue; not ended by the first one's failure.
      auto behind = bots.async_call("sendMessage", {{"chat_id", 23}, {"text", "second"}},
                                    BotPool::CallOptions{.may_overtake = true}, asio::use_future);
      wait_for_requests(sim, "sendmessage", 1);
      return std::make_pair(std::move(head), std::move(behind));
    }();  // the pool is destroyed here, the first call waiting out the flood wait
    sink_watch.gone = true;
    auto [ec1, result1] = first.get();
    auto [ec2, result2] = second.get();
    CHECK(ec1 == errc::shut_down);
    CHECK(ec2 == errc::shut_down);
    CHECK(sink_watch.calls == 1);  // the first call's find
    CHECK(sink_watch.calls_after_gone == 0);
    CHECK(sim.server.messages(23).empty());
  }
}

TEST_CASE("BotPool: a 429 that arrives after the pool is destroyed is not written to its CooldownSink") {
  Sim sim(true, one_message_per_chat_per_minute());
  Borrowed store_watch;
  RecordingCooldownSink store(store_watch);
  auto pending = [&] {
    BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}},
                 {.endpoint = sim.server.endpoint(), .retry = PoolSim::fast_retry()});
    bots.pool().persist_to(store);
    auto [ec, sent] = bots.async_send_message({.chat_id = 24, .text = "one"}, asio::use_future).get();
    REQUIRE_FALSE(ec);
    // The chat's second message: the server refuses it (one per minute), and answers late.
    sim.server.inject(Secret(kTokenA), Fault::slow_reply(600ms));
    auto call = bots.async_send_message({.chat_id = 24, .text = "two"}, asio::use_future);
    wait_for_requests(sim, "sendmessage", 2);
    return call;
  }();  // the pool is destroyed here, the 429 still on its way
  store_watch.gone = true;
  auto [ec, result] = pending.get();
  CHECK(ec == errc::all_credentials_cooling);  // the 429 still cools the token for the call
  CHECK(sim.server.stats(Secret(kTokenA)).rate_limited == 1);
  CHECK(store_watch.calls_after_gone == 0);
}

TEST_CASE("BotPool: reads and edits are repeated after a lost answer, a send only when the caller opts in") {
  PoolSim sim;
  sim.server.revoke_token(Secret(kTokenB));  // keep every attempt on token-a
  REQUIRE(sim.bots.pool().disable("token-b"));

  SECTION("a read survives a 5xx, a dropped connection and a body that is not JSON") {
    sim.server.inject(Secret(kTokenA), Fault::server_error(502));
    sim.server.inject(Secret(kTokenA), Fault::drop_connection());
    sim.server.inject(Secret(kTokenA), Fault::invalid_json());
    auto [ec, result] = sim.bots.async_get_me(asio::use_future).get();
    REQUIRE_FALSE(ec);
    CHECK(result.attempts == 4);
    CHECK(result.result.value("is_bot", false));
  }
  SECTION("an edit whose answer was cut off is repeated and the message shows the new text once") {
    auto [ec, sent] = sim.send(11, "v1");
    REQUIRE_FALSE(ec);
    sim.server.inject(Secret(kTokenA), Fault::truncated_response());
    auto [ec1, edited] = sim.bots.async_edit_message_text(sent.sent().value(), "v2", asio::use_future).get();
    REQUIRE_FALSE(ec1);
    CHECK(edited.attempts == 2);
    REQUIRE(sim.server.messages(11).size() == 1);
    CHECK(sim.server.messages(11).at(0).text == "v2");
  }
  SECTION("a delete whose answer was cut off is repeated and ends in success: the first request deleted it") {
    auto [ec, sent] = sim.send(14, "to delete");
    REQUIRE_FALSE(ec);
    const auto message = sent.sent().value();
    sim.server.inject(Secret(kTokenA), Fault::truncated_response());
    auto [ec1, deleted] = sim.bots.async_call_as(message.token_id, "deleteMessage",
                                                 {{"chat_id", 14}, {"message_id", message.message_id}},
                                                 asio::use_future).get();
    CHECK_FALSE(ec1);
    CHECK(deleted.attempts == 2);
    CHECK(sim.server.stats(Secret(kTokenA)).by_method["deletemessage"] == 2);
  }
  // A user presses a button; the first answer to it meets `fault`.
  const auto answer_pressed_button = [&](Fault fault) {
    const auto update_id = sim.server.push_callback_query(Secret(kTokenA), 15, "pressed");
    auto [ec, updates] = sim.bots.async_call_as("token-a", "getUpdates", {{"offset", update_id}}, asio::use_future).get();
    REQUIRE_FALSE(ec);
    sim.server.inject(Secret(kTokenA), fault);
    return sim.bots.async_call_as("token-a", "answerCallbackQuery",
                                  {{"callback_query_id", updates.result.at(0).at("callback_query").at("id")}},
                                  asio::use_future).get();
  };
  SECTION("a query answer repeated after a lost answer and refused ends with outcome_unknown, not a failure") {
    // The lost request answered the query; the repeat cannot tell that from an expired query.
    auto [ec1, answered] = answer_pressed_button(Fault::truncated_response());
    CHECK(ec1 == errc::outcome_unknown);
    CHECK(answered.attempts == 2);
    CHECK(answered.description.find("query ID is invalid") != std::string::npos);
    CHECK(sim.server.stats(Secret(kTokenA)).by_method["answercallbackquery"] == 2);
  }
  SECTION("a query answer whose first request never applied is repeated and succeeds") {
    auto [ec1, answered] = answer_pressed_button(Fault::server_error(502));
    REQUIRE_FALSE(ec1);
    CHECK(answered.attempts == 2);
    CHECK(answered.result == true);
  }
  SECTION("a first answer to a query that is gone is still an error") {
    auto [ec, answered] = sim.bots.async_call_as("token-a", "answerCallbackQuery", {{"callback_query_id", "404"}},
                                                 asio::use_future).get();
    CHECK(ec == errc::bad_request);
    CHECK(answered.attempts == 1);
  }
  SECTION("a first delete of a message that does not exist is still an error") {
    auto [ec, deleted] = sim.bots.async_call_as("token-a", "deleteMessage", {{"chat_id", 14}, {"message_id", 999}},
                                                asio::use_future).get();
    CHECK(ec == errc::bad_request);
    CHECK(deleted.attempts == 1);
    CHECK(deleted.description.find("message to delete not found") != std::string::npos);
  }
  SECTION("a send the caller marked safe to repeat is repeated: the duplicate is the caller's choice") {
    sim.server.inject(Secret(kTokenA), Fault::truncated_response());
    auto [ec, result] = sim.bots.async_call("sendMessage", {{"chat_id", 12}, {"text", "dup ok"}},
                                            BotPool::CallOptions{.repeat_if_maybe_applied = true},
                                            asio::use_future).get();
    REQUIRE_FALSE(ec);
    CHECK(result.attempts == 2);
    CHECK(sim.server.messages(12).size() == 2);
  }
  SECTION("a send whose answer was a 5xx ends with outcome_unknown: Telegram may have sent it") {
    sim.server.inject(Secret(kTokenA), Fault::server_error(502));
    auto [ec, result] = sim.send(13, "maybe");
    CHECK(ec == errc::outcome_unknown);
    CHECK(result.token_id == "token-a");
    CHECK(result.attempts == 1);
  }
}

TEST_CASE("BotPool: a group that became a supergroup is followed once, and the caller learns the new id") {
  PoolSim sim;
  sim.server.migrate_chat(-5, -1000000000005);
  auto [ec, result] = sim.send(-5, "to the supergroup");
  REQUIRE_FALSE(ec);
  CHECK(result.migrated_to_chat_id == -1000000000005);
  REQUIRE(result.sent());
  CHECK(result.sent()->chat_id == -1000000000005);
  CHECK(sim.server.messages(-5).empty());
  REQUIRE(sim.server.messages(-1000000000005).size() == 1);
  CHECK(result.attempts == 1);  // one attempt, two requests: the refused one and the one that landed
}

TEST_CASE("BotPool: an edit goes to the token that sent the message, never to another") {
  PoolSim sim(one_message_per_chat_per_minute());
  auto [ec, sent] = sim.send(300, "progress 0%");
  REQUIRE_FALSE(ec);
  const auto message = sent.sent();
  REQUIRE(message);
  const std::string owner = message->token_id;
  const auto& owner_token = owner == "token-a" ? kTokenA : kTokenB;
  const auto& other_token = owner == "token-a" ? kTokenB : kTokenA;

  // The chat's limit answers the edit with a 429: the edit ends, it is not moved.
  auto [ec1, edit1] = sim.bots.async_edit_message_text(*message, "progress 50%", asio::use_future).get();
  CHECK(ec1 == errc::all_credentials_cooling);
  CHECK(edit1.token_id == owner);
  REQUIRE(edit1.earliest);
  CHECK(*edit1.earliest - std::chrono::steady_clock::now() > 55s);

  // Known to be cooling now: the next edit ends without a request.
  const auto requests = sim.server.stats(Secret(owner_token)).requests;
  auto [ec2, edit2] = sim.bots.async_edit_message_text(*message, "progress 60%", asio::use_future).get();
  CHECK(ec2 == errc::all_credentials_cooling);
  CHECK(sim.server.stats(Secret(owner_token)).requests == requests);

  CHECK(sim.server.stats(Secret(other_token)).by_method.count("editmessagetext") == 0);
  CHECK(sim.server.stats(Secret(kTokenA)).sent_during_cooldown == 0);
  CHECK(sim.server.stats(Secret(kTokenB)).sent_during_cooldown == 0);
  CHECK(sim.server.messages(300).at(0).text == "progress 0%");

  // The bound edit's 429 is in the owner's record like a rotated call's: one request more, one
  // flood wait, scoped to the chat; the refused edit is no request.
  const auto record = sim.bots.pool().snapshot(owner);
  CHECK(record->requests == 2);
  CHECK(record->successes == 1);
  CHECK(record->flood_waits == 1);
  CHECK(record->scoped_cooldowns == 1);
  CHECK(record->in_flight == 0);
  CHECK(record->state == CredentialState::ready);  // it still serves other chats
}

TEST_CASE("BotPool: owner-bound calls are counted in the pool and never sent into a cooldown") {
  PoolSim sim;
  auto [ec, sent] = sim.send(600, "v1");
  REQUIRE_FALSE(ec);
  const auto message = sent.sent().value();
  const auto& owner_token = message.token_id == "token-a" ? kTokenA : kTokenB;
  auto owner = [&] { return sim.bots.pool().snapshot(message.token_id).value(); };

  // A transient failure is retried on the owner; both attempts and the success are counted.
  sim.server.inject(Secret(owner_token), Fault::server_error(502));
  auto [ec1, edited] = sim.bots.async_edit_message_text(message, "v2", asio::use_future).get();
  REQUIRE_FALSE(ec1);
  CHECK(edited.attempts == 2);
  CHECK(owner().requests == 3);
  CHECK(owner().successes == 2);
  CHECK(owner().failures == 1);
  // (No latency check: the pool measures it on its CoarseClock, whose 4 ms tick
  // reads a fast local call as 0; docs/concepts.md, "Clocks".)

  // A token-wide cooldown (a 429 of a rotated call, say): the bound edit ends with its end, unsent.
  sim.bots.pool().cooldown(message.token_id, 30s);
  const auto requests = sim.server.stats(Secret(owner_token)).requests;
  const auto before = std::chrono::steady_clock::now();
  auto [ec2, refused] = sim.bots.async_edit_message_text(message, "v3", asio::use_future).get();
  CHECK(ec2 == errc::all_credentials_cooling);
  REQUIRE(refused.earliest);
  CHECK(*refused.earliest - before > 29s);
  CHECK(refused.attempts == 0);
  CHECK(sim.server.stats(Secret(owner_token)).requests == requests);
  CHECK(owner().requests == 3);
  sim.bots.pool().clear_cooldown(message.token_id);

  // A 401 on a bound call disables the owner for everyone, and is counted.
  sim.server.revoke_token(Secret(owner_token));
  auto [ec3, rejected] = sim.bots.async_edit_message_text(message, "v4", asio::use_future).get();
  CHECK(ec3 == errc::auth_failed);
  CHECK(owner().state == CredentialState::disabled);
  CHECK(owner().failures == 2);
  CHECK(owner().requests == 4);
  for (int chat = 601; chat <= 603; ++chat) {
    auto [send_ec, other] = sim.send(chat, "elsewhere");
    REQUIRE_FALSE(send_ec);
    CHECK(other.token_id != message.token_id);
  }
  CHECK(sim.server.stats(Secret(owner_token)).unauthorized == 1);
  CHECK(sim.server.stats(Secret(owner_token)).sent_during_cooldown == 0);
}

TEST_CASE("BotPool: owner-bound edit succeeds through its owner, a disabled owner is a clear error") {
  PoolSim sim;
  auto [ec, sent] = sim.send(400, "v1");
  REQUIRE_FALSE(ec);
  const auto message = sent.sent().value();

  auto [ec1, edited] = sim.bots.async_edit_message_text(message, "v2", asio::use_future).get();
  REQUIRE_FALSE(ec1);
  CHECK(edited.token_id == message.token_id);
  CHECK(sim.server.messages(400).at(0).text == "v2");

  sim.bots.pool().disable(message.token_id);
  auto [ec2, refused] = sim.bots.async_edit_message_text(message, "v3", asio::use_future).get();
  CHECK(ec2 == errc::all_credentials_disabled);
  auto [ec3, unknown] =
      sim.bots.async_call_as("token-z", "editMessageText", {{"chat_id", 400}}, asio::use_future).get();
  CHECK(ec3 == errc::unknown_credential);
}

TEST_CASE("BotPool: tokens never appear in logs or error text") {
  std::mutex mutex;
  std::vector<std::string> lines;
  floodgate::set_log_level(floodgate::LogLevel::debug);
  auto previous = floodgate::set_log_sink([&](floodgate::LogLevel, std::string_view line) {
    std::lock_guard lock(mutex);
    lines.emplace_back(line);
  });

  std::vector<std::string> texts;
  {
    PoolSim sim(one_message_per_chat_per_minute());
    sim.server.inject(Secret(kTokenA), Fault::server_error(500));
    sim.server.inject(Secret(kTokenB), Fault::invalid_json());
    sim.server.revoke_token(Secret(kTokenB));
    for (int i = 0; i < 3; ++i) {
      auto [ec, result] = sim.send(77, "x");
      texts.push_back(ec.message());
      texts.push_back(result.description);
    }
    auto bot = sim.client(kTokenB);
    auto [ec, response] = bot.async_get_me(asio::use_future).get();
    texts.push_back(ec.message());
    texts.push_back(response.describe());
  }
  floodgate::set_log_sink(previous);
  floodgate::set_log_level(floodgate::LogLevel::info);

  std::lock_guard lock(mutex);
  CHECK_FALSE(lines.empty());
  for (const auto& text : texts) lines.push_back(text);
  for (const auto& line : lines) {
    INFO(line);
    CHECK(line.find("secret-token") == std::string::npos);
    CHECK(line.find("AAHsecret") == std::string::npos);
  }
}

TEST_CASE("StatusMessage: debounced edits through the owner, latest text wins, final text always shown") {
  PoolSim sim;
  auto [ec, sent] = sim.send(500, "0%");
  REQUIRE_FALSE(ec);
  const auto message = sent.sent().value();
  auto status = telegram::StatusMessage::create(sim.bots, message, "0%", 20ms);

  for (int i = 1; i <= 200; ++i) {
    status->update(std::to_string(i / 2) + "%");
    if (i % 20 == 0) std::this_thread::sleep_for(5ms);  // a job that reports progress as it goes
  }
  status->update("100%");
  status->update("100%");  // unchanged text: no extra edit
  REQUIRE_FALSE(status->async_finish("done", asio::use_future).get());

  const auto edits = status->edits_sent();
  CHECK(edits >= 1);
  CHECK(edits < 20);  // 201 updates over ~50 ms at one edit per 20 ms
  CHECK(sim.server.messages(500).at(0).text == "done");
  CHECK(sim.server.messages(500).at(0).edits == static_cast<int>(edits));
  const auto& owner = message.token_id == "token-a" ? kTokenA : kTokenB;
  const auto& other = message.token_id == "token-a" ? kTokenB : kTokenA;
  CHECK(sim.server.stats(Secret(owner)).by_method["editmessagetext"] == edits);
  CHECK(sim.server.stats(Secret(other)).by_method.count("editmessagetext") == 0);
  CHECK(sim.bots.pool().snapshot(message.token_id)->successes == 1 + edits);  // the send and every edit

  // Finishing with the text already shown sends nothing.
  auto again = telegram::StatusMessage::create(sim.bots, message, "done", 20ms);
  REQUIRE_FALSE(again->async_finish("done", asio::use_future).get());
  CHECK(again->edits_sent() == 0);
}

TEST_CASE("StatusMessage: a final text the chat already shows is success (Telegram: message is not modified)") {
  PoolSim sim;
  auto [ec, sent] = sim.send(510, "working");
  REQUIRE_FALSE(ec);
  const auto message = sent.sent().value();
  // Another process (or an edit whose answer was lost) already put "done" on screen.
  auto [edit_ec, edited] = sim.bots.async_edit_message_text(message, "done", asio::use_future).get();
  REQUIRE_FALSE(edit_ec);

  // This status message believes the chat still shows "working": its final edit is refused
  // by Telegram as "message is not modified", which means the chat shows what was asked.
  auto status = telegram::StatusMessage::create(sim.bots, message, "working", 5ms);
  CHECK_FALSE(status->async_finish("done", asio::use_future).get());
  CHECK(status->edits_sent() == 1);
  CHECK(sim.server.messages(510).at(0).text == "done");
  const auto& owner = message.token_id == "token-a" ? kTokenA : kTokenB;
  CHECK(sim.server.stats(Secret(owner)).by_method["editmessagetext"] == 2);
}

TEST_CASE("StatusMessage: outliving its BotPool it sends nothing more and its finish ends with shut_down") {
  // Pending edits keep a status message alive, so the program cannot make it
  // die before the pool: the pool and its HTTPS client go first here.
  Sim sim;
  std::shared_ptr<telegram::StatusMessage> status;
  {
    BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}}, {.endpoint = sim.server.endpoint()});
    auto [ec, sent] = bots.async_send_message({.chat_id = 520, .text = "0%"}, asio::use_future).get();
    REQUIRE_FALSE(ec);
    status = telegram::StatusMessage::create(bots, sent.sent().value(), "0%", 50ms);
    status->update("50%");  // waits for its edit slot
  }
  sim.http.reset();
  CHECK(status->async_finish("done", asio::use_future).get() == errc::shut_down);
  CHECK(sim.server.stats(Secret(kTokenA)).by_method["editmessagetext"] == 0);
  CHECK(sim.server.messages(520).at(0).text == "0%");
}

TEST_CASE("BotPool: getFile and downloads go only through the bot that owns the file id") {
  PoolSim sim;
  const std::string bytes(70000, 'f');
  const auto file_id = sim.server.add_file(Secret(kTokenB), bytes, "owned-by-b.bin");

  // Without an owner the pool cannot know which bot may use the id: refused at once, nothing sent.
  auto [free_ec, refused] = sim.bots.async_call("getFile", {{"file_id", file_id}}, asio::use_future).get();
  CHECK(free_ec == errc::bad_request);
  CHECK(refused.attempts == 0);
  CHECK(refused.description.find("async_get_file") != std::string::npos);

  std::string file_path;
  for (int i = 0; i < 6; ++i) {  // a rotating pool would have tried token-a for some of these
    auto [ec, file] = sim.bots.async_get_file("token-b", file_id, asio::use_future).get();
    REQUIRE_FALSE(ec);
    CHECK(file.token_id == "token-b");
    file_path = file.result.at("file_path").get<std::string>();
  }
  const auto dir = std::filesystem::temp_directory_path() / ("floodgate-botpool-file-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto [download_ec, written] = sim.bots.async_download("token-b", file_path, dir / "copy.bin", asio::use_future).get();
  REQUIRE_FALSE(download_ec);
  CHECK(written == bytes.size());
  CHECK(std::filesystem::file_size(dir / "copy.bin") == bytes.size());
  auto [unknown_ec, none] = sim.bots.async_download("token-z", file_path, dir / "x.bin", asio::use_future).get();
  CHECK(unknown_ec == errc::unknown_credential);
  std::filesystem::remove_all(dir);

  // The owner cooling does not send the file id to another bot: the call waits or ends.
  sim.bots.pool().cooldown("token-b", 30s);
  auto [cool_ec, cooling] = sim.bots.async_get_file("token-b", file_id, asio::use_future).get();
  CHECK(cool_ec == errc::all_credentials_cooling);
  CHECK(sim.server.stats(Secret(kTokenA)).by_method.count("getfile") == 0);
  CHECK(sim.server.stats(Secret(kTokenB)).by_method["getfile"] == 6);
}

TEST_CASE("BotPool: 429s in several chats of one token are its overall limit: the whole token cools") {
  // The server's overall limit (10/s) is below the pool's local one (30/s), and chats have no
  // limit of their own: every 429 is the token's overall limit, though each names one chat call.
  BotApiLimits limits = unlimited();
  limits.overall = Rate{10, 1s};
  auto run = [&](floodgate::telegram::FloodScope scope) {
    PoolSim sim(limits);
    BotPool bots(sim.io.executor(), *sim.http, {{"token-a", {Secret(kTokenA)}}, {"token-b", {Secret(kTokenB)}}},
                 {.endpoint = sim.server.endpoint(), .retry = PoolSim::fast_retry(), .flood_scope = scope});
    std::vector<std::future<std::tuple<std::error_code, BotPoolResult>>> calls;
    for (int chat = 1; chat <= 60; ++chat) {
      calls.push_back(bots.async_send_message({.chat_id = chat, .text = "news"}, asio::use_future));
    }
    int failed = 0;
    for (auto& call : calls) failed += std::get<0>(call.get()) ? 1 : 0;
    const auto into_cooldown = sim.server.stats(Secret(kTokenA)).sent_during_cooldown +
                               sim.server.stats(Secret(kTokenB)).sent_during_cooldown;
    return std::pair{failed, into_cooldown};
  };

  const auto [failed, into_cooldown] = run({});
  CHECK(failed == 0);
  // Each token learns its overall limit from the second chat's 429: about one request per
  // 10-message window goes into the cooldown (3 windows per token), never a stream of them.
  CHECK(into_cooldown <= 8);

  // Kept to the chat (no escalation), the same load runs into the cooldown again and again.
  const auto scoped = run({.chats = 0});
  CHECK(scoped.second > 3 * into_cooldown);
}

namespace {

const std::string kTokenC = "100003:AAHsecret-token-charlie";

/// Three bots with Telegram's documented limits on the simulator and in the pool.
struct ThreeBots {
  explicit ThreeBots(BotApiLimits limits = {}, floodgate::telegram::ChatRouting routing = {})
      : server({.tokens = {Secret(kTokenA), Secret(kTokenB), Secret(kTokenC)}, .limits = limits}) {
    server.start();
    http.emplace(io.executor(), floodgate::test::client_options_for(server));
    bots.emplace(io.executor(), *http,
                 std::vector<floodgate::Credential<floodgate::BotToken>>{
                     {"token-a", {Secret(kTokenA)}}, {"token-b", {Secret(kTokenB)}}, {"token-c", {Secret(kTokenC)}}},
                 floodgate::telegram::BotPoolOptions{
                     .endpoint = server.endpoint(), .retry = PoolSim::fast_retry(), .routing = routing});
  }
  using Future = std::future<std::tuple<std::error_code, BotPoolResult>>;
  Future send(std::int64_t chat, std::string text) {
    return bots->async_send_message({.chat_id = chat, .text = std::move(text)}, asio::use_future);
  }
  std::uint64_t into_cooldown() const {
    return server.stats(Secret(kTokenA)).sent_during_cooldown + server.stats(Secret(kTokenB)).sent_during_cooldown +
           server.stats(Secret(kTokenC)).sent_during_cooldown;
  }
  std::uint64_t requests() const {
    return server.stats(Secret(kTokenA)).requests + server.stats(Secret(kTokenB)).requests +
           server.stats(Secret(kTokenC)).requests;
  }

  BotApiServer server;
  floodgate::test::IoThread io;
  std::optional<floodgate::net::HttpsClient> http;
  std::optional<BotPool> bots;
};

std::string text_of(std::int64_t chat, int n) { return "chat " + std::to_string(chat) + " #" + std::to_string(n); }

/// How often the sender changes along a chat's messages (0: one bot sent them all).
int sender_changes(const std::vector<floodgate::sim::SimMessage>& messages) {
  int changes = 0;
  for (std::size_t i = 1; i < messages.size(); ++i) changes += messages[i].sender_id != messages[i - 1].sender_id;
  return changes;
}

}  // namespace

TEST_CASE("BotPool: 30 chats x 4 messages over 3 tokens: each chat gets its 4 in order, from one bot") {
  // Telegram's limits on both sides. The simulator forgives 300 ms of jitter (its default 50 ms
  // is for a quiet machine; under sanitizers two requests paced 1 s apart can arrive closer):
  // a pool limiter with a bigger burst or a faster rate would still earn 429s. Under TSan a
  // chat's first burst waits for a new TLS connection, which takes up to a second there, while
  // its 4th message, paced a second later, goes out at once on the open connection.
  BotApiLimits limits;
#if defined(__SANITIZE_THREAD__)
  limits.tolerance = 1s;
#else
  limits.tolerance = 300ms;
#endif
  ThreeBots sim(limits);
  std::map<std::int64_t, std::vector<ThreeBots::Future>> calls;
  for (int n = 1; n <= 4; ++n) {
    for (std::int64_t chat = 1; chat <= 30; ++chat) calls[chat].push_back(sim.send(chat, text_of(chat, n)));
  }
  std::map<std::string, int> chats_per_token;
  for (auto& [chat, futures] : calls) {
    std::string token;
    for (auto& future : futures) {
      auto [ec, result] = future.get();
      REQUIRE_FALSE(ec);
      if (token.empty()) token = result.token_id;
      CHECK(result.token_id == token);  // the caller learns the delivering token: always the chat's
    }
    ++chats_per_token[token];
    CHECK(sim.bots->chat_token(chat) == token);
    const auto messages = sim.server.messages(chat);
    REQUIRE(messages.size() == 4);
    for (int n = 1; n <= 4; ++n) CHECK(messages[n - 1].text == text_of(chat, n));
    CHECK(sender_changes(messages) == 0);
  }
  CHECK(chats_per_token.size() == 3);  // the chats are spread over the tokens
  CHECK(sim.into_cooldown() == 0);
  CHECK(sim.server.stats(Secret(kTokenA)).rate_limited + sim.server.stats(Secret(kTokenB)).rate_limited +
            sim.server.stats(Secret(kTokenC)).rate_limited ==
        0);  // the pool's limits are the simulator's (Telegram's): no self-inflicted 429
}

TEST_CASE("BotPool: a token cooling mid-run: its chats move once, order holds") {
  ThreeBots sim;
  for (std::int64_t chat = 1; chat <= 30; ++chat) REQUIRE_FALSE(std::get<0>(sim.send(chat, text_of(chat, 1)).get()));
  const std::string cooling = sim.bots->chat_token(1).value();
  sim.bots->pool().cooldown(cooling, 60s);  // a long flood wait, say: beyond the policy's max_wait

  std::map<std::int64_t, std::vector<ThreeBots::Future>> calls;
  for (int n = 2; n <= 4; ++n) {
    for (std::int64_t chat = 1; chat <= 30; ++chat) calls[chat].push_back(sim.send(chat, text_of(chat, n)));
  }
  int moved = 0;
  for (auto& [chat, futures] : calls) {
    for (auto& future : futures) {
      auto [ec, result] = future.get();
      REQUIRE_FALSE(ec);
      CHECK(result.token_id != cooling);
    }
    const auto messages = sim.server.messages(chat);
    REQUIRE(messages.size() == 4);
    for (int n = 1; n <= 4; ++n) CHECK(messages[n - 1].text == text_of(chat, n));
    const int changes = sender_changes(messages);
    CHECK(changes <= 1);
    moved += changes;
  }
  CHECK(moved >= 1);  // chat 1's token was the cooling one
  CHECK(sim.into_cooldown() == 0);
}

TEST_CASE("BotPool: a user who started only bot B gets every message from bot B") {
  ThreeBots sim;
  sim.server.start_bot(Secret(kTokenB), 777);  // declares user 777: the other bots may not write first
  std::vector<ThreeBots::Future> calls;
  for (int n = 1; n <= 5; ++n) calls.push_back(sim.send(777, text_of(777, n)));
  for (auto& call : calls) {
    auto [ec, result] = call.get();
    REQUIRE_FALSE(ec);
    CHECK(result.token_id == "token-b");
  }
  const auto messages = sim.server.messages(777);
  REQUIRE(messages.size() == 5);
  for (int n = 1; n <= 5; ++n) CHECK(messages[n - 1].text == text_of(777, n));
  // At most one 403 each taught the pool that bots A and C cannot reach this user.
  CHECK(sim.server.stats(Secret(kTokenA)).forbidden <= 1);
  CHECK(sim.server.stats(Secret(kTokenC)).forbidden <= 1);
  CHECK(sim.server.stats(Secret(kTokenB)).forbidden == 0);
}

TEST_CASE("BotPool: a user who blocked every bot gets a definite error, and no request loops") {
  ThreeBots sim;
  for (const auto& token : {kTokenA, kTokenB, kTokenC}) sim.server.block_bot(Secret(token), 888);
  auto first = sim.send(888, "one");
  auto second = sim.send(888, "two");  // queued behind the first
  auto [ec, result] = first.get();
  CHECK(ec == errc::bad_request);
  CHECK(result.description.find("no bot in the pool can reach chat 888") != std::string::npos);
  CHECK(result.description.find("blocked by the user") != std::string::npos);
  CHECK(result.attempts == 3);  // one 403 per bot
  auto [ec2, behind] = second.get();
  CHECK(ec2 == errc::bad_request);
  CHECK(sim.requests() == 3);

  // Known now: a later message is refused without a request.
  auto [ec3, later] = sim.send(888, "three").get();
  CHECK(ec3 == errc::bad_request);
  CHECK(later.attempts == 0);
  CHECK(sim.requests() == 3);
  // Other chats are not affected.
  REQUIRE_FALSE(std::get<0>(sim.send(889, "hello").get()));
}

TEST_CASE("BotPool: a failed message holds back the ones queued behind it, unless they may overtake") {
  ThreeBots sim;
  auto bad = sim.send(55, std::string(5000, 'x'));  // over 4096 characters: Telegram refuses it
  auto held = sim.send(55, "after the bad one");
  auto independent = sim.bots->async_call("sendMessage", {{"chat_id", 55}, {"text", "independent"}},
                                   BotPool::CallOptions{.may_overtake = true}, asio::use_future);
  CHECK(std::get<0>(bad.get()) == errc::bad_request);
  auto [held_ec, held_result] = held.get();
  CHECK(held_ec == errc::bad_request);
  CHECK(held_result.description.find("an earlier call to chat 55 failed") != std::string::npos);
  CHECK(held_result.attempts == 0);
  REQUIRE_FALSE(std::get<0>(independent.get()));
  REQUIRE(sim.server.messages(55).size() == 1);
  CHECK(sim.server.messages(55).at(0).text == "independent");
}

TEST_CASE("BotPool: chat affinity is bounded: idle chats beyond max_chats are forgotten") {
  ThreeBots sim({}, {.max_chats = 4});
  for (std::int64_t chat = 1; chat <= 10; ++chat) REQUIRE_FALSE(std::get<0>(sim.send(chat, "hi").get()));
  CHECK_FALSE(sim.bots->chat_token(1));
  CHECK(sim.bots->chat_token(10));
}

TEST_CASE("BotPool: every media kind from bytes and from a file, a file id again only through its owner") {
  PoolSim sim;
  using telegram::MediaKind;
  const std::vector<std::pair<MediaKind, std::string>> kinds = {
      {MediaKind::photo, "photo"},         {MediaKind::video, "video"},     {MediaKind::audio, "audio"},
      {MediaKind::voice, "voice"},         {MediaKind::animation, "animation"}, {MediaKind::sticker, "sticker"},
      {MediaKind::document, "document"}};
  std::int64_t chat = 1200;
  std::map<std::string, std::pair<std::string, std::string>> file_by_kind;  // kind -> (file id, owner)
  for (const auto& [kind, name] : kinds) {
    auto [ec, result] = sim.bots.async_send_media({.chat_id = ++chat, .file_name = name + ".bin",
                                                   .content = std::string(1000, 'm'), .caption = name, .kind = kind},
                                                  asio::use_future).get();
    REQUIRE_FALSE(ec);
    const auto message = telegram::Message::from_json(result.result);
    REQUIRE(message);
    REQUIRE(message->file_id);
    CHECK(message->text == name);
    REQUIRE(sim.server.messages(chat).size() == 1);
    CHECK(sim.server.messages(chat).at(0).media == name);
    file_by_kind[name] = {*message->file_id, result.token_id};
  }

  const auto dir = std::filesystem::temp_directory_path() / ("floodgate-botpool-media-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "clip.mp4", std::ios::binary) << std::string(300000, 'v');
  auto [path_ec, from_path] = sim.bots.async_send_media(
      {.chat_id = 1300, .file_name = "clip.mp4", .content = dir / "clip.mp4", .kind = MediaKind::video},
      asio::use_future).get();
  REQUIRE_FALSE(path_ec);
  std::filesystem::remove_all(dir);
  const auto video = telegram::Message::from_json(from_path.result).value();
  auto [file_ec, file] = sim.bots.async_get_file(from_path.token_id, *video.file_id, asio::use_future).get();
  REQUIRE_FALSE(file_ec);
  CHECK(file.result.at("file_size") == 300000);

  // A file id is sent again only by the bot that owns it.
  const auto [photo_id, owner] = file_by_kind["photo"];
  const std::string other = owner == "token-a" ? "token-b" : "token-a";
  auto [free_ec, refused] = sim.bots.async_send_media(
      {.chat_id = 1301, .content = telegram::FileId{photo_id}, .kind = MediaKind::photo}, asio::use_future).get();
  CHECK(free_ec == errc::bad_request);
  CHECK(refused.attempts == 0);
  auto [owner_ec, again] = sim.bots.async_send_media_as(
      owner, {.chat_id = 1301, .content = telegram::FileId{photo_id}, .kind = MediaKind::photo}, asio::use_future)
                               .get();
  REQUIRE_FALSE(owner_ec);
  CHECK(again.token_id == owner);
  CHECK(telegram::Message::from_json(again.result)->file_id == photo_id);
  // What the pool keeps a rotating call from doing: Telegram refuses another bot's file id.
  auto [other_ec, wrong] = sim.bots.async_send_media_as(
      other, {.chat_id = 1301, .content = telegram::FileId{photo_id}, .kind = MediaKind::photo}, asio::use_future)
                               .get();
  CHECK(other_ec == errc::bad_request);
  CHECK(wrong.description.find("wrong file identifier") != std::string::npos);
}

namespace {

/// `floodgate-sim botapi --plain` in a child process: what it stores does not count in this process.
class SimProcess {
 public:
  explicit SimProcess(const std::vector<std::string>& tokens)
      : dir_(std::filesystem::temp_directory_path() / ("floodgate-sim-process-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
    std::vector<std::string> args = {FLOODGATE_SIM_PATH, "botapi", "--plain", "--port-out", (dir_ / "port").string()};
    for (const auto& token : tokens) {
      args.push_back("--token");
      args.push_back(token);
    }
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
    // A process start is real time: poll for the port file it writes once it listens.
    for (int i = 0; i < 1000 && !std::filesystem::exists(dir_ / "port"); ++i) std::this_thread::sleep_for(20ms);
    std::this_thread::sleep_for(20ms);  // the file is written whole, but give the writer a moment to close it
    std::ifstream(dir_ / "port") >> port_;
    REQUIRE(port_ != 0);
  }
  ~SimProcess() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  floodgate::net::Endpoint endpoint() const { return {false, "127.0.0.1", port_}; }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = 0;
  std::uint16_t port_ = 0;
};

/// A line of /proc/self/status ("VmHWM", "VmRSS") in kB.
std::uint64_t proc_status_kb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

}  // namespace

TEST_CASE("BotPool: a 50 MB upload streams from disk: peak memory grows far less than the file") {
  SimProcess sim({kTokenA});
  floodgate::test::IoThread io;
  floodgate::net::HttpClientOptions http_options;
  http_options.allow_plain_http = true;
  floodgate::net::HttpsClient http(io.executor(), http_options);
  BotPool bots(io.executor(), http, {{"token-a", {Secret(kTokenA)}}},
               {.endpoint = sim.endpoint(), .retry = PoolSim::fast_retry()});

  const auto dir = std::filesystem::temp_directory_path() / ("floodgate-botpool-50mb-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  constexpr std::uint64_t kSize = 50ull << 20;
  {
    std::ofstream out(dir / "big.bin", std::ios::binary);
    const std::string megabyte(1 << 20, 'z');
    for (std::uint64_t written = 0; written < kSize; written += megabyte.size()) out << megabyte;
  }
  // Reset the peak ("5" to clear_refs), so the peak measured is this upload's.
  REQUIRE(static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5"));
  const auto before = proc_status_kb("VmRSS");
  auto [ec, result] = bots.async_send_media(
      {.chat_id = 42, .file_name = "big.bin", .content = dir / "big.bin", .kind = telegram::MediaKind::document},
      asio::use_future).get();
  const auto peak = proc_status_kb("VmHWM");
  std::filesystem::remove_all(dir);
  REQUIRE_FALSE(ec);
  // All of it arrived (getFile would refuse: Telegram serves downloads up to 20 MB only).
  CHECK(result.result.at("document").at("file_size") == kSize);
  const auto growth_kb = static_cast<std::int64_t>(peak) - static_cast<std::int64_t>(before);
  INFO("peak RSS growth " << growth_kb << " kB for a " << (kSize >> 10) << " kB upload");
  CHECK(before > 0);
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps freed buffers for a while and its allocator pads
  // each one: the same streaming peaks a little above 8 MB there.
  constexpr std::int64_t kBoundKb = 16 * 1024;
#else
  constexpr std::int64_t kBoundKb = 8 * 1024;
#endif
  CHECK(growth_kb < kBoundKb);  // a fraction of the 50 MB
}

namespace {

/// A ChatAffinitySink in memory: what a file or Redis would keep between processes.
class MemoryAffinitySink : public telegram::ChatAffinitySink {
 public:
  std::optional<std::string> find(std::int64_t chat) const override {
    std::lock_guard lock(mutex_);
    const auto it = tokens_.find(chat);
    return it == tokens_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  void set(std::int64_t chat, std::string_view token_id) override {
    std::lock_guard lock(mutex_);
    tokens_[chat] = std::string(token_id);
  }
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return tokens_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::int64_t, std::string> tokens_;
};

}  // namespace

TEST_CASE("BotPool: chat affinity kept in a ChatAffinitySink holds for a restarted pool") {
  MemoryAffinitySink sink;
  ThreeBots sim({}, {.affinity_sink = &sink});
  std::map<std::int64_t, std::string> first_tokens;
  for (std::int64_t chat = 1; chat <= 9; ++chat) {
    auto [ec, result] = sim.send(chat, "before the restart").get();
    REQUIRE_FALSE(ec);
    first_tokens[chat] = result.token_id;
  }
  CHECK(sink.size() == 9);

  // A new pool (a restarted process) with the same sink: each chat keeps its bot, in whatever
  // order the chats come back (a fresh pool alone would hand them out afresh).
  BotPool restarted(sim.io.executor(), *sim.http,
                    {{"token-a", {Secret(kTokenA)}}, {"token-b", {Secret(kTokenB)}}, {"token-c", {Secret(kTokenC)}}},
                    {.endpoint = sim.server.endpoint(), .retry = PoolSim::fast_retry(),
                     .routing = {.affinity_sink = &sink}});
  for (std::int64_t chat = 9; chat >= 1; --chat) {
    auto [ec, result] =
        restarted.async_send_message({.chat_id = chat, .text = "after the restart"}, asio::use_future).get();
    REQUIRE_FALSE(ec);
    CHECK(result.token_id == first_tokens[chat]);
    CHECK(restarted.chat_token(chat) == first_tokens[chat]);
  }
}
