// pool_demo: three credentials, a server that allows each one 5 requests per
// virtual second and answers FLOOD_WAIT when pushed harder, and a workload
// that offers 20 requests per second. The pool moves work away from each
// credential the moment it is told to wait and never calls it again before its
// cooldown ends. Runs in virtual time, so it finishes at once.
//
// This is the README's demo until the Kite ticker demo lands.
#include "floodgate/core.hpp"

#include <fmt/format.h>

#include <map>

using namespace std::chrono_literals;
using Clock = floodgate::ManualClock;

namespace {

// The service side: a per-credential allowance per second.
class FakeService {
 public:
  explicit FakeService(int per_second) : per_second_(per_second) {}

  // Returns 0 on success, or the flood wait in seconds.
  int call(const std::string& credential, Clock::time_point now) {
    auto& w = windows_[credential];
    const auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (w.second != second) w = {0, second};
    if (w.used < per_second_) {
      ++w.used;
      return 0;
    }
    return 3;  // FLOOD_WAIT_3
  }

 private:
  struct Window {
    int used = 0;
    long long second = -1;
  };
  int per_second_;
  std::map<std::string, Window> windows_;
};

}  // namespace

int main() {
  Clock clock;
  floodgate::CredentialPool<floodgate::BotToken, floodgate::BestHealth, Clock> pool({}, clock);
  for (int i = 1; i <= 3; ++i) {
    pool.add({fmt::format("API-{}", i), {floodgate::Secret(fmt::format("24021{}:demo-token-not-real", i))}});
  }
  FakeService service(5);

  int delivered = 0, flood_waits = 0, deferred = 0;
  for (int tick = 0; tick < 200; ++tick) {  // 20 requests/s for 10 virtual seconds
    auto lease = pool.acquire();
    if (!lease) {
      ++deferred;  // all cooling: a real caller would wait lease.retry_after()
    } else if (int wait = service.call(lease->id(), clock.now()); wait == 0) {
      lease->success(20ms);
      ++delivered;
    } else {
      lease->flood_wait(std::chrono::seconds(wait));
      ++flood_waits;
    }
    if (tick % 40 == 39) {
      fmt::print("after {:>2} s:\n{}", (tick + 1) / 20, floodgate::status_table(pool.snapshot()));
    }
    clock.advance(50ms);
  }
  fmt::print("\ndelivered {} of 200, {} flood waits, {} deferred while all cooled down\n", delivered, flood_waits,
             deferred);
}
