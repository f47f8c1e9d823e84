// The loader and the dispatcher, against the fake libtdjson builds.
#include "fake_control.hpp"
#include "io_runner.hpp"

#include <floodgate/core/log.hpp>
#include <floodgate/telegram/flood_errors.hpp>
#include <floodgate/telegram/tdjson_client.hpp>
#include <floodgate/telegram/tdjson_library.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using floodgate::errc;
using floodgate::telegram::TdjsonClient;
using floodgate::telegram::TdjsonLibrary;
using floodgate::telegram::TdjsonLoadError;
using floodgate::test::FakeTdjson;
using floodgate::test::IoRunner;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<TdjsonLibrary> open_fake(const char* path) { return TdjsonLibrary::open({.path = path}); }

json echo(const std::string& x) { return {{"@type", "testCallString"}, {"x", x}}; }

std::tuple<std::error_code, json> send_and_wait(TdjsonClient& tdjson, TdjsonClient::ClientId client, json request) {
  return tdjson.async_send(client, std::move(request), asio::use_future).get();
}

}  // namespace

TEST_CASE("tdjson loader: a missing library is an error naming the path", "[telegram][tdjson]") {
  try {
    TdjsonLibrary::open({.path = "/nonexistent/dir/libtdjson.so"});
    FAIL("open() should throw");
  } catch (const TdjsonLoadError& e) {
    CHECK(e.path() == "/nonexistent/dir/libtdjson.so");
    CHECK(e.symbol().empty());
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/dir/libtdjson.so"));
    CHECK_THAT(e.what(), Catch::Contains("FLOODGATE_TDJSON_PATH"));
  }
}

TEST_CASE("tdjson loader: a missing function is an error naming the symbol", "[telegram][tdjson]") {
  try {
    open_fake(FAKE_TDJSON_BROKEN_PATH);
    FAIL("open() should throw");
  } catch (const TdjsonLoadError& e) {
    CHECK(e.symbol() == "td_receive");
    CHECK(e.path() == FAKE_TDJSON_BROKEN_PATH);
    CHECK_THAT(e.what(), Catch::Contains("td_receive") && Catch::Contains(FAKE_TDJSON_BROKEN_PATH));
  }
}

TEST_CASE("tdjson loader: FLOODGATE_TDJSON_PATH is used, an explicit path wins", "[telegram][tdjson]") {
  ::setenv("FLOODGATE_TDJSON_PATH", FAKE_TDJSON_LEGACY_PATH, 1);
  const auto from_env = TdjsonLibrary::open();
  const auto explicit_path = TdjsonLibrary::open({.path = FAKE_TDJSON_PATH});
  ::unsetenv("FLOODGATE_TDJSON_PATH");
  CHECK(from_env->path() == FAKE_TDJSON_LEGACY_PATH);
  CHECK(from_env->interface() == TdjsonLibrary::Interface::legacy);
  CHECK(explicit_path->path() == FAKE_TDJSON_PATH);
  CHECK(explicit_path->interface() == TdjsonLibrary::Interface::client_id);
}

