// Per-operation cancellation of BotPool, BotApiClient, HttpsClient and StatusMessage calls,
// against sim::BotApiServer over real sockets: `||` with a timer
// (tests/async/cancel_race.hpp), and a cancellation_signal emitted by hand.
// Also: the log level of a 429 the pool handles as designed.
#include <catch2/catch.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../async/cancel_race.hpp"
#include "../net/net_test_support.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/status_message.hpp"

using floodgate::Secret;
using floodgate::sim::BotApiLimits;
using floodgate::sim::BotApiServer;
using floodgate::sim::Fault;
using floodgate::telegram::BotPool;
using floodgate::telegram::BotPoolResult;
using floodgate::test::Race;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

const std::string kTokenA = "200001:AAHcancel-token-alpha";
const std::string kTokenB = "200002:AAHcancel-token-bravo";

/// The simulator (no limits), an io thread, an HTTPS client and a BotPool of both tokens.
struct CancelSim {
  CancelSim()
      : server({.tokens = {Secret(kTokenA), Secret(kTokenB)},
                .limits = BotApiLimits{.overall = std::nullopt, .per_chat = std::nullopt, .per_group = std::nullopt},
                .tls = true}),
        http((server.start(), io.executor()), floodgate::test::client_options_for(server)),
        bots(io.executor(), http, {{"token-a", {Secret(kTokenA)}}, {"token-b", {Secret(kTokenB)}}},
             {.endpoint = server.endpoint(), .retry = short_waits()}) {}

  /// No test waits out a flood wait in real time: a cooling pool ends the call.
  static floodgate::RetryPolicy short_waits() {
    floodgate::RetryPolicy retry;
    retry.max_wait = 5s;
    return retry;
  }

  /// Every request any token sent for `method` (lower case).
  std::uint64_t sent(const std::string& method) {
    return server.stats(Secret(kTokenA)).by_method[method] + server.stats(Secret(kTokenB)).by_method[method];
  }
  void slow_replies(std::chrono::milliseconds delay, int times = 4) {
    server.inject(Secret(kTokenA), Fault::slow_reply(delay), times);
    server.inject(Secret(kTokenB), Fault::slow_reply(delay), times);
  }
  std::uint64_t pool_successes() {
    std::uint64_t n = 0;
    for (const auto& record : bots.snapshot()) n += record.successes;
    return n;
  }

  BotApiServer server;
  floodgate::test::IoThread io;
  floodgate::net::HttpsClient http;
  BotPool bots;
};

Race run_race(CancelSim& sim, auto operation, std::chrono::milliseconds after) {
  return floodgate::test::run_race(sim.io.executor(), std::move(operation), after);
}

/// Waits (real time, bounded) until `done()`; the simulator answers on its own thread.
template <class Predicate>
bool eventually(Predicate done) {
  for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
  return done();
}

}  // namespace

TEST_CASE("BotPool: async_send_message || timer ends with the timer, the send is not repeated, its reply still counts",
          "[cancel]") {
  CancelSim sim;
  sim.slow_replies(1500ms);
  auto send = sim.bots.async_send_message({.chat_id = 77, .text = "slow"}, asio::as_tuple(asio::use_awaitable));
  const auto result = run_race(sim, std::move(send), 150ms);
  CHECK(result.timer_won);
  CHECK(result.took < 1s);  // not the reply's 1.5 s
  // The request was on the wire: the server applies it once, the pool hears the reply, nothing is sent again.
  REQUIRE(eventually([&] { return sim.pool_successes() == 1; }));
  CHECK(sim.sent("sendmessage") == 1);
  CHECK(sim.server.messages(77).size() == 1);
}

TEST_CASE("BotPool: a send cancelled (terminal) before it starts ends with operation_canceled and is never sent",
          "[cancel]") {
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial,
                             asio::cancellation_type::total);
  CancelSim sim;
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  asio::post(sim.io.executor(), [&] {
    sim.bots.async_send_message({.chat_id = 5, .text = "never"},
                                asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, BotPoolResult) {
                                  done.set_value(ec);
                                }));
    signal.emit(type);
  });
  const auto ec = done.get_future().get();
  CHECK(ec == std::errc::operation_canceled);
  CHECK(ec == floodgate::errc::cancelled);
  CHECK(sim.sent("sendmessage") == 0);
  CHECK(sim.server.messages(5).empty());
}

