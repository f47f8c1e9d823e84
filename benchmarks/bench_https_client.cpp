// HttpsClient round trips against the Bot API simulator on loopback over TLS:
// the raw cost of one Bot API call, with and without connection reuse, and
// with several calls in flight. The baseline a BotPool benchmark compares with.
#include <benchmark/benchmark.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "floodgate/net/http_client.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/bot_api_server.hpp"

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
    request = net::HttpRequest::post_json(server.endpoint(), net::RequestTarget("/bot").append(kToken).append("/sendMessage"),
                                          {{"chat_id", 1}, {"text", "benchmark"}});
  }
  ~Setup() {
    client.reset();
    work.reset();
    thread.join();
  }

  sim::BotApiServer server;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  std::optional<net::HttpsClient> client;
  net::HttpRequest request;
};

Setup& setup() {
  static Setup instance;
  return instance;
}

void BM_HttpsKeepAlive(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) {
    auto [ec, response] = s.client->async_request(s.request, asio::use_future).get();
    if (ec || response.status != 200) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpsKeepAlive)->UseRealTime();

void BM_HttpsNewConnectionEachTime(benchmark::State& state) {
  auto& s = setup();
  for (auto _ : state) {
    s.client->close_idle_connections();
    auto [ec, response] = s.client->async_request(s.request, asio::use_future).get();
    if (ec || response.status != 200) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpsNewConnectionEachTime)->UseRealTime();

// `in_flight` requests at a time, each finished one replaced at once.
void BM_HttpsConcurrent(benchmark::State& state) {
  auto& s = setup();
  const auto in_flight = static_cast<int>(state.range(0));
  for (auto _ : state) {
    std::atomic<int> remaining{in_flight};
    std::atomic<bool> failed{false};
    std::promise<void> done;
    for (int i = 0; i < in_flight; ++i) {
      s.client->async_request(s.request, [&](std::error_code ec, net::HttpResponse response) {
        if (ec || response.status != 200) failed = true;
        if (--remaining == 0) done.set_value();
      });
    }
    done.get_future().wait();
    if (failed) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations() * in_flight);
}
BENCHMARK(BM_HttpsConcurrent)->Arg(4)->Arg(16)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