TEST_CASE("tdjson loader: without a path, the newest libtdjson.so.<version> is found", "[telegram][tdjson]") {
  if (void* installed = dlopen("libtdjson.so", RTLD_LAZY)) {
    dlclose(installed);
    WARN("a real libtdjson.so is installed: it would be loaded first; skipped");
    return;
  }
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("floodgate-tdjson-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(FAKE_TDJSON_LEGACY_PATH, dir / "libtdjson.so.1.8.9");
  std::filesystem::create_symlink(FAKE_TDJSON_PATH, dir / "libtdjson.so.1.8.10");
  std::filesystem::create_symlink(FAKE_TDJSON_BROKEN_PATH, dir / "libtdjson.so.1.8.x");  // not a version

  const auto library = TdjsonLibrary::open({.search_dirs = {dir}});
  std::filesystem::remove_all(dir);
  CHECK(library->path().filename() == "libtdjson.so.1.8.10");
  CHECK(library->interface() == TdjsonLibrary::Interface::client_id);
}

TEST_CASE("tdjson client: replies reach their request by client id and extra, from many threads",
          "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io(2);
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));

  constexpr int kClients = 4, kThreads = 6, kPerThread = 150, kUpdates = 100;
  std::vector<TdjsonClient::ClientId> clients;
  std::map<TdjsonClient::ClientId, std::atomic<int>> updates;  // pushed updates seen, in order
  std::atomic<bool> out_of_order{false};
  for (int i = 0; i < kClients; ++i) {
    auto next = std::make_shared<int>(0);
    const auto id = tdjson.create_client([&updates, &out_of_order, next](json update) {
      if (update.value("@type", "") != "updateOption") return;
      if (update["value"].get<int>() != (*next)++) out_of_order = true;
      ++updates.at(update["@client_id"].get<int>());
    });
    updates[id];
    clients.push_back(id);
  }

  std::atomic<int> completions{0}, wrong{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto client = clients[(t + i) % kClients];
        const auto x = fmt::format("{}:{}:{}", t, i, client);
        tdjson.async_send(client, echo(x), [&, x, client](std::error_code ec, json reply) {
          if (ec || reply.value("value", "") != x || reply.value("@client_id", 0) != client) ++wrong;
          ++completions;
        });
      }
    });
  }
  // Updates interleave with the replies; each client must see its own, in order.
  senders.emplace_back([&] {
    for (int i = 0; i < kUpdates; ++i) {
      for (auto client : clients) {
        fake.push(client, json{{"@type", "updateOption"}, {"value", i}, {"@client_id", client}}.dump());
      }
    }
  });
  for (auto& s : senders) s.join();

  REQUIRE(io.wait_until([&] { return completions == kThreads * kPerThread; }));
  REQUIRE(io.wait_until([&] {
    for (auto& [id, n] : updates) if (n != kUpdates) return false;
    return true;
  }));
  CHECK(wrong == 0);
  CHECK_FALSE(out_of_order);
  CHECK(tdjson.stats().pending == 0);
  CHECK(tdjson.stats().malformed == 0);
}

TEST_CASE("tdjson client: the legacy interface works behind the same API", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_LEGACY_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_LEGACY_PATH));
  REQUIRE(tdjson.library().interface() == TdjsonLibrary::Interface::legacy);

  std::atomic<int> auth_updates{0};
  const auto a = tdjson.create_client([&](json u) { auth_updates += u.value("@type", "") == "updateAuthorizationState"; });
  const auto b = tdjson.create_client([&](json u) { auth_updates += u.value("@type", "") == "updateAuthorizationState"; });
  for (int i = 0; i < 20; ++i) {
    const auto client = i % 2 ? a : b;
    auto [ec, reply] = send_and_wait(tdjson, client, echo(std::to_string(i)));
    CHECK_FALSE(ec);
    CHECK(reply.value("value", "") == std::to_string(i));
  }
  CHECK(io.wait_until([&] { return auth_updates == 2; }));
  CHECK(fake.requests().size() >= 21);  // 20 sends and the verbosity execute
}

TEST_CASE("tdjson client: TDLib errors complete with the reply, flood waits of every form", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();
  fake.script({{"client_id", client},
               {"responses",
                {{"downloadFile",
                  {{{"@type", "error"}, {"code", 429}, {"message", "Too Many Requests: retry after 11"}},
                   {{"@type", "error"}, {"code", 420}, {"message", "FLOOD_WAIT_12"}},
                   {{"@type", "error"}, {"code", 420}, {"message", "FLOOD_PREMIUM_WAIT_13"}},
                   {{"@type", "error"}, {"code", 420}, {"message", "SLOWMODE_WAIT_14"}},
                   {{"@type", "file"}, {"id", 1}}}}}}});

  using floodgate::OutcomeKind;
  for (const auto& [seconds, chat] : {std::pair{11, false}, {12, false}, {13, false}, {14, true}}) {
    auto [ec, reply] = send_and_wait(tdjson, client, {{"@type", "downloadFile"}, {"file_id", 1}});
    CHECK_FALSE(ec);
    const auto error = floodgate::telegram::classify_td_response(reply);
    REQUIRE(error);
    CHECK(error->kind == OutcomeKind::flood_wait);
    CHECK(error->retry_after == std::chrono::seconds(seconds));
    CHECK(error->chat_scoped == chat);
  }
  auto [ec, file] = send_and_wait(tdjson, client, {{"@type", "downloadFile"}, {"file_id", 1}});
  CHECK_FALSE(ec);
  CHECK(file.value("@type", "") == "file");
  CHECK_FALSE(floodgate::telegram::classify_td_response(file));
}

