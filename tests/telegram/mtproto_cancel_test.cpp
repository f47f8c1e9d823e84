// Per-operation cancellation of TdjsonClient::async_send, MtprotoSession's
// async_wait_ready / async_send / async_close and MtprotoPool's
// async_wait_ready / async_close, against real TDLib (no network: a login
// never finishes, which is what a wait to cancel needs). A request that
// takes a known time without the network is TDLib's `setAlarm`.
// `||` with a timer (tests/async/cancel_race.hpp) and signals emitted by hand.
#include "../async/cancel_race.hpp"
#include "io_runner.hpp"
#include "real_tdjson.hpp"
#include "test_support.hpp"

#include <floodgate/telegram/mtproto_pool.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <future>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace tg = floodgate::telegram;
using floodgate::errc;
using floodgate::Secret;
using floodgate::test::IoRunner;
using floodgate::test::real_tdjson;
using floodgate::test::run_race;
using floodgate::test::TempRoot;
using nlohmann::json;
using State = tg::MtprotoSession::State;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiHash = "a3406de8d171bb422bb6ddf3bbd800e2";
constexpr const char* kBotToken = "123456:AAE-real-tdlib-cancel-token";

json alarm(double seconds) { return {{"@type", "setAlarm"}, {"seconds", seconds}}; }

struct Fixture {
  TempRoot root;
  IoRunner io{2};
  tg::TdjsonClient tdjson{io.executor(), real_tdjson()};

  /// A bot session: offline, its login request is never answered, so it stays authorizing.
  tg::MtprotoSession::Options bot_options() { return {.sessions_root = root.path, .bot_token = Secret(kBotToken)}; }
  std::unique_ptr<tg::MtprotoSession> bot(const std::string& id) {
    return std::make_unique<tg::MtprotoSession>(tdjson, id, tg::MtprotoCredentials{94575, Secret(kApiHash)},
                                                bot_options());
  }
};

}  // namespace

TEST_CASE("real tdlib: TdjsonClient async_send || timer ends with the timer, the late reply is dropped",
          "[telegram][mtproto][real][cancel]") {
  Fixture f;
  const auto client = f.tdjson.create_client();
  auto send = f.tdjson.async_send(client, alarm(2.0), asio::as_tuple(asio::use_awaitable));
  const auto result = run_race(f.io.executor(), std::move(send), 100ms);
  CHECK(result.timer_won);
  CHECK(result.took < 1s);  // not the alarm's 2 s
  // TDLib still answers; nobody waits for it: counted, dropped, exactly once.
  REQUIRE(f.io.wait_until([&] { return f.tdjson.stats().unmatched >= 1; }, 5s));
  CHECK(f.tdjson.stats().pending == 0);
  // The client goes on.
  auto [ec, reply] = f.tdjson.async_send(client, {{"@type", "testSquareInt"}, {"x", 7}}, asio::use_future).get();
  CHECK_FALSE(ec);
  CHECK(reply.value("value", 0) == 49);
  f.tdjson.async_send(client, {{"@type", "close"}}, asio::use_future).get();
}

TEST_CASE("real tdlib: TdjsonClient async_send: terminal ends at once with operation_canceled, total waits for the reply",
          "[telegram][mtproto][real][cancel]") {
  Fixture f;
  const auto client = f.tdjson.create_client();
  asio::cancellation_signal signal;
  std::promise<std::pair<std::error_code, json>> done;
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::total);
  const auto started = std::chrono::steady_clock::now();
  asio::post(f.io.executor(), [&] {
    f.tdjson.async_send(client, alarm(1.0), asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec, json r) {
                          done.set_value({ec, std::move(r)});
                        }));
    signal.emit(type);
  });
  auto [ec, reply] = done.get_future().get();
  const auto took = std::chrono::steady_clock::now() - started;
  if (type == asio::cancellation_type::terminal) {
    CHECK(ec == std::errc::operation_canceled);
    CHECK(ec == errc::cancelled);
    CHECK(took < 700ms);
  } else {
    // Handed to TDLib, which cannot recall it: total cannot be honoured; the reply ends it.
    CHECK_FALSE(ec);
    CHECK(reply.value("@type", "") == "ok");
    CHECK(took >= 900ms);
  }
  f.tdjson.async_send(client, {{"@type", "close"}}, asio::use_future).get();
}