TEST_CASE("BotPool: a call cancelled while queued behind its chat's head ends at once, unsent, order holds",
          "[cancel]") {
  CancelSim sim;
  sim.slow_replies(600ms, 1);  // the first request only
  asio::cancellation_signal signal;
  auto first = sim.bots.async_send_message({.chat_id = 9, .text = "first"}, asio::use_future);
  std::promise<std::error_code> second_done;
  auto third = std::make_shared<std::promise<std::error_code>>();
  asio::post(sim.io.executor(), [&] {
    sim.bots.async_send_message({.chat_id = 9, .text = "second"},
                                asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, BotPoolResult) {
                                  second_done.set_value(ec);
                                }));
    sim.bots.async_send_message({.chat_id = 9, .text = "third"},
                                [third](std::error_code ec, BotPoolResult) { third->set_value(ec); });
    signal.emit(asio::cancellation_type::terminal);
  });
  auto second = second_done.get_future();
  REQUIRE(second.wait_for(300ms) == std::future_status::ready);  // long before the head's reply
  CHECK(second.get() == std::errc::operation_canceled);
  CHECK_FALSE(std::get<0>(first.get()));
  CHECK_FALSE(third->get_future().get());  // a cancellation is no failure for the calls behind
  const auto messages = sim.server.messages(9);
  REQUIRE(messages.size() == 2);
  CHECK(messages[0].text == "first");
  CHECK(messages[1].text == "third");
}

TEST_CASE("BotPool: the call behind a head cancelled on the wire waits for the head's answer", "[cancel]") {
  CancelSim sim;
  sim.slow_replies(500ms, 1);
  asio::cancellation_signal signal;
  std::promise<std::error_code> head_done;
  std::promise<std::error_code> next_done;
  asio::post(sim.io.executor(), [&] {
    sim.bots.async_send_message({.chat_id = 11, .text = "head"},
                                asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, BotPoolResult) {
                                  head_done.set_value(ec);
                                }));
  });
  REQUIRE(eventually([&] { return sim.sent("sendmessage") == 1; }));  // the head is on the wire
  asio::post(sim.io.executor(), [&] {
    sim.bots.async_send_message({.chat_id = 11, .text = "next"},
                                [&](std::error_code ec, BotPoolResult) { next_done.set_value(ec); });
    signal.emit(asio::cancellation_type::terminal);
  });
  auto head = head_done.get_future();
  REQUIRE(head.wait_for(300ms) == std::future_status::ready);
  CHECK(head.get() == std::errc::operation_canceled);
  CHECK_FALSE(next_done.get_future().get());
  const auto messages = sim.server.messages(11);
  REQUIRE(messages.size() == 2);  // the head was applied once, never re-sent
  CHECK(messages[0].text == "head");
  CHECK(messages[1].text == "next");
}

