// Acceptance: several BotPools, each with its own HTTP client, Redis
// connections and io thread (what separate processes would have), share
// three tokens against the Bot API simulator. A flood wait one of them is
// told is never run into by the others, nor by one that starts later: the
// simulator counts every request per token.
#include <catch2/catch.hpp>

#include <boost/asio/use_future.hpp>

#include <memory>
#include <string>

#include "../telegram/io_runner.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/reserving_gate.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "redis_server.hpp"

using floodgate::redis::parse_redis_url;
using floodgate::redis::RedisCooldownOptions;
using floodgate::redis::RedisCooldownStore;
using floodgate::telegram::BotPool;
using floodgate::telegram::BotPoolResult;
using floodgate::test::IoRunner;
using floodgate::test::RedisServer;
using namespace std::chrono_literals;

namespace {

floodgate::Secret secret(int i) { return floodgate::Secret(fmt::format("10000{}:SIMULATED-shared-token-{}", i, i)); }

// The limits every process applies to each token, shared through Redis: 10 %
// under the simulator's, as the rotation demo paces, because a message granted
// at Redis reaches the simulator a reservation, a gate poll and an HTTP
// request later, and network jitter can bunch two of them.
void token_limits(floodgate::redis::RedisLimitSet<std::int64_t>& limits) {
  limits.add("bot", floodgate::Rate::per_second(9), 1)
      .add_per_key("private_chat", floodgate::Rate::per_second(0.9), 3, [](std::int64_t chat) { return chat > 0; });
}

// One "process": its own io thread, HTTPS client, BotPool, Redis store and,
// with `share_limits`, its own Redis connection for the limits.
struct Process {
  Process(floodgate::sim::BotApiServer& sim, const std::string& redis_url, bool share_limits = false)
      : limits_client(io.executor(), parse_redis_url(redis_url)),
        gate(limits_client, {.pool_name = "shared-bots", .reservation_ttl = 100ms}, token_limits),
        http(io.executor(), floodgate::net::HttpClientOptions{
                                .tls = floodgate::net::make_client_tls_context({.ca_pem = sim.ca_pem()})}),
        bots(io.executor(), http,
             {{"token-1", {secret(1)}}, {"token-2", {secret(2)}}, {"token-3", {secret(3)}}},
             [&] {
               floodgate::telegram::BotPoolOptions o;
               o.endpoint = sim.endpoint();
               o.retry.max_wait = 30s;
               o.limits.bot = floodgate::Rate::per_second(9);
               if (share_limits) {
                 limits_client.start();
                 o.shared_limits = gate.as_function();
               }
               return o;
             }()),
        store(io.executor(), parse_redis_url(redis_url), [] {
          RedisCooldownOptions o;
          o.pool_name = "shared-bots";
          o.client.reconnect.floor = 20ms;
          o.client.reconnect.cap = 100ms;
          return o;
        }()) {
    opened = store.open();
    store.attach(bots.pool());
  }
  ~Process() { store.detach(bots.pool()); }

  std::pair<std::error_code, BotPoolResult> send(std::int64_t chat, const std::string& text) {
    std::promise<std::pair<std::error_code, BotPoolResult>> done;
    bots.async_send_message({.chat_id = chat, .text = text},
                            [&](std::error_code ec, BotPoolResult r) { done.set_value({ec, std::move(r)}); });
    return done.get_future().get();
  }
  std::pair<std::error_code, BotPoolResult> send_as(const std::string& token, std::int64_t chat) {
    std::promise<std::pair<std::error_code, BotPoolResult>> done;
    bots.async_call_as(token, "sendMessage", {{"chat_id", chat}, {"text", "owner-bound"}},
                       [&](std::error_code ec, BotPoolResult r) { done.set_value({ec, std::move(r)}); });
    return done.get_future().get();
  }
  bool cooling_for(const std::string& token, std::int64_t chat) {
    return !bots.pool().acquire_id(token, std::to_string(chat)) &&
           bots.pool().acquire_id(token, std::to_string(chat)).error() == floodgate::errc::all_credentials_cooling;
  }

