// UpdatePoller and the offset file against sim::BotApiServer over real
// sockets (TLS with the simulator's run-time CA), plus the simulator's
// getUpdates as the real Bot API answers it. The restart test runs the bot
// in its own process (update_poller_child) and kills it with SIGKILL.
#include <catch2/catch.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../net/net_test_support.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/update_offsets.hpp"
#include "floodgate/telegram/update_poller.hpp"
#include "test_support.hpp"

using floodgate::Secret;
using floodgate::sim::BotApiLimits;
using floodgate::sim::BotApiServer;
using floodgate::sim::Fault;
using floodgate::telegram::BotPool;
using floodgate::telegram::BotPollStatus;
using floodgate::telegram::PollState;
using floodgate::telegram::Update;
using floodgate::telegram::UpdateOffsetFile;
using floodgate::telegram::UpdateOffsets;
using floodgate::telegram::UpdatePoller;
using floodgate::telegram::UpdatePollerOptions;
using namespace std::chrono_literals;
namespace asio = boost::asio;

extern char** environ;

namespace {

const std::vector<std::string> kTokens = {"200001:AAHpoller-token-zero", "200002:AAHpoller-token-one",
                                          "200003:AAHpoller-token-two"};
const std::vector<std::string> kIds = {"token-0", "token-1", "token-2"};

BotApiLimits unlimited() { return {.overall = std::nullopt, .per_chat = std::nullopt, .per_group = std::nullopt}; }

std::vector<floodgate::Credential<floodgate::BotToken>> credentials(std::size_t count = 3) {
  std::vector<floodgate::Credential<floodgate::BotToken>> all;
  for (std::size_t i = 0; i < count; ++i) all.push_back({kIds[i], {Secret(kTokens[i])}});
  return all;
}

/// A simulator with three bots, an io thread and a client trusting it.
struct Sim {
  Sim() : server({.tokens = {Secret(kTokens[0]), Secret(kTokens[1]), Secret(kTokens[2])}, .limits = unlimited()}) {
    server.start();
    http.emplace(io.executor(), floodgate::test::client_options_for(server));
  }
  ~Sim() { server.stop(); }  // ends long polls still in flight at once, so the io thread can finish
  floodgate::telegram::BotPoolOptions pool_options(floodgate::RetryPolicy retry = {.backoff_base = 10ms,
                                                                                     .backoff_cap = 50ms}) {
    return {.endpoint = server.endpoint(), .retry = retry};
  }
  floodgate::test::ApiReply call(std::size_t bot, std::string_view method,
                                 const nlohmann::json& params = nlohmann::json::object()) {
    return floodgate::test::call_api(*http, server, Secret(kTokens[bot]), method, params);
  }

  BotApiServer server;
  floodgate::test::IoThread io;
  std::optional<floodgate::net::HttpsClient> http;
};

/// Updates a callback-style poller handed over, and every state it reported.
struct Recorder {
  std::vector<Update> updates() const {
    std::lock_guard lock(mutex);
    return handled;
  }
  std::vector<BotPollStatus> states() const {
    std::lock_guard lock(mutex);
    return reported;
  }
  bool saw(PollState state) const {
    std::lock_guard lock(mutex);
    return std::any_of(reported.begin(), reported.end(), [&](const auto& s) { return s.state == state; });
  }
  void wire(UpdatePollerOptions& options) {
    options.on_update = [this](const Update& update) {
      std::lock_guard lock(mutex);
      handled.push_back(update);
    };
    options.on_state = [this](const BotPollStatus& status) {
      std::lock_guard lock(mutex);
      reported.push_back(status);
    };
  }