TEST_CASE("tdjson client: callbacks, use_future and use_awaitable share one API", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();

  std::promise<std::string> via_callback;
  tdjson.async_send(client, echo("callback"), [&](std::error_code, json reply) { via_callback.set_value(reply["value"]); });
  CHECK(via_callback.get_future().get() == "callback");

  auto [ec, reply] = tdjson.async_send(client, echo("future"), asio::use_future).get();
  CHECK_FALSE(ec);
  CHECK(reply["value"] == "future");

  std::promise<std::string> via_coroutine;
  asio::co_spawn(
      io.executor(),
      [&]() -> asio::awaitable<void> {
        auto [error, answer] = co_await tdjson.async_send(client, echo("awaitable"), asio::use_awaitable);
        via_coroutine.set_value(error ? error.message() : answer["value"].get<std::string>());
      },
      asio::detached);
  CHECK(via_coroutine.get_future().get() == "awaitable");
}

TEST_CASE("tdjson client: a client that never answers times out and nothing is left pending", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH), {.request_timeout = 30ms});
  const auto silent = tdjson.create_client();
  const auto talkative = tdjson.create_client();
  fake.script({{"client_id", silent}, {"silent", true}});

  auto [ec, reply] = send_and_wait(tdjson, silent, echo("anyone?"));
  CHECK(ec == errc::deadline_exceeded);
  CHECK(reply.is_null());

  // A per-request timeout overrides the default; zero waits as long as it takes.
  auto [ok, answer] = tdjson.async_send(talkative, echo("here"), 0ms, asio::use_future).get();
  CHECK_FALSE(ok);
  CHECK(answer["value"] == "here");
  CHECK(tdjson.stats().pending == 0);
}

TEST_CASE("tdjson client: shutdown closes open clients first, every pending request ends exactly once",
          "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();
  fake.script({{"client_id", client}, {"silent", true}});

  constexpr int kRequests = 50;
  std::vector<std::atomic<int>> calls(kRequests);
  std::atomic<int> aborted{0};
  for (int i = 0; i < kRequests; ++i) {
    tdjson.async_send(client, echo("x"), [&, i](std::error_code ec, json reply) {
      ++calls[i];
      // As TDLib does on close: 500 "Request aborted" for what was pending.
      aborted += !ec && reply.value("code", 0) == 500 && reply.value("message", "") == "Request aborted";
    });
  }
  CHECK(io.wait_until([&] { return tdjson.stats().pending == kRequests; }));
  tdjson.shutdown();
  tdjson.shutdown();  // idempotent
  REQUIRE(io.wait_until([&] { return aborted == kRequests; }));
  CHECK(fake.requests_of("close").size() == 1);  // the receive loop outlived the client

  auto [late, reply] = send_and_wait(tdjson, client, echo("late"));
  CHECK(late == errc::shut_down);
  io.drain();
  for (auto& n : calls) CHECK(n == 1);
}

TEST_CASE("tdjson client: requests have a default timeout, shutdown waits for closes only so long",
          "[telegram][tdjson]") {
  CHECK(TdjsonClient::Options{}.request_timeout == std::chrono::minutes(5));
  CHECK(TdjsonClient::Options{}.close_timeout == std::chrono::seconds(10));
}