  IoRunner io;
  floodgate::redis::RedisClient limits_client;
  floodgate::redis::ReservingGate gate;
  floodgate::net::HttpsClient http;
  BotPool bots;
  RedisCooldownStore store;
  bool opened = false;
};

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit = 3s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST_CASE("redis acceptance: three processes sharing three tokens never call a token another was flood-waited on") {
  RedisServer redis;
  floodgate::sim::BotApiServer sim({.tokens = {secret(1), secret(2), secret(3)}});
  // token-1 allows one message per minute in a chat: its second is a 60 s flood wait.
  floodgate::sim::BotApiLimits strict;
  strict.per_chat = floodgate::sim::Rate{1, 60s};
  strict.per_chat_burst = 1;
  sim.set_limits(secret(1), strict);
  sim.start();

  Process a(sim, redis.url());
  Process b(sim, redis.url());
  Process c(sim, redis.url());
  REQUIRE((a.opened && b.opened && c.opened));

  constexpr std::int64_t chat = 7;
  REQUIRE_FALSE(a.send_as("token-1", chat).first);
  auto [ec, flooded] = a.send_as("token-1", chat);  // 429, retry_after 60, for chat 7
  CHECK(ec == floodgate::errc::all_credentials_cooling);
  REQUIRE(sim.stats(secret(1)).rate_limited == 1);

  // Within a round trip the others know: token-1 cools for chat 7 in every pool.
  REQUIRE(wait_for([&] { return b.cooling_for("token-1", chat) && c.cooling_for("token-1", chat); }));
  CHECK_FALSE(b.cooling_for("token-1", chat + 1));  // other chats are still fine

  for (int i = 0; i < 3; ++i) {
    for (auto* p : {&b, &c}) {
      auto [sec, sent] = p->send(chat, fmt::format("message {}", i));
      CHECK_FALSE(sec);
      CHECK(sent.token_id != "token-1");
    }
  }
  // And a process that starts now loads it.
  Process late(sim, redis.url());
  CHECK(late.cooling_for("token-1", chat));
  auto [lec, late_sent] = late.send(chat, "late");
  CHECK_FALSE(lec);
  CHECK(late_sent.token_id != "token-1");

  CHECK(sim.stats(secret(1)).requests == 2);  // a's two: nobody else called token-1 for that chat
  for (int i = 1; i <= 3; ++i) CHECK(sim.stats(secret(i)).sent_during_cooldown == 0);
}

TEST_CASE("redis acceptance: two and three processes sharing three tokens stay within the simulator's limits") {
  const int processes = GENERATE(2, 3);
  INFO(processes << " processes");
  RedisServer redis;
  // The simulator's limits per token: 10/s overall, 1/s per chat with a burst of 3.
  floodgate::sim::BotApiLimits limits;
  limits.overall = floodgate::sim::Rate{10, 1s};
  floodgate::sim::BotApiServer sim({.tokens = {secret(1), secret(2), secret(3)}, .limits = limits});
  sim.start();

  std::vector<std::unique_ptr<Process>> fleet;
  for (int p = 0; p < processes; ++p) fleet.push_back(std::make_unique<Process>(sim, redis.url(), true));

  // Every process offers 4 messages to each of 10 chats at once.
  constexpr int kChats = 10;
  constexpr int kPerChat = 4;
  std::atomic<int> delivered{0};
  std::atomic<int> failed{0};
  std::atomic<int> pending{processes * kChats * kPerChat};
  std::promise<void> all_done;
  for (auto& process : fleet) {
    for (int round = 0; round < kPerChat; ++round) {
      for (int chat = 1; chat <= kChats; ++chat) {
        process->bots.async_send_message({.chat_id = chat, .text = fmt::format("m{}", round)},
                                         [&](std::error_code ec, BotPoolResult) {
                                           ++(ec ? failed : delivered);
                                           if (--pending == 0) all_done.set_value();
                                         });
      }
    }
  }
  REQUIRE(all_done.get_future().wait_for(120s) == std::future_status::ready);
  CHECK(failed.load() == 0);
  CHECK(delivered.load() == processes * kChats * kPerChat);
  std::uint64_t succeeded = 0;
  for (int i = 1; i <= 3; ++i) {
    const auto stats = sim.stats(secret(i));
    INFO("token-" << i);
    CHECK(stats.rate_limited == 0);  // the limits held in total, across the processes
    CHECK(stats.sent_during_cooldown == 0);
    succeeded += stats.succeeded;
  }
  CHECK(succeeded == static_cast<std::uint64_t>(processes * kChats * kPerChat));  // each message once
}
