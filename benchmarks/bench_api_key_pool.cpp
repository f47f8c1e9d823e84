// ApiKeyPool versus the raw HTTPS client, against the HTTP API simulator on
// loopback over TLS, in the same run: a bench binary that prints figures.
//
//   bench_api_key_pool [calls per round = 2000] [rounds = 5] [raw|pool|both = both]
//
// Both sides do the work any program must do per call: build the JSON request
// with the key's Authorization header, send it, and decode the JSON reply.
// ApiKeyPool adds its machinery on top (pool, Tiered strategy, budget gate,
// retry executor, classification, rate-limit headers): the difference is its
// overhead. Calls are sequential (one in flight), which is where overhead shows.
//
// Real time on a shared machine is noisy; instruction counts are not.
// benchmarks/http_overhead_callgrind.sh runs one side at a time under callgrind
// with two call counts and divides the difference in instructions by the
// difference in calls, so setup and teardown cancel out.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <vector>

#include "floodgate/http/api_key_pool.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/sim/http_api_server.hpp"

namespace {

namespace asio = boost::asio;
namespace net = floodgate::net;
namespace http = floodgate::http;
using Clock = std::chrono::steady_clock;

const floodgate::Secret kKey1{"sk-bench-1-0123456789abcdef"};
const floodgate::Secret kKey2{"sk-bench-2-0123456789abcdef"};

[[noreturn]] void fail(const char* what, std::error_code ec, int status) {
  fmt::print(stderr, "{} call failed: {} (HTTP {})\n", what, ec.message(), status);
  std::exit(1);
}

nlohmann::json payload(int i) { return {{"audio", "UklGRiQAAABXQVZFZm10IBAAAAABAAEA"}, {"seconds", 3}, {"id", std::to_string(i)}}; }

struct Setup {
  Setup() : server({.keys = {kKey1, kKey2}, .limit = std::nullopt}) {
    server.start();
    net::HttpClientOptions options;
    options.tls = net::make_client_tls_context({.ca_pem = server.ca_pem()});
    options.connect_timeout = std::chrono::minutes(2);  // generous: callgrind runs 50 times slower
    options.read_timeout = std::chrono::minutes(2);
    options.total_timeout = std::chrono::minutes(5);
    client.emplace(io.get_executor(), options);
    http::ProviderSpec provider{.name = "sim", .base_url = server.url() + "/v1", .keys = {{"k-1", kKey1}, {"k-2", kKey2}}};
    pool.emplace(io.get_executor(), *client, std::vector<http::ProviderSpec>{provider});
    endpoint = server.endpoint();
  }
  ~Setup() {
    pool.reset();
    client.reset();
    work.reset();
    io.stop();
    thread.join();
  }

  /// What a hand-written caller does: request with the key, send, parse.
  void raw_call(int i) {
    auto request = net::HttpRequest::post_json(endpoint, net::RequestTarget("/v1/transcribe"), payload(i));
    request.headers.emplace_back("Authorization", "Bearer " + kKey1.reveal());
    auto [ec, response] = client->async_request(std::move(request), asio::use_future).get();
    const auto json = nlohmann::json::parse(response.body, nullptr, false);
    if (ec || response.status != 200 || json.is_discarded()) fail("raw", ec, response.status);
  }

  void pool_call(int i) {
    auto [ec, result] = pool->async_call(http::ApiCall::post_json("/transcribe", payload(i)), asio::use_future).get();
    if (ec || result.status != 200) fail("pool", ec, result.status);
  }

  floodgate::sim::HttpApiServer server;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  std::optional<net::HttpsClient> client;
  std::optional<http::ApiKeyPool> pool;
  net::Endpoint endpoint;
};

template <class Fn>
double microseconds_per_call(int calls, Fn&& fn) {
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) fn(i);
  const auto elapsed = Clock::now() - start;
  return std::chrono::duration<double, std::micro>(elapsed).count() / calls;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2000;
  const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  const std::string_view mode = argc > 3 ? argv[3] : "both";
  const bool run_raw = mode != "pool";
  const bool run_pool = mode != "raw";
  Setup setup;
  for (int i = 0; i < 50; ++i) {  // warm up: connections open, allocators settled
    if (run_raw) setup.raw_call(i);
    if (run_pool) setup.pool_call(i);
  }
  if (!run_raw || !run_pool) {  // one side only (for instruction counts)
    const double us = microseconds_per_call(calls * rounds, [&](int i) {
      if (run_raw) setup.raw_call(i);
      else setup.pool_call(i);
    });
    fmt::print("{}: {:.1f} us/call over {} calls\n", mode, us, calls * rounds);
    return 0;
  }
  std::vector<double> raw;
  std::vector<double> pooled;
  std::vector<double> ratios;
  fmt::print("{:>5} {:>14} {:>14} {:>8}\n", "round", "raw us/call", "pool us/call", "ratio");
  for (int round = 0; round < rounds; ++round) {
    raw.push_back(microseconds_per_call(calls, [&](int i) { setup.raw_call(i); }));
    pooled.push_back(microseconds_per_call(calls, [&](int i) { setup.pool_call(i); }));
    ratios.push_back(pooled.back() / raw.back());
    fmt::print("{:>5} {:>14.1f} {:>14.1f} {:>8.3f}\n", round + 1, raw.back(), pooled.back(), ratios.back());
  }
  fmt::print("median {:>13.1f} {:>14.1f} {:>8.3f}   ({} calls per round, one in flight)\n", median(raw),
             median(pooled), median(ratios), calls);
  return 0;
}