TEST_CASE("tdjson client: malformed messages are counted and dropped, dispatch goes on", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  std::vector<std::string> warnings;
  std::mutex warnings_mutex;
  auto old_sink = floodgate::set_log_sink([&](floodgate::LogLevel, std::string_view line) {
    std::lock_guard lock(warnings_mutex);
    warnings.emplace_back(line);
  });
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();
  CHECK_FALSE(std::get<0>(send_and_wait(tdjson, client, echo("first"))));

  for (const char* text : {"not json", "[1,2]", R"({"@type":"ok"})", R"({"@type":"ok","@client_id":"7"})",
                           "{\"@type\":\"ok\",\"x\":\"\xff\xfe\"", ""}) {
    fake.push(client, text);
  }
  // Well-formed but odd: delivered as updates, never a crash.
  fake.push(client, json{{"@type", 5}, {"@client_id", client}}.dump());
  fake.push(client, json{{"@type", "updateAuthorizationState"}, {"@client_id", client}, {"authorization_state", 7}}.dump());
  fake.push(client, json{{"@type", "ok"}, {"@client_id", client}, {"@extra", 999999999}}.dump());
  fake.push(client, json{{"@type", "ok"}, {"@client_id", client}, {"@extra", "someone else's"}}.dump());

  auto [ec, reply] = send_and_wait(tdjson, client, echo("still works"));
  CHECK_FALSE(ec);
  CHECK(reply["value"] == "still works");
  const auto stats = tdjson.stats();
  CHECK(stats.malformed == 6);
  CHECK(stats.unmatched == 2);
  floodgate::set_log_sink(old_sink);
  std::lock_guard lock(warnings_mutex);
  CHECK(warnings.size() >= 6);
}

TEST_CASE("tdjson client: a closed client ends its pending requests and refuses new ones", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();
  fake.script({{"client_id", client}, {"responses", {{"getChats", {"silent"}}}}});

  auto waiting = tdjson.async_send(client, {{"@type", "getChats"}}, asio::use_future);
  CHECK(io.wait_until([&] { return !fake.requests_of("getChats").empty(); }));
  auto [closed, ok] = send_and_wait(tdjson, client, {{"@type", "close"}});
  CHECK_FALSE(closed);
  CHECK(tdjson.wait_closed(client, std::chrono::seconds(5)));
  auto [aborted, error] = waiting.get();  // TDLib answers it 500 "Request aborted"
  CHECK_FALSE(aborted);
  CHECK(error["code"] == 500);
  CHECK(std::get<0>(send_and_wait(tdjson, client, echo("after close"))) == errc::shut_down);
}

TEST_CASE("tdjson client: one reader per loaded library", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  auto first = std::make_unique<TdjsonClient>(io.executor(), open_fake(FAKE_TDJSON_PATH));
  // Opening the file again gives the same library, and the same single queue.
  CHECK_THROWS_AS(TdjsonClient(io.executor(), open_fake(FAKE_TDJSON_PATH)), floodgate::Error);
  first.reset();
  TdjsonClient second(io.executor(), open_fake(FAKE_TDJSON_PATH));
  CHECK_FALSE(std::get<0>(send_and_wait(second, second.create_client(), echo("x"))));
}

TEST_CASE("tdjson client: bad requests and unknown clients are refused at once", "[telegram][tdjson]") {
  FakeTdjson fake(FAKE_TDJSON_PATH);
  IoRunner io;
  TdjsonClient tdjson(io.executor(), open_fake(FAKE_TDJSON_PATH));
  const auto client = tdjson.create_client();
  CHECK(std::get<0>(send_and_wait(tdjson, client, json::array())) == std::errc::invalid_argument);
  CHECK(std::get<0>(send_and_wait(tdjson, client + 1000, echo("x"))) == std::errc::invalid_argument);
  CHECK(std::get<0>(send_and_wait(tdjson, client, echo("\xff not utf-8"))) == std::errc::invalid_argument);
  CHECK(tdjson.execute({{"@type", "setLogVerbosityLevel"}, {"new_verbosity_level", 0}})["@type"] == "ok");
}
