// redis_bot_worker: one process of the multi-process acceptance tests
// (tests/redis/multi_process_test.cpp), which launch several of these against
// one Bot API simulator and one redis-server.
//
//   redis_bot_worker --redis URL --botapi URL --ca FILE --name p1 --chats 10 --per-chat 3 [--policy closed]
//
// A BotPool over the simulator's three tokens, with the cooldowns
// (RedisCooldownStore) and each token's limits (ReservingGate) shared through
// Redis as docs/redis.md shows. It prints "shared" (or "local": Redis was
// unreachable and the policy is fail_open) and "ready" once the store is open, then
// offers `per-chat` messages to each of chats 1..`chats` at once (texts
// "<name> c<chat> m<round>", so the test can count each exactly once), waits
// for every call to end and prints "delivered D failed F". Exit status 0 when
// nothing failed, 1 when something did, 2 on bad arguments or a hang, 3 when
// the policy is fail_closed and the store refused to open (it prints
// "refused: <the error>").
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "floodgate/net/tls.hpp"
#include "floodgate/redis/cooldown_store.hpp"
#include "floodgate/redis/reserving_gate.hpp"
#include "floodgate/telegram/bot_pool.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

struct Arguments {
  std::string redis;
  std::string botapi;
  std::string ca_file;
  std::string name = "worker";
  int chats = 10;
  int per_chat = 3;
  floodgate::redis::FailurePolicy policy = floodgate::redis::FailurePolicy::fail_open;
};

std::optional<Arguments> parse(int argc, char** argv) {
  Arguments a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--redis") a.redis = value;
    else if (flag == "--botapi") a.botapi = value;
    else if (flag == "--ca") a.ca_file = value;
    else if (flag == "--name") a.name = value;
    else if (flag == "--chats") a.chats = std::stoi(value);
    else if (flag == "--per-chat") a.per_chat = std::stoi(value);
    else if (flag == "--policy" && (value == "open" || value == "closed"))
      a.policy = value == "open" ? floodgate::redis::FailurePolicy::fail_open : floodgate::redis::FailurePolicy::fail_closed;
    else return std::nullopt;
  }
  if (argc % 2 != 1 || a.redis.empty() || a.botapi.empty() || a.ca_file.empty()) return std::nullopt;
  return a;
}

floodgate::Secret token(int i) { return floodgate::Secret(fmt::format("10000{}:SIMULATED-shared-token-{}", i, i)); }

// Everything the worker builds lives here and is destroyed here, while `io` still runs.
int run(const Arguments& args, asio::io_context& io) {
  const auto url = floodgate::redis::parse_redis_url(args.redis);

  // Reconnect fast: the restart test takes Redis away for a moment.
  floodgate::redis::RedisClientOptions client_options;
  client_options.reconnect.floor = 20ms;
  client_options.reconnect.cap = 100ms;

  floodgate::redis::RedisClient limits_client(io.get_executor(), url, client_options);
  limits_client.start();
  // 10 % under the simulator's 10/s and 1/s per chat (docs/redis.md, "In BotPool").
  floodgate::redis::ReservingGate gate(limits_client, {.pool_name = "acceptance", .on_unavailable = args.policy},
                                       [](floodgate::redis::RedisLimitSet<std::int64_t>& limits) {
                                         limits.add("bot", floodgate::Rate::per_second(9), 1)
                                             .add_per_key("private_chat", floodgate::Rate::per_second(0.9), 3,
                                                          [](std::int64_t chat) { return chat > 0; });
                                       });

  floodgate::net::HttpsClient http(io.get_executor(), floodgate::net::HttpClientOptions{
                                                          .tls = floodgate::net::make_client_tls_context({.ca_file = args.ca_file})});
  floodgate::telegram::BotPoolOptions options;
  options.endpoint = floodgate::net::Endpoint::parse(args.botapi);
  options.retry.max_wait = 30s;
  options.limits.bot = floodgate::Rate::per_second(9);
  options.shared_limits = gate.as_function();
  floodgate::telegram::BotPool bots(io.get_executor(), http,
                                    {{"token-1", {token(1)}}, {"token-2", {token(2)}}, {"token-3", {token(3)}}},
                                    options);

  floodgate::redis::RedisCooldownOptions store_options;
  store_options.pool_name = "acceptance";
  store_options.client = client_options;
  store_options.on_unavailable = args.policy;
  floodgate::redis::RedisCooldownStore store(io.get_executor(), url, store_options);
  try {
    fmt::print("{}\n", store.open() ? "shared" : "local");
  } catch (const floodgate::redis::RedisError& e) {
    fmt::print("refused: {}\n", e.what());
    std::fflush(stdout);
    return 3;
  }
  store.attach(bots.pool());
  fmt::print("ready\n");
  std::fflush(stdout);

  std::atomic<int> delivered{0};
  std::atomic<int> failed{0};
  std::atomic<int> pending{args.chats * args.per_chat};
  std::promise<void> all_done;
  for (int round = 0; round < args.per_chat; ++round) {
    for (int chat = 1; chat <= args.chats; ++chat) {
      bots.async_send_message({.chat_id = chat, .text = fmt::format("{} c{} m{}", args.name, chat, round)},
                              [&](std::error_code ec, floodgate::telegram::BotPoolResult result) {
                                if (ec) {
                                  ++failed;
                                  fmt::print(stderr, "{}: failed: {} {}\n", args.name, ec.message(), result.description);
                                } else {
                                  ++delivered;
                                }
                                if (--pending == 0) all_done.set_value();  // each call ends exactly once
                              });
    }
  }
  const bool ended = all_done.get_future().wait_for(90s) == std::future_status::ready;
  fmt::print("delivered {} failed {}\n", delivered.load(), failed.load());
  std::fflush(stdout);
  if (!ended) std::_Exit(2);  // a call that never ended: the pool cannot shut down cleanly either
  store.detach(bots.pool());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = parse(argc, argv);
  if (!args) {
    fmt::print(stderr, "usage: redis_bot_worker --redis URL --botapi URL --ca FILE [--name N] [--chats N] [--per-chat N] [--policy open|closed]\n");
    return 2;
  }
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  const int status = run(*args, io);
  work.reset();
  io_thread.join();
  return status;
}