TEST_CASE("real tdlib: MtprotoSession async_wait_ready and async_send || timer end with the timer, the session goes on",
          "[telegram][mtproto][real][cancel]") {
  Fixture f;
  auto session = f.bot("bot1");
  REQUIRE(f.io.wait_until([&] { return session->state() == State::authorizing; }));

  auto wait = session->async_wait_ready(asio::as_tuple(asio::use_awaitable));
  auto raced = run_race(f.io.executor(), std::move(wait), 100ms);
  CHECK(raced.timer_won);
  CHECK(raced.took < 1s);
  CHECK(session->state() == State::authorizing);  // the login goes on

  // By hand: the wait ends with operation_canceled, whatever the type.
  const auto type = GENERATE(asio::cancellation_type::terminal, asio::cancellation_type::partial,
                             asio::cancellation_type::total);
  asio::cancellation_signal signal;
  std::promise<std::error_code> cancelled;
  auto other = session->async_wait_ready(asio::use_future);  // not cancelled: still waits
  asio::post(f.io.executor(), [&] {
    session->async_wait_ready(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) {
      cancelled.set_value(ec);
    }));
    signal.emit(type);
  });
  auto ec = cancelled.get_future();
  REQUIRE(ec.wait_for(1s) == std::future_status::ready);
  CHECK(ec.get() == std::errc::operation_canceled);
  CHECK(other.wait_for(50ms) == std::future_status::timeout);

  auto send = session->async_send(alarm(2.0), asio::as_tuple(asio::use_awaitable));
  raced = run_race(f.io.executor(), std::move(send), 100ms);
  CHECK(raced.timer_won);
  CHECK(raced.took < 1s);
  CHECK(session->state() == State::authorizing);  // a cancelled request does not touch the session

  CHECK_FALSE(session->async_close(asio::use_future).get());
  CHECK(other.get() == errc::shut_down);  // ended once, by the close
  CHECK(session->state() == State::closed);
}

TEST_CASE("real tdlib: MtprotoSession async_close cancelled ends the wait at once, the close goes on",
          "[telegram][mtproto][real][cancel]") {
  Fixture f;
  auto session = f.bot("bot2");
  REQUIRE(f.io.wait_until([&] { return session->state() == State::authorizing; }));
  asio::cancellation_signal signal;
  std::promise<std::error_code> cancelled;
  asio::post(f.io.executor(), [&] {
    session->async_close(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) {
      cancelled.set_value(ec);
    }));
    signal.emit(asio::cancellation_type::terminal);
  });
  CHECK(cancelled.get_future().get() == std::errc::operation_canceled);
  CHECK((session->state() == State::closing || session->state() == State::closed));
  // A second close waits for the first one's end.
  CHECK_FALSE(session->async_close(asio::use_future).get());
  CHECK(session->state() == State::closed);
}

TEST_CASE("real tdlib: MtprotoPool async_wait_ready || timer ends with the timer, a cancelled async_close still closes",
          "[telegram][mtproto][real][cancel]") {
  Fixture f;
  tg::MtprotoPool::Options options;
  options.session = f.bot_options();
  tg::MtprotoPool pool(f.tdjson, {{"bot1", {94575, Secret(kApiHash)}}, {"bot2", {94575, Secret(kApiHash)}}},
                       std::move(options));
  auto wait = pool.async_wait_ready(asio::as_tuple(asio::use_awaitable));
  const auto raced = run_race(f.io.executor(), std::move(wait), 150ms);
  CHECK(raced.timer_won);
  CHECK(raced.took < 1s);

  asio::cancellation_signal signal;
  std::promise<std::error_code> cancelled;
  asio::post(f.io.executor(), [&] {
    pool.async_close(asio::bind_cancellation_slot(signal.slot(), [&](std::error_code ec) { cancelled.set_value(ec); }));
    signal.emit(asio::cancellation_type::partial);
  });
  CHECK(cancelled.get_future().get() == std::errc::operation_canceled);
  REQUIRE(f.io.wait_until([&] {
    return pool.session("bot1")->state() == State::closed && pool.session("bot2")->state() == State::closed;
  }));
  CHECK_FALSE(pool.async_close(asio::use_future).get());
}
