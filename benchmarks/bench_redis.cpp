// bench_redis: what a shared limit in Redis costs, against a local redis-server
// this program starts (Debian's, on a free loopback port). Prints:
//   1. latency of one check (one in flight): local LimitSet vs RedisLimitSet,
//      without and with grant batching;
//   2. checks per second with 64 checks in flight from one client;
//   3. admitted per second for one process vs two sharing one limit.
// Compare figures within one run only (a shared machine).
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "../tests/redis/redis_server.hpp"
#include "../tests/telegram/io_runner.hpp"
#include "floodgate/core/limit_set.hpp"
#include "floodgate/redis/limit_set.hpp"

using namespace std::chrono_literals;
using floodgate::Rate;
using floodgate::redis::RedisClient;
using floodgate::redis::RedisLimitSet;
using Clock = std::chrono::steady_clock;

namespace {

struct Percentiles {
  double median_us = 0;
  double p99_us = 0;
};

Percentiles percentiles(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

// With batching, leased tokens may be spent for 10 ms (the overshoot bound is
// then rate × 10 ms): at the benchmark's huge rate the default lease_ttl
// (lease × interval) would be 3 µs.
std::unique_ptr<RedisLimitSet<std::int64_t>> make_limits(RedisClient& client, std::uint32_t lease, Rate rate,
                                                        double burst, const std::string& owner) {
  auto limits = std::make_unique<RedisLimitSet<std::int64_t>>(
      client, floodgate::redis::RedisLimitOptions{
                  .pool_name = "bench", .owner = owner, .lease = lease, .lease_ttl = std::chrono::milliseconds(10)});
  limits->add("bot", rate, burst);
  return limits;
}

// Checks one after another, each issued from the previous one's completion on
// the io thread: the latency a caller adds per check. Also counts round trips.
struct LatencyRun {
  Percentiles latency;
  double round_trips_per_check = 0;
};

std::int64_t evalsha_calls(RedisClient& client) {
  auto [ec, info] = client.async_command({"INFO", "commandstats"}, boost::asio::use_future).get();
  const auto at = info.text.find("cmdstat_evalsha:calls=");
  return ec || at == std::string::npos ? 0 : std::stoll(info.text.substr(at + 22));
}

LatencyRun redis_latency(RedisClient& client, std::uint32_t lease, int n) {
  auto limits = make_limits(client, lease, Rate::per_second(1e7), 10000, fmt::format("latency-{}", lease));
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(n));
  std::promise<void> finished;
  Clock::time_point start;
  std::function<void()> next = [&] {
    start = Clock::now();
    limits->async_try_acquire(0, 1, [&](std::error_code ec, floodgate::LimitDecision d) {
      samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      if (ec || !d) throw std::runtime_error("a check failed");
      if (static_cast<int>(samples.size()) == n) return finished.set_value();
      next();
    });
  };
  const auto before = evalsha_calls(client);
  next();
  finished.get_future().get();
  const auto trips = evalsha_calls(client) - before;
  return {percentiles(std::move(samples)), static_cast<double>(trips) / n};
}

double redis_throughput(RedisClient& client, std::uint32_t lease, int n, int in_flight) {
  auto limits = make_limits(client, lease, Rate::per_second(1e7), 10000, fmt::format("throughput-{}", lease));
  std::atomic<int> issued{0};
  std::atomic<int> done{0};
  std::promise<void> finished;
  std::function<void()> next = [&] {
    if (issued.fetch_add(1) >= n) return;
    limits->async_try_acquire(0, 1, [&](std::error_code, floodgate::LimitDecision) {
      if (done.fetch_add(1) + 1 == n) finished.set_value();
      next();
    });
  };
  const auto start = Clock::now();
  for (int i = 0; i < in_flight; ++i) next();
  finished.get_future().get();
  return n / std::chrono::duration<double>(Clock::now() - start).count();
}

// Processes (own client, own io thread) checking one shared 200/s limit as fast as they can.
double admitted_per_second(const std::string& url, int processes, std::chrono::seconds run) {
  std::vector<std::thread> threads;
  std::atomic<long> admitted{0};
  const std::string owner = fmt::format("goodput-{}", processes);
  for (int p = 0; p < processes; ++p) {
    threads.emplace_back([&] {
      floodgate::test::IoRunner io;
      RedisClient client(io.executor(), floodgate::redis::parse_redis_url(url));
      client.start();
      auto limits = make_limits(client, 1, Rate::per_second(200), 1, owner);
      const auto end = Clock::now() + run;
      while (Clock::now() < end) {
        auto [ec, d] = limits->async_try_acquire(0, 1, boost::asio::use_future).get();
        if (!ec && d) {
          ++admitted;
        } else if (!ec) {
          std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(d.retry_after, 5ms));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return static_cast<double>(admitted.load()) / static_cast<double>(run.count());
}

}  // namespace

int main() {
  floodgate::test::RedisServer server;
  floodgate::test::IoRunner io;
  RedisClient client(io.executor(), floodgate::redis::parse_redis_url(server.url()));
  client.start();

  constexpr int kChecks = 20000;
  floodgate::LimitSet<std::int64_t> local;
  local.add("bot", Rate::per_second(1e7), 10000);
  std::vector<double> local_samples;
  for (int i = 0; i < kChecks; ++i) {
    const auto start = Clock::now();
    const bool ok = static_cast<bool>(local.try_acquire(0));
    local_samples.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!ok) return 1;
  }
  const auto l = percentiles(local_samples);
  const auto r1 = redis_latency(client, 1, kChecks);
  const auto r32 = redis_latency(client, 32, kChecks);
  fmt::print("latency of one check, one in flight ({} checks):\n", kChecks);
  fmt::print("  local LimitSet                  median {:8.2f} us   p99 {:8.2f} us\n", l.median_us, l.p99_us);
  fmt::print("  RedisLimitSet, no batching      median {:8.2f} us   p99 {:8.2f} us   {:.3f} round trips/check\n",
             r1.latency.median_us, r1.latency.p99_us, r1.round_trips_per_check);
  fmt::print("  RedisLimitSet, lease 32/10 ms   median {:8.2f} us   p99 {:8.2f} us   {:.3f} round trips/check\n",
             r32.latency.median_us, r32.latency.p99_us, r32.round_trips_per_check);

  fmt::print("checks per second, 64 in flight from one client ({} checks):\n", 5 * kChecks);
  fmt::print("  RedisLimitSet, no batching      {:10.0f} /s\n", redis_throughput(client, 1, 5 * kChecks, 64));
  fmt::print("  RedisLimitSet, lease 32/10 ms   {:10.0f} /s\n", redis_throughput(client, 32, 5 * kChecks, 64));

  fmt::print("admitted per second under one shared 200/s limit (3 s each):\n");
  fmt::print("  one process                     {:8.1f} /s\n", admitted_per_second(server.url(), 1, 3s));
  fmt::print("  two processes together          {:8.1f} /s\n", admitted_per_second(server.url(), 2, 3s));
  return 0;
}
