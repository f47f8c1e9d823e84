// pool_demo: three bot tokens, a service that allows each token 5 requests
// per second and answers FLOOD_WAIT_10 when pushed harder, and 600 messages
// offered at 20 per second, more than the tokens can carry together (15/s).
//
// Twice: first the way many bots do it today (one token until it is told to
// wait, then the next), then through floodgate: a RetryExecutor over a
// CredentialPool, with a token bucket per token as its gate. It runs in
// virtual time (ManualClock + VirtualTime), so the 40 simulated seconds take
// a blink, and prints the status table as it goes.
#include "floodgate/async/retry_executor.hpp"
#include "floodgate/core.hpp"
#include "floodgate/telegram/credentials.hpp"

#include <boost/asio/io_context.hpp>
#include <fmt/format.h>

#include <deque>
#include <map>
#include <memory>

using namespace std::chrono_literals;
using Clock = floodgate::ManualClock;
using Pool = floodgate::CredentialPool<floodgate::BotToken, floodgate::BestHealth, Clock>;

namespace {

constexpr int kTokens = 3, kPerSecond = 5, kFloodWait = 10, kMessages = 600;
constexpr auto kArrivalGap = 50ms;  // 20 messages per second

// The service: per token, at most kPerSecond requests in any one-second
// window; beyond that FLOOD_WAIT_10, and requests inside that wait are
// refused again (and counted: a well-behaved client sends none).
class FakeService {
 public:
  explicit FakeService(Clock clock) : clock_(std::move(clock)) {}

  std::optional<int> call(const std::string& token) {  // nullopt = sent; else the wait
    auto& t = tokens_[token];
    const auto now = clock_.now();
    if (now < t.blocked_until) {
      ++sent_into_cooldown_;
      return static_cast<int>(std::chrono::ceil<std::chrono::seconds>(t.blocked_until - now).count());
    }
    while (!t.window.empty() && now - t.window.front() >= 1s) t.window.pop_front();
    if (static_cast<int>(t.window.size()) >= kPerSecond) {
      t.blocked_until = now + std::chrono::seconds(kFloodWait);
      ++flood_waits_;
      return kFloodWait;
    }
    t.window.push_back(now);
    return std::nullopt;
  }
  int flood_waits() const { return flood_waits_; }
  int sent_into_cooldown() const { return sent_into_cooldown_; }

 private:
  struct Token {
    std::deque<Clock::time_point> window;
    Clock::time_point blocked_until{};
  };
  Clock clock_;
  std::map<std::string, Token> tokens_;
  int flood_waits_ = 0, sent_into_cooldown_ = 0;
};

std::string token_id(int i) { return fmt::format("token-{}", i); }

void naive_rotation() {
  Clock clock(std::chrono::system_clock::now());
  FakeService service(clock);
  int delivered = 0, current = 0;
  for (int m = 0; m < kMessages; ++m, clock.advance(kArrivalGap)) {
    for (int tries = 0; tries < kTokens; ++tries) {  // switch on FLOOD_WAIT, give up after a full round
      if (!service.call(token_id(current))) {
        ++delivered;
        break;
      }
      current = (current + 1) % kTokens;
    }
  }
  fmt::print("naive rotation:  {} of {} delivered, {} flood waits, {} requests sent into a known wait\n\n",
             delivered, kMessages, service.flood_waits(), service.sent_into_cooldown());
}

void with_floodgate() {
  boost::asio::io_context io;
  Clock clock(std::chrono::system_clock::now());
  floodgate::async::VirtualTime time(io, clock);
  FakeService service(clock);

  Pool pool({}, clock);
  std::map<std::string, std::unique_ptr<floodgate::TokenBucket<Clock>>> buckets;
  for (int i = 0; i < kTokens; ++i) {
    pool.add({token_id(i), {floodgate::Secret(fmt::format("24021{}:demo-token-not-real", i))}});
    buckets[token_id(i)] =
        std::make_unique<floodgate::TokenBucket<Clock>>(floodgate::Rate::per_second(kPerSecond), 1, clock);
  }
  floodgate::async::RetryExecutor executor(io.get_executor(), pool, floodgate::RetryPolicy{.max_wait = 30s});
  executor.set_gate([&](const Pool::Lease& lease) -> Clock::duration {
    auto& bucket = *buckets[lease.id()];
    return bucket.try_acquire() ? Clock::duration::zero() : bucket.time_until();
  });

  int delivered = 0, failed = 0, completed = 0;
  for (int m = 0; m < kMessages; ++m) {
    executor.async_run(
        [&](const Pool::Lease& lease) {
          if (auto wait = service.call(lease.id())) {
            return floodgate::Outcome<int>::flood_wait(std::chrono::seconds(*wait));
          }
          return floodgate::Outcome<int>::success(m);
        },
        {}, [&](std::error_code ec, auto) {
          ++completed;
          ec ? ++failed : ++delivered;
        });
    time.advance(kArrivalGap);
    if (m % 200 == 199) {
      fmt::print("after {:>2} s, {} delivered:\n{}", (m + 1) / 20, delivered, floodgate::status_table(pool.snapshot()));
    }
  }
  time.run_until([&] { return completed == kMessages; }, 10min);
  fmt::print("floodgate:       {} of {} delivered, {} failed, {} flood waits, {} requests sent into a known wait\n",
             delivered, kMessages, failed, service.flood_waits(), service.sent_into_cooldown());
}

}  // namespace

int main() {
  fmt::print("{} tokens × {} msg/s, {} messages offered at 20/s, FLOOD_WAIT_{} when a token is pushed harder\n\n",
             kTokens, kPerSecond, kMessages, kFloodWait);
  naive_rotation();
  with_floodgate();
}