  mutable std::mutex mutex;
  std::vector<Update> handled;
  std::vector<BotPollStatus> reported;
};

/// Polls `done` until it holds; false after `limit`.
template <class Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// The channel's next update (or its error).
std::pair<std::error_code, Update> receive(UpdatePoller& poller) {
  std::promise<std::pair<std::error_code, Update>> received;
  auto next = received.get_future();
  poller.channel().async_receive(
      [&received](std::error_code ec, Update update) { received.set_value({ec, std::move(update)}); });
  return next.get();
}

void close(UpdatePoller& poller) { poller.async_close(asio::use_future).get(); }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// ---- the simulator's getUpdates --------------------------------------------

TEST_CASE("Bot API simulator: getUpdates clamps limit, honours a negative offset and keeps updates 24 h") {
  floodgate::ManualClock clock;
  BotApiServer server({.tokens = {Secret(kTokens[0])}, .limits = unlimited()}, clock);
  server.start();
  floodgate::test::IoThread io;
  floodgate::net::HttpsClient http(io.executor(), floodgate::test::client_options_for(server));
  auto call = [&](const nlohmann::json& params) {
    return floodgate::test::call_api(http, server, Secret(kTokens[0]), "getUpdates", params);
  };
  for (int i = 0; i < 150; ++i) server.push_message(Secret(kTokens[0]), 42, fmt::format("m{}", i));
  CHECK(call({{"limit", 0}}).body["result"].size() == 1);    // at least 1
  CHECK(call({{"limit", 500}}).body["result"].size() == 100);  // at most 100
  // offset -2: only the last two are kept; the rest are forgotten for good.
  const auto last_two = call({{"offset", -2}}).body["result"];
  REQUIRE(last_two.size() == 2);
  CHECK(last_two[0]["update_id"] == 149);
  CHECK(call({{"offset", 0}}).body["result"].size() == 2);
  call({{"offset", 151}});  // confirms them
  CHECK(call(nlohmann::json::object()).body["result"].empty());
  // An update not fetched within 24 hours is gone.
  server.push_message(Secret(kTokens[0]), 42, "old");
  clock.advance(23h);
  CHECK(call(nlohmann::json::object()).body["result"].size() == 1);
  clock.advance(1h);
  CHECK(call(nlohmann::json::object()).body["result"].empty());
}

TEST_CASE("Bot API simulator: allowed_updates filters updates created after it, [] restores the default") {
  Sim sim;
  const Secret bot(kTokens[0]);
  CHECK(sim.server.push_update(bot, {{"chat_member", nlohmann::json::object()}}) == 0);  // not in the default set
  CHECK(sim.call(0, "getUpdates", {{"allowed_updates", {"callback_query"}}}).status == 200);
  CHECK(sim.server.push_message(bot, 42, "hi") == 0);
  CHECK(sim.server.push_callback_query(bot, 42, "button") > 0);
  CHECK(sim.call(0, "getUpdates", {{"allowed_updates", nlohmann::json::array()}}).body["result"].size() == 1);
  CHECK(sim.server.push_message(bot, 42, "hi") > 0);
  CHECK(sim.server.push_update(bot, {{"message_reaction", nlohmann::json::object()}}) == 0);
  CHECK(sim.call(0, "getUpdates", {{"allowed_updates", {"message_reaction"}}}).status == 200);
  CHECK(sim.server.push_update(bot, {{"message_reaction", nlohmann::json::object()}}) > 0);
}

TEST_CASE("Bot API simulator: a second getUpdates ends the waiting one with 409, and so does setWebhook") {
  Sim sim;
  const auto requests = [&] { return sim.server.stats(Secret(kTokens[0])).requests; };
  auto waiting = std::async(std::launch::async, [&] { return sim.call(0, "getUpdates", {{"timeout", 20}}); });
  REQUIRE(wait_until([&] { return requests() == 1; }, 10s));
  auto newer = std::async(std::launch::async, [&] { return sim.call(0, "getUpdates", {{"timeout", 20}}); });
  const auto ended = waiting.get();
  CHECK(ended.status == 409);
  CHECK(ended.body["description"] ==
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
  CHECK(sim.call(0, "setWebhook", {{"url", "https://example.invalid/hook"}}).status == 200);
  const auto by_webhook = newer.get();
  CHECK(by_webhook.status == 409);
  CHECK(by_webhook.body["description"] == "Conflict: terminated by setWebhook request");
  CHECK(sim.call(0, "getUpdates").body["description"] ==
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
}

// ---- the offset file -------------------------------------------------------

TEST_CASE("UpdateOffsetFile: saved atomically in a 0600 file in a 0700 folder, read back, corrupt files refused") {
  floodgate::test::TempRoot root;
  const auto path = root.path / "state" / "offsets.json";
  {
    UpdateOffsetFile offsets(path);
    CHECK_FALSE(offsets.find("token-1"));
    REQUIRE(offsets.save("token-1", {.next_offset = 812, .delivered_through = 815}));
    REQUIRE(offsets.save("token-2", {.next_offset = 5, .delivered_through = 4}));
  }
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  REQUIRE(::stat(path.parent_path().c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);
  CHECK(read_file(path).find("200001") == std::string::npos);  // ids only
  UpdateOffsetFile again(path);
  CHECK(again.find("token-1") == UpdateOffsets{812, 815});
  CHECK(again.find("token-2") == UpdateOffsets{5, 4});
  // No temporary is left beside it.
  CHECK(std::distance(std::filesystem::directory_iterator(path.parent_path()), {}) == 1);

  std::ofstream(path) << R"({"format": "floodgate-update-offsets", "version": 1, "bots": {"token-1": {"next_offset": "x"}}})";
  CHECK_THROWS_WITH(UpdateOffsetFile(path), Catch::Contains("is corrupt") && Catch::Contains("next_offset"));
  std::ofstream(path) << "{not json";
  CHECK_THROWS_AS(UpdateOffsetFile(path), floodgate::Error);
  std::ofstream(path) << R"({"format": "floodgate-update-offsets", "version": 2, "bots": {}})";
  CHECK_THROWS_WITH(UpdateOffsetFile(path), Catch::Contains("newer floodgate"));
}

// ---- UpdatePoller ----------------------------------------------------------

TEST_CASE("UpdatePoller: three bots in one channel, tagged, acknowledged, replied to by the receiving bot") {
  floodgate::test::TempRoot root;
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(), sim.pool_options());
  std::map<std::string, std::vector<std::int64_t>> pushed;
  for (int round = 0; round < 4; ++round) {
    for (std::size_t bot = 0; bot < 3; ++bot) {
      pushed[kIds[bot]].push_back(sim.server.push_message(Secret(kTokens[bot]), 100 + static_cast<int>(bot),
                                                          fmt::format("hello {}", round)));
    }
  }
  const auto offsets_path = root.path / "offsets.json";
  {
    UpdateOffsetFile offsets(offsets_path);
    UpdatePoller poller(bots, {.timeout = 1s, .offsets = &offsets});
    poller.start();
    std::map<std::string, std::vector<std::int64_t>> received;
    for (int i = 0; i < 12; ++i) {
      auto [ec, update] = receive(poller);
      REQUIRE_FALSE(ec);
      CHECK_FALSE(update.redelivered);
      received[update.token_id].push_back(update.update_id);
      REQUIRE(update.chat_id());
      // The reply goes through the bot that received the message.
      auto [reply_ec, reply] = bots.async_call_as(update.token_id, "sendMessage",
                                                  {{"chat_id", *update.chat_id()}, {"text", "ack"}},
                                                  asio::use_future)
                                   .get();
      CHECK_FALSE(reply_ec);
      CHECK(reply.token_id == update.token_id);
      poller.acknowledge(update);
    }
    CHECK(received == pushed);  // every update, per bot in order, tagged with its bot
    REQUIRE(wait_until([&] {
      const auto all = poller.status();
      return std::all_of(all.begin(), all.end(), [](const auto& s) { return s.next_offset == 5; });
    }, 10s));
    close(poller);
  }
  for (std::size_t bot = 0; bot < 3; ++bot) {
    const auto chat = 100 + static_cast<int>(bot);
    const auto seen = sim.server.messages(Secret(kTokens[bot]), chat);
    CHECK(std::count_if(seen.begin(), seen.end(), [](const auto& m) { return m.from_bot && m.text == "ack"; }) == 4);
  }
  // A new poller on the same file starts after what was handled: nothing again.
  sim.server.push_message(Secret(kTokens[1]), 101, "later");
  UpdateOffsetFile offsets(offsets_path);
  CHECK(offsets.find("token-1") == UpdateOffsets{5, 4});
  Recorder recorder;
  UpdatePollerOptions options{.timeout = 1s, .offsets = &offsets};
  recorder.wire(options);
  UpdatePoller poller(bots, std::move(options));
  poller.start();
  REQUIRE(wait_until([&] { return !recorder.updates().empty(); }, 10s));
  close(poller);
  const auto later = recorder.updates();
  REQUIRE(later.size() == 1);
  CHECK(later[0].token_id == "token-1");
  CHECK(later[0].update_id == 5);
  CHECK(later[0].json["message"]["text"] == "later");
}

TEST_CASE("UpdatePoller: updates delivered and not acknowledged come again after a restart, flagged") {
  floodgate::test::TempRoot root;
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  for (int i = 0; i < 3; ++i) sim.server.push_message(Secret(kTokens[0]), 7, fmt::format("m{}", i));
  UpdateOffsetFile offsets(root.path / "offsets.json");
  {
    UpdatePoller poller(bots, {.timeout = 1s, .offsets = &offsets});
    poller.start();
    auto [ec, first] = receive(poller);
    REQUIRE_FALSE(ec);
    poller.acknowledge(first);  // 1 handled; 2 and 3 delivered, never acknowledged
    REQUIRE(wait_until([&] { return poller.status()[0].next_offset == 2; }, 10s));
    close(poller);
  }
  sim.server.push_message(Secret(kTokens[0]), 7, "m3");
  Recorder recorder;
  UpdatePollerOptions options{.timeout = 1s, .offsets = &offsets};
  recorder.wire(options);
  UpdatePoller poller(bots, std::move(options));
  poller.start();
  REQUIRE(wait_until([&] { return recorder.updates().size() == 3; }, 10s));
  close(poller);
  const auto again = recorder.updates();
  CHECK(again[0].update_id == 2);
  CHECK(again[0].redelivered);
  CHECK(again[1].update_id == 3);
  CHECK(again[1].redelivered);
  CHECK(again[2].update_id == 4);
  CHECK_FALSE(again[2].redelivered);  // never delivered before
}

TEST_CASE("UpdatePoller: 409 while a webhook is set is reported and backed off, and polling resumes after deleteWebhook") {
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  REQUIRE(sim.call(0, "setWebhook", {{"url", "https://example.invalid/hook"}}).status == 200);
  Recorder recorder;
  UpdatePollerOptions options{.timeout = 1s, .conflict_backoff = {.backoff_base = 200ms, .backoff_cap = 800ms}};
  recorder.wire(options);
  UpdatePoller poller(bots, std::move(options));
  poller.start();
  REQUIRE(wait_until([&] { return recorder.saw(PollState::conflict); }, 10s));
  std::this_thread::sleep_for(2s);  // the backoff under test runs in real time (the pool's clock)
  const auto status = poller.status()[0];
  CHECK(status.state == PollState::conflict);
  CHECK(status.description ==
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
  // Backed off: a tight loop would have sent hundreds in 2 s; pauses of up to 200..800 ms send about 6.
  const auto requests = static_cast<std::int64_t>(sim.server.stats(Secret(kTokens[0])).by_method["getupdates"]);
  CHECK(requests >= 3);
  CHECK(requests <= 20);
  CHECK(std::abs(static_cast<std::int64_t>(status.conflicts) - requests) <= 1);
  REQUIRE(sim.call(0, "deleteWebhook").status == 200);
  sim.server.push_message(Secret(kTokens[0]), 9, "after the webhook");
  REQUIRE(wait_until([&] { return recorder.updates().size() == 1; }, 10s));
  CHECK(poller.status()[0].state == PollState::polling);
  CHECK(poller.status()[0].description.empty());
  close(poller);
}

TEST_CASE("UpdatePoller: two pollers of one bot both report the 409 conflict and neither loops") {
  Sim sim;
  BotPool bots_a(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  BotPool bots_b(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  Recorder a, b;
  UpdatePollerOptions options_a{.timeout = 2s, .conflict_backoff = {.backoff_base = 200ms, .backoff_cap = 800ms}};
  UpdatePollerOptions options_b = options_a;
  a.wire(options_a);
  b.wire(options_b);
  UpdatePoller first(bots_a, std::move(options_a));
  UpdatePoller second(bots_b, std::move(options_b));
  first.start();
  second.start();
  REQUIRE(wait_until([&] { return a.saw(PollState::conflict) || b.saw(PollState::conflict); }, 10s));
  std::this_thread::sleep_for(2s);
  const auto requests = sim.server.stats(Secret(kTokens[0])).by_method["getupdates"];
  CHECK(requests <= 30);
  std::string description;
  for (const auto* recorder : {&a, &b}) {
    for (const auto& state : recorder->states()) {
      if (state.state == PollState::conflict) description = state.description;
    }
  }
  CHECK(description == "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running");
  close(first);
  close(second);
}

TEST_CASE("UpdatePoller: a 429 on getUpdates cools the token for retry_after and nothing is sent into it") {
  Sim sim;
  // max_wait 0: the pool does not wait itself; the poller waits until the pool's `earliest`.
  BotPool bots(sim.io.executor(), *sim.http, credentials(1),
               sim.pool_options({.max_wait = 0s, .backoff_base = 10ms, .backoff_cap = 50ms}));
  sim.server.inject(Secret(kTokens[0]), Fault::flood_wait(1).on("getUpdates"));
  sim.server.push_message(Secret(kTokens[0]), 9, "after the flood wait");
  Recorder recorder;
  UpdatePollerOptions options{.timeout = 1s};
  recorder.wire(options);
  const auto started = std::chrono::steady_clock::now();
  UpdatePoller poller(bots, std::move(options));
  poller.start();
  REQUIRE(wait_until([&] { return recorder.updates().size() == 1; }, 10s));
  CHECK(std::chrono::steady_clock::now() - started >= 1s);
  CHECK(recorder.saw(PollState::cooling));
  const auto stats = sim.server.stats(Secret(kTokens[0]));
  CHECK(stats.rate_limited == 1);
  CHECK(stats.sent_during_cooldown == 0);
  CHECK(bots.snapshot()[0].flood_waits == 1);  // the pool's own cooldown machinery saw it
  close(poller);
}

TEST_CASE("UpdatePoller: dropped connections and 5xx on getUpdates are asked again without losing an update") {
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(1),
               sim.pool_options({.max_attempts = 2, .backoff_base = 10ms, .backoff_cap = 50ms}));
  sim.server.push_message(Secret(kTokens[0]), 9, "one");
  // Four failures in a row: a fifth would rest the token (the pool's outlier ejection).
  sim.server.inject(Secret(kTokens[0]), Fault::server_error(502).on("getUpdates"), 2);
  sim.server.inject(Secret(kTokens[0]), Fault::drop_connection().on("getUpdates"), 2);
  Recorder recorder;
  UpdatePollerOptions options{.timeout = 1s, .backoff = {.backoff_base = 20ms, .backoff_cap = 100ms}};
  recorder.wire(options);
  UpdatePoller poller(bots, std::move(options));
  poller.start();
  REQUIRE(wait_until([&] { return recorder.updates().size() == 1; }, 10s));
  CHECK(recorder.saw(PollState::retrying));  // the pool's 2 attempts ran out at least once
  CHECK(sim.server.stats(Secret(kTokens[0])).faults == 4);
  sim.server.push_message(Secret(kTokens[0]), 9, "two");
  REQUIRE(wait_until([&] { return recorder.updates().size() == 2; }, 10s));
  CHECK(recorder.updates()[1].json["message"]["text"] == "two");
  close(poller);
}

TEST_CASE("UpdatePoller: close during a long poll completes at once and no callback runs after it") {
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(), sim.pool_options());
  std::atomic<int> callbacks_after_close{0};
  std::atomic<bool> closed{false};
  UpdatePollerOptions options{.timeout = 3s};
  options.on_update = [&](const Update&) {
    if (closed) ++callbacks_after_close;
  };
  options.on_state = [&](const BotPollStatus&) {
    if (closed) ++callbacks_after_close;
  };
  auto poller = std::make_unique<UpdatePoller>(bots, std::move(options));
  poller->start();
  REQUIRE(wait_until([&] { return sim.server.stats(Secret(kTokens[2])).requests >= 1; }, 10s));
  const auto started = std::chrono::steady_clock::now();
  close(*poller);
  closed = true;
  CHECK(std::chrono::steady_clock::now() - started < 1s);  // not the 3 s of the poll in flight
  for (std::size_t bot = 0; bot < 3; ++bot) sim.server.push_message(Secret(kTokens[bot]), 5, "too late");
  auto [ec, update] = receive(*poller);
  CHECK(ec == floodgate::errc::shut_down);  // the channel is closed
  poller.reset();
  std::this_thread::sleep_for(200ms);  // the abandoned polls answer now (updates arrived): dropped unseen
  CHECK(callbacks_after_close == 0);
}

namespace {

/// Offsets in memory, counting saves in a counter that outlives it.
class CountingOffsets final : public floodgate::telegram::UpdateOffsetSink {
 public:
  explicit CountingOffsets(std::atomic<int>& saves) : saves_(saves) {}
  std::optional<UpdateOffsets> find(std::string_view) const override { return std::nullopt; }
  bool save(std::string_view, const UpdateOffsets&) override {
    ++saves_;
    return true;
  }

 private:
  std::atomic<int>& saves_;
};

}  // namespace

TEST_CASE("UpdatePoller: destroyed without async_close while an acknowledge is queued and then the BotPool and the sink: neither is touched") {
  const bool with_sink = GENERATE(false, true);  // without a sink the next getUpdates touches the BotPool; with one the save comes first
  INFO("with a sink: " << with_sink);
  Sim sim;
  auto bots = std::make_unique<BotPool>(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  std::atomic<int> saves{0};
  auto offsets = std::make_unique<CountingOffsets>(saves);
  sim.server.push_message(Secret(kTokens[0]), 7, "m0");
  auto poller = std::make_unique<UpdatePoller>(
      *bots, UpdatePollerOptions{.timeout = 1s, .offsets = with_sink ? offsets.get() : nullptr});
  poller->start();
  auto [ec, update] = receive(*poller);
  REQUIRE_FALSE(ec);
  // Nothing is in flight now (the bot waits for the acknowledge). Hold the io
  // thread, so the acknowledge is still queued on the strand, ahead of the
  // destructor's close, when the BotPool and the sink go.
  std::promise<void> entered;
  std::promise<void> release;
  auto released = release.get_future().share();
  asio::post(sim.io.executor(), [&entered, released] {
    entered.set_value();
    released.wait();
  });
  entered.get_future().wait();
  poller->acknowledge(update);
  poller.reset();  // no async_close: the natural order of destruction
  bots.reset();
  const int saves_before = saves.load();
  offsets.reset();
  sim.http.reset();
  const auto requests_before = sim.server.stats(Secret(kTokens[0])).requests;
  release.set_value();
  // The io thread runs the acknowledge and the close now; give it time to do harm.
  std::this_thread::sleep_for(300ms);
  std::promise<void> drained;
  asio::post(sim.io.executor(), [&drained] { drained.set_value(); });
  CHECK(drained.get_future().wait_for(5s) == std::future_status::ready);
  CHECK(saves == saves_before);  // the destroyed sink saw nothing
  CHECK(sim.server.stats(Secret(kTokens[0])).requests == requests_before);  // nothing sent
}

TEST_CASE("UpdatePoller: the channel speaks std::error_code: a cancelled receive, then shut_down once closed") {
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  UpdatePoller poller(bots, {.timeout = 1s});
  poller.start();
  asio::cancellation_signal cancel;
  std::promise<std::error_code> cancelled;
  poller.channel().async_receive(asio::bind_cancellation_slot(
      cancel.slot(), [&cancelled](std::error_code ec, const Update&) { cancelled.set_value(ec); }));
  asio::post(sim.io.executor(), [&cancel] { cancel.emit(asio::cancellation_type::terminal); });
  CHECK(cancelled.get_future().get() == floodgate::errc::cancelled);
  close(poller);
  auto [ec, update] = receive(poller);
  CHECK(ec == floodgate::errc::shut_down);
  CHECK(update.update_id == 0);
}

TEST_CASE("UpdatePoller: bad options are refused") {
  Sim sim;
  BotPool bots(sim.io.executor(), *sim.http, credentials(1), sim.pool_options());
  CHECK_THROWS_WITH(UpdatePoller(bots, {.limit = 0}), Catch::Contains("limit 0"));
  CHECK_THROWS_WITH(UpdatePoller(bots, {.timeout = 51s}), Catch::Contains("timeout 51s"));
  CHECK_THROWS_WITH(UpdatePoller(bots, {.token_ids = {"token-9"}}), Catch::Contains("no token token-9"));
}

// ---- kill and restart ------------------------------------------------------

namespace {

/// update_poller_child in its own process, with the three tokens in its environment.
class ChildBot {
 public:
  ChildBot(const std::vector<std::string>& args) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string_view entry(*e);
      if (!entry.starts_with("TELEGRAM_BOT_TOKEN=") && !entry.starts_with("MULTITOKEN")) env.emplace_back(entry);
    }
    env.push_back("TELEGRAM_BOT_TOKEN=" + kTokens[0]);
    env.push_back("MULTITOKEN1=" + kTokens[1]);
    env.push_back("MULTITOKEN2=" + kTokens[2]);
    std::vector<char*> argv, envp;
    std::vector<std::string> all_args = {UPDATE_POLLER_CHILD_PATH};
    all_args.insert(all_args.end(), args.begin(), args.end());
    for (auto& a : all_args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), envp.data()) == 0);
  }
  ChildBot(const ChildBot&) = delete;
  ChildBot& operator=(const ChildBot&) = delete;
  ~ChildBot() {
    if (pid_ > 0) stop(SIGKILL);
  }
  /// Sends `signal` and returns the exit status (waitpid's).
  int stop(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("UpdatePoller: 3 bots, the process killed with SIGKILL and restarted mid-stream: no update lost or repeated") {
  floodgate::test::TempRoot root;
  std::filesystem::create_directories(root.base);
  Sim sim;
  const auto ca = root.base / "ca.pem";
  std::ofstream(ca) << sim.server.ca_pem();
  const auto handled = root.base / "handled.txt";
  const std::vector<std::string> args = {sim.server.url(), ca.string(), (root.path / "offsets.json").string(),
                                         handled.string()};
  constexpr int kPerBot = 100;
  const std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 random(seed);

  std::map<std::string, std::vector<std::int64_t>> pushed;
  std::mutex pushed_mutex;
  std::atomic<bool> pushing_done{false};
  std::thread pusher([&] {
    for (int i = 0; i < kPerBot; ++i) {
      for (std::size_t bot = 0; bot < 3; ++bot) {
        const auto id = sim.server.push_message(Secret(kTokens[bot]), 300 + static_cast<int>(bot), fmt::format("m{}", i));
        std::lock_guard lock(pushed_mutex);
        pushed[kIds[bot]].push_back(id);
      }
      std::this_thread::sleep_for(6ms);
    }
    pushing_done = true;
  });
  int kills = 0;
  auto child = std::make_unique<ChildBot>(args);
  while (!pushing_done || kills < 6) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(40, 250)(random)));
    const auto status = child->stop(SIGKILL);
    CHECK(WIFSIGNALED(status));
    ++kills;
    child = std::make_unique<ChildBot>(args);
  }
  pusher.join();
  const auto count_lines = [&] {
    const auto text = read_file(handled);
    return std::count(text.begin(), text.end(), '\n');
  };
  const bool all_handled = wait_until([&] { return count_lines() >= 3 * kPerBot; }, 60s);
  std::this_thread::sleep_for(300ms);  // a repeat would show up here
  const auto status = child->stop(SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // closed cleanly
  REQUIRE(all_handled);

  std::map<std::string, std::vector<std::int64_t>> seen;
  std::map<std::string, int> times;
  int flagged = 0;
  std::istringstream lines(read_file(handled));
  std::string token_id;
  std::int64_t update_id = 0;
  int redelivered = 0;
  while (lines >> token_id >> update_id >> redelivered) {
    seen[token_id].push_back(update_id);
    ++times[fmt::format("{} {}", token_id, update_id)];
    flagged += redelivered;
  }
  CHECK(seen == pushed);  // each bot's updates, all of them, once each, in order
  for (const auto& [key, n] : times) {
    INFO(key);
    CHECK(n == 1);
  }
  // Flagged: delivered in a batch (limit 7) whose end the process did not see, per bot and kill.
  CHECK(flagged <= 7 * 3 * kills);
  WARN(fmt::format("{} kills, {} updates handled, {} written while flagged redelivered (seed {})", kills,
                   3 * kPerBot, flagged, seed));
}
