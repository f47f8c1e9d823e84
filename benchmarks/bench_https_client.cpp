// Bot API calls against the simulator on loopback over TLS: the raw
// HttpsClient (with and without connection reuse, and with several calls in
// flight), and the same sendMessage through BotPool (pool, retry executor and
// per-token limiter on top of the same client), in the same run, so the
// overhead of BotPool is the difference.
//
// The raw calls do the useful work any program must do per message, and no
// more: build the JSON request, send it, and decode the reply once (the
// request target with the token is built once). BotPool does the same work on
// top of its own, so the comparison measures BotPool's machinery only.
#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <future>
#include <thread>

#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/bot_api_server.hpp"
#include "floodgate/telegram/bot_pool.hpp"

namespace {

namespace asio = boost::asio;
namespace net = floodgate::net;
namespace sim = floodgate::sim;

const floodgate::Secret kToken{"123456:BENCHBENCHBENCHBENCHBENCHBENCH"};

// One simulator, one client, one io thread for the whole program.
struct Setup {
  Setup() : server(sim::BotApiServerOptions{.tokens = {kToken}, .limits = {std::nullopt, std::nullopt, std::nullopt}}) {
    server.start();
    client.emplace(io.get_executor(),
                   net::HttpClientOptions{.tls = net::make_client_tls_context({.ca_pem = server.ca_pem()}),
                                          .max_idle_per_endpoint = 16});  // keeps every concurrent connection
    // Local limits far above what loopback can do: this measures the machinery, not the pacing.
    floodgate::TelegramBotLimits unlimited{.bot = floodgate::Rate::per_second(1e9), .bot_burst = 1e6,
                                           .private_chat = floodgate::Rate::per_second(1e9), .private_chat_burst = 1e6,
                                           .group_chat = floodgate::Rate::per_second(1e9), .group_chat_burst = 1e6};
    bots.emplace(io.get_executor(), *client, std::vector<floodgate::Credential<floodgate::BotToken>>{{"token-1", {kToken}}},
                 floodgate::telegram::BotPoolOptions{.endpoint = server.endpoint(), .limits = unlimited});
  }
  ~Setup() {
    bots.reset();
    client.reset();
    work.reset();
    thread.join();
  }

  sim::BotApiServer server;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  std::optional<net::HttpsClient> client;
  std::optional<floodgate::telegram::BotPool> bots;
  const net::RequestTarget send_message_target = net::RequestTarget("/bot").append(kToken).append("/sendMessage");

  net::HttpRequest send_message_request() const {
    return net::HttpRequest::post_json(server.endpoint(), send_message_target, {{"chat_id", 1}, {"text", "benchmark"}});
  }
};

/// The reply decoded once, as any Bot API program does: was it `"ok": true`?
bool delivered(std::error_code ec, const net::HttpResponse& response) {
  if (ec || response.status != 200) return false;
  const auto reply = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  return reply.is_object() && reply.value("ok", false);
}

Setup& setup() {
  static Setup instance;
  return instance;
}

void BM_HttpsKeepAlive(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) {
    auto [ec, response] = s.client->async_request(s.send_message_request(), asio::use_future).get();
    if (!delivered(ec, response)) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpsKeepAlive)->UseRealTime();

void BM_HttpsNewConnectionEachTime(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) {
    s.client->close_idle_connections();
    auto [ec, response] = s.client->async_request(s.send_message_request(), asio::use_future).get();
    if (!delivered(ec, response)) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpsNewConnectionEachTime)->UseRealTime();

// Batches of `state.range(0)` calls in flight at once; `start(done)` starts
// one call, which reports `done(ok)` from the io thread.
template <class Start>
void run_batches(benchmark::State& state, Start start) {
  const auto in_flight = static_cast<int>(state.range(0));
  for (auto _ : state) {
    std::atomic<int> remaining{in_flight};
    std::atomic<bool> failed{false};
    std::promise<void> done;
    for (int i = 0; i < in_flight; ++i) {
      start([&](bool ok) {
        if (!ok) failed = true;
        if (--remaining == 0) done.set_value();
      });
    }
    done.get_future().wait();
    if (failed) state.SkipWithError("call failed");
  }
  state.SetItemsProcessed(state.iterations() * in_flight);
}

void BM_HttpsConcurrent(benchmark::State& state) {
  auto& s = setup();
  run_batches(state, [&](auto done) {
    s.client->async_request(s.send_message_request(), [done](std::error_code ec, net::HttpResponse response) {
      done(delivered(ec, response));
    });
  });
}
BENCHMARK(BM_HttpsConcurrent)->Arg(4)->Arg(16)->UseRealTime();

void BM_BotPoolSendMessage(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) {
    auto [ec, result] = s.bots->async_send_message({.chat_id = 1, .text = "benchmark"}, asio::use_future).get();
    if (ec) state.SkipWithError("send failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BotPoolSendMessage)->UseRealTime();

void BM_BotPoolConcurrent(benchmark::State& state) {
  auto& s = setup();
  run_batches(state, [&](auto done) {
    s.bots->async_send_message({.chat_id = 1, .text = "benchmark"},
                               [done](std::error_code ec, floodgate::telegram::BotPoolResult) { done(!ec); });
  });
}
BENCHMARK(BM_BotPoolConcurrent)->Arg(4)->Arg(16)->UseRealTime();

// For instruction counts (scripts/bench runs this under callgrind): with
// FLOODGATE_BENCH_CALLS=N in the environment, `fixed_calls/...` make exactly N
// one-in-flight calls, with no calibration runs, so that the instructions of
// two runs with different N, subtracted, are N2 - N1 calls and nothing else.
const int kRegisterFixedCalls = [] {
  const char* calls = std::getenv("FLOODGATE_BENCH_CALLS");
  if (calls == nullptr || std::atoi(calls) <= 0) return 0;
  benchmark::RegisterBenchmark("fixed_calls/HttpsKeepAlive", BM_HttpsKeepAlive)->Iterations(std::atoi(calls));
  benchmark::RegisterBenchmark("fixed_calls/BotPoolSendMessage", BM_BotPoolSendMessage)->Iterations(std::atoi(calls));
  return 1;
}();

}  // namespace

BENCHMARK_MAIN();