TEST_CASE("BotPool: async_call_as, async_get_file and async_send_media || timer end with the timer", "[cancel]") {
  CancelSim sim;
  SECTION("owner-bound call") {
    sim.slow_replies(1500ms);
    auto call = sim.bots.async_call_as("token-a", "getMe", nlohmann::json::object(),
                                       asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(sim, std::move(call), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
  }
  SECTION("getFile") {
    sim.slow_replies(1500ms);
    auto call = sim.bots.async_get_file("token-a", "no-such-file", asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(sim, std::move(call), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
  }
  SECTION("media") {
    sim.slow_replies(1500ms);
    floodgate::telegram::SendMediaParams media;
    media.kind = floodgate::telegram::MediaKind::document;
    media.chat_id = 12;
    media.file_name = "doc.txt";
    media.content = std::string("hello");
    auto call = sim.bots.async_send_media(std::move(media), asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(sim, std::move(call), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
  }
  SECTION("download") {
    const auto file_id = sim.server.add_file(Secret(kTokenA), "some bytes", "a.txt");
    auto [ec, file] = sim.bots.async_get_file("token-a", file_id, asio::use_future).get();
    REQUIRE_FALSE(ec);
    sim.slow_replies(1500ms);
    const auto destination = std::filesystem::temp_directory_path() / "floodgate-cancel-download.bin";
    auto call = sim.bots.async_download("token-a", file.result.at("file_path").get<std::string>(), destination,
                                        asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(sim, std::move(call), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
    std::filesystem::remove(destination);
  }
}

TEST_CASE("HttpsClient and BotApiClient: a request raced with a timer is cancelled", "[cancel]") {
  CancelSim sim;
  sim.slow_replies(1500ms, 2);
  SECTION("HttpsClient") {
    auto request = sim.http.async_request(
        floodgate::net::HttpRequest::post_json(sim.server.endpoint(),
                                               floodgate::test::bot_target(Secret(kTokenA), "getMe"),
                                               nlohmann::json::object()),
        asio::as_tuple(asio::use_awaitable));
    const auto result = run_race(sim, std::move(request), 100ms);
    CHECK(result.timer_won);
    CHECK(result.took < 1s);
  }
  SECTION("BotApiClient, cancelled by hand") {
    floodgate::telegram::BotApiClient client(sim.http, sim.server.endpoint(), Secret(kTokenA));
    asio::cancellation_signal signal;
    std::promise<std::error_code> done;
    asio::post(sim.io.executor(), [&] {
      client.async_get_me(asio::bind_cancellation_slot(
          signal.slot(), [&](std::error_code ec, floodgate::telegram::BotApiResponse) { done.set_value(ec); }));
    });
    REQUIRE(eventually([&] { return sim.server.stats(Secret(kTokenA)).requests == 1; }));
    asio::post(sim.io.executor(), [&] { signal.emit(asio::cancellation_type::terminal); });
    auto ec = done.get_future();
    REQUIRE(ec.wait_for(500ms) == std::future_status::ready);
    CHECK(ec.get() == std::errc::operation_canceled);
  }
}

TEST_CASE("StatusMessage: async_finish || timer while waiting for its edit slot ends with the timer, nothing is sent",
          "[cancel]") {
  CancelSim sim;
  auto [ec, sent] = sim.bots.async_send_message({.chat_id = 21, .text = "0%"}, asio::use_future).get();
  REQUIRE_FALSE(ec);
  auto status = floodgate::telegram::StatusMessage::create(sim.bots, sent.sent().value(), "0%", 1500ms);
  auto finish = status->async_finish("done", asio::as_tuple(asio::use_awaitable));
  const auto result = run_race(sim, std::move(finish), 100ms);
  CHECK(result.timer_won);
  CHECK(result.took < 1s);
  // Past the slot the edit would have taken: none was sent, the message is stopped for good.
  std::this_thread::sleep_for(1600ms);
  status->update("ignored");
  CHECK(status->edits_sent() == 0);
  CHECK(sim.sent("editmessagetext") == 0);
  CHECK(sim.server.messages(21).at(0).text == "0%");
}

TEST_CASE("StatusMessage: async_finish cancelled with its edit on the wire ends at once, the edit is applied once",
          "[cancel]") {
  CancelSim sim;
  auto [ec, sent] = sim.bots.async_send_message({.chat_id = 22, .text = "0%"}, asio::use_future).get();
  REQUIRE_FALSE(ec);
  auto status = floodgate::telegram::StatusMessage::create(sim.bots, sent.sent().value(), "0%", 0ms);
  sim.slow_replies(1500ms, 1);
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::total);
  asio::cancellation_signal signal;
  std::promise<std::error_code> done;
  asio::post(sim.io.executor(), [&] {
    status->async_finish("done", asio::bind_cancellation_slot(signal.slot(), [&](std::error_code finish_ec) {
                           done.set_value(finish_ec);
                         }));
  });
  REQUIRE(eventually([&] { return sim.sent("editmessagetext") == 1; }));  // on the wire
  asio::post(sim.io.executor(), [&] { signal.emit(type); });
  auto finished = done.get_future();
  if (type == asio::cancellation_type::terminal) {
    REQUIRE(finished.wait_for(1s) == std::future_status::ready);  // not the reply's 1.5 s
    CHECK(finished.get() == std::errc::operation_canceled);
  } else {
    // Total waits for the edit's answer: it showed the final text, so the finish succeeded.
    CHECK_FALSE(finished.get());
  }
  REQUIRE(eventually([&] { return sim.server.messages(22).at(0).text == "done"; }));
  std::this_thread::sleep_for(100ms);
  CHECK(sim.sent("editmessagetext") == 1);  // applied once, never sent again
  CHECK(status->edits_sent() == 1);
}

TEST_CASE("BotPool: a 429 handled as designed is logged at debug, nothing at info or above", "[log]") {
  CancelSim sim;
  std::mutex mutex;
  std::vector<std::pair<floodgate::LogLevel, std::string>> lines;
  floodgate::set_log_level(floodgate::LogLevel::debug);
  const auto previous = floodgate::set_log_sink([&](floodgate::LogLevel level, std::string_view line) {
    std::lock_guard lock(mutex);
    lines.emplace_back(level, std::string(line));
  });
  sim.server.inject(Secret(kTokenA), Fault::flood_wait(30));
  sim.server.inject(Secret(kTokenB), Fault::flood_wait(30));
  auto [ec, result] = sim.bots.async_send_message({.chat_id = 3, .text = "x"}, asio::use_future).get();
  floodgate::set_log_sink(previous);
  floodgate::set_log_level(floodgate::LogLevel::info);
  CHECK(ec == floodgate::errc::all_credentials_cooling);  // both tokens answered 429: handled, no error to log
  std::lock_guard lock(mutex);
  bool flood_line = false;
  for (const auto& [level, line] : lines) {
    INFO(line);
    CHECK(level == floodgate::LogLevel::debug);
    flood_line = flood_line || line.find("flood wait 30s") != std::string::npos;
  }
  CHECK(flood_line);
}
