// sim_goodput: how much of N credentials' capacity a client gets through a
// server that answers FLOOD_WAIT, per pool strategy, with and without a
// per-credential token bucket, against the naive "switch token on
// FLOOD_WAIT" loop bots run today.
//
//   build/benchmarks/sim_goodput                     # the table in docs/benchmarks.md
//   build/benchmarks/sim_goodput --flood-wait 30 --escalate --burst 3 --limiter-rate 28
//
// A deterministic discrete-event simulation in virtual time (ManualClock):
// the same options print the same table on every run, in well under a second.
//
// The model
// - Server: each credential may make R requests in any sliding one-second
//   window (t - 1 s, t]. The request that would be the (R+1)-th is refused with
//   FLOOD_WAIT_T and the server then refuses that credential everything for T
//   seconds. A request sent while such a wait is running was sent into a
//   cooldown the client had been told about: the server counts it and answers
//   FLOOD_WAIT with the seconds left (with --escalate, each one also extends
//   the wait by another T, as servers punish clients that ignore them).
// - Client: requests arrive at `load` × N × R per second (Poisson from a seeded
//   generator, or evenly spaced) into one FIFO backlog; the load is above what
//   the credentials can carry, so the backlog only grows and goodput measures
//   capacity used. A round trip takes no virtual time, so the server's answer
//   is known before the next send (and LeastLoaded, which compares requests in
//   flight, sees none and picks at random between two).
// - floodgate rows follow the RetryExecutor's rules on a CredentialPool: a
//   FLOOD_WAIT_T cools that credential for exactly T and the request moves on
//   at once to another credential; when all are cooling the client waits for
//   the earliest; it never sends into a known cooldown.
// - "limiter on" puts a TokenBucket at rate R (or --limiter-rate), burst
//   --burst (default 1), in front of each credential. The pool picks a
//   credential; if its bucket has no token the lease goes back unused and the
//   credential is held out of the pool (a pool cooldown) until its bucket has a
//   token again, so the next acquire picks another credential; when every
//   credential is cooling or held the client waits for the earliest of them.
//   A bucket of rate r and burst b can pass b + r - 1 requests within one
//   second, so it is safe against this server only when r <= R - b + 1: at
//   rate R that means burst 1.
// - The naive row sends everything on one credential; on FLOOD_WAIT it
//   switches to the next credential and retries at once, keeping no record of
//   who is cooling. Only after N refusals in a row does it sleep, for the wait
//   the last refusal named. With N = 1 this is "sleep on FLOOD_WAIT".
#include "floodgate/core/clock.hpp"
#include "floodgate/telegram/credentials.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/core/strategy.hpp"
#include "floodgate/core/token_bucket.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using floodgate::ManualClock;
using Duration = ManualClock::duration;
using TimePoint = ManualClock::time_point;
using namespace std::chrono_literals;

struct Config {
  std::chrono::seconds simulated{600};  ///< virtual time per row
  std::uint32_t rate = 30;              ///< R: requests per second the server admits per credential
  std::chrono::seconds flood_wait{5};   ///< T: the wait the server names when R is exceeded
  bool escalate = false;                ///< ignoring a wait extends it by another T
  double load = 1.5;                    ///< offered load as a multiple of N × R
  bool poisson = true;                  ///< Poisson arrivals, else evenly spaced
  std::optional<double> limiter_rate;   ///< token bucket rate per second with the limiter on; R if unset
  double burst = 1;                     ///< token bucket burst with the limiter on
  std::uint64_t seed = 20261127;
};

// ---- the server -----------------------------------------------------------

struct Reply {
  bool admitted = false;
  std::chrono::seconds flood_wait{0};  ///< FLOOD_WAIT_X when refused
};

/// The rate-limited service: a sliding one-second window per credential and
/// the flood waits it has told each credential about.
class Server {
 public:
  Server(std::size_t credentials, const Config& config) : config_(config), accounts_(credentials) {}

  Reply handle(std::size_t credential, TimePoint now) {
    ++received_;
    Account& account = accounts_[credential];
    if (now < account.wait_until) {
      ++into_known_cooldown_;
      ++flood_waits_;
      if (config_.escalate) account.wait_until += config_.flood_wait;
      return {false, std::chrono::ceil<std::chrono::seconds>(account.wait_until - now)};
    }
    while (!account.window.empty() && account.window.front() <= now - 1s) account.window.pop_front();
    if (account.window.size() < config_.rate) {
      account.window.push_back(now);
      ++admitted_;
      return {true};
    }
    account.wait_until = now + config_.flood_wait;
    ++flood_waits_;
    return {false, config_.flood_wait};
  }

  std::uint64_t received() const noexcept { return received_; }
  std::uint64_t admitted() const noexcept { return admitted_; }
  std::uint64_t flood_waits() const noexcept { return flood_waits_; }
  std::uint64_t into_known_cooldown() const noexcept { return into_known_cooldown_; }

 private:
  struct Account {
    std::deque<TimePoint> window;  // admitted requests of the last second, oldest first
    TimePoint wait_until{};        // end of the flood wait told to this credential
  };

  const Config& config_;
  std::vector<Account> accounts_;
  std::uint64_t received_ = 0;
  std::uint64_t admitted_ = 0;
  std::uint64_t flood_waits_ = 0;
  std::uint64_t into_known_cooldown_ = 0;
};

// ---- the clients ------------------------------------------------------------
//
// A client's `dispatch(pending, now)` sends from the backlog until it is empty
// or nothing may be sent now. It returns when it wants to be called again
// (nothing: at the next arrival).

/// floodgate: a CredentialPool, optionally with a token bucket per credential.
template <class StrategyT>
class PoolClient {
 public:
  PoolClient(std::size_t credentials, const Config& config, ManualClock clock, Server& server, bool limiter)
      : pool_(floodgate::PoolOptions{}, clock), server_(server) {
    for (std::size_t i = 0; i < credentials; ++i) {
      pool_.add({fmt::format("cred-{}", i + 1), i});
      if (limiter) {
        buckets_.emplace_back(floodgate::Rate::per_second(config.limiter_rate.value_or(config.rate)), config.burst,
                              clock);
      }
    }
  }

  std::optional<TimePoint> dispatch(std::uint64_t& pending, TimePoint now) {
    while (pending > 0) {
      auto lease = pool_.acquire();
      if (!lease) {
        if (auto earliest = lease.earliest()) return earliest;  // all cooling or held: wait for the first
        throw std::logic_error("pool: " + lease.error().message());
      }
      const std::size_t credential = lease->payload();
      if (!buckets_.empty() && !buckets_[credential].try_acquire()) {
        // Its bucket is empty: the lease goes back unused (dropped at `continue`)
        // and the credential stays out of the pool until a token is there.
        pool_.cooldown(lease->id(), buckets_[credential].time_until());
        continue;
      }
      const Reply reply = server_.handle(credential, now);
      if (reply.admitted) {
        lease->success(Duration{0});
        --pending;
      } else {
        lease->flood_wait(reply.flood_wait);  // the request stays first in line, for another credential
      }
    }
    return std::nullopt;
  }

 private:
  floodgate::CredentialPool<std::size_t, StrategyT, ManualClock> pool_;
  std::deque<floodgate::TokenBucket<ManualClock>> buckets_;  // one per credential; empty when off
  Server& server_;
};

/// What bots do today: one credential until FLOOD_WAIT, then the next one.
class NaiveClient {
 public:
  NaiveClient(std::size_t credentials, Server& server) : credentials_(credentials), server_(server) {}

  std::optional<TimePoint> dispatch(std::uint64_t& pending, TimePoint now) {
    while (pending > 0) {
      if (now < asleep_until_) return asleep_until_;
      const Reply reply = server_.handle(current_, now);
      if (reply.admitted) {
        --pending;
        refusals_in_row_ = 0;
        continue;
      }
      current_ = (current_ + 1) % credentials_;
      if (++refusals_in_row_ >= credentials_) {  // every credential refused: sleep on the last wait
        asleep_until_ = now + reply.flood_wait;
        refusals_in_row_ = 0;
      }
    }
    return std::nullopt;
  }

 private:
  std::size_t credentials_;
  Server& server_;
  std::size_t current_ = 0;
  std::size_t refusals_in_row_ = 0;
  TimePoint asleep_until_{};
};

// ---- the simulation ----------------------------------------------------------

/// Request arrivals at a fixed mean rate. Poisson gaps come from a 64-bit
/// Mersenne Twister (fully specified by the standard) through the inverse CDF,
/// not std::exponential_distribution, whose output differs between libraries.
class Arrivals {
 public:
  Arrivals(double per_second, bool poisson, std::uint64_t seed, TimePoint start)
      : mean_gap_ns_(1e9 / per_second), poisson_(poisson), rng_(seed), next_(start) {
    advance();
  }
  TimePoint next() const noexcept { return next_; }
  void advance() {
    double gap = mean_gap_ns_;
    if (poisson_) {
      const double uniform = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // [0, 1)
      gap = -std::log1p(-uniform) * mean_gap_ns_;
    }
    next_ += Duration{std::llround(gap)};
  }

 private:
  double mean_gap_ns_;
  bool poisson_;
  std::mt19937_64 rng_;
  TimePoint next_;
};

struct Result {
  std::uint64_t offered = 0;
  std::uint64_t served = 0;
  std::uint64_t sent = 0;
  std::uint64_t flood_waits = 0;
  std::uint64_t into_known_cooldown = 0;
  double goodput = 0;  ///< served per second over N × R
};

/// Runs one client for `config.simulated` of virtual time. `make_client(clock,
/// server)` builds it on the simulation's clock and server.
template <class MakeClient>
Result simulate(const Config& config, std::size_t credentials, MakeClient make_client) {
  ManualClock clock;
  Server server(credentials, config);
  auto client = make_client(clock, server);

  const TimePoint start = clock.now();
  const TimePoint end = start + config.simulated;
  const double capacity = static_cast<double>(credentials) * config.rate;
  Arrivals arrivals(config.load * capacity, config.poisson, config.seed + credentials, start);

  std::uint64_t offered = 0, pending = 0;
  std::optional<TimePoint> wake;
  for (;;) {
    const TimePoint at = wake ? std::min(*wake, arrivals.next()) : arrivals.next();
    if (at >= end) break;
    clock.advance_to(at);
    for (; arrivals.next() <= at; arrivals.advance()) {
      ++offered;
      ++pending;
    }
    wake = client.dispatch(pending, at);
  }

  // Every request ended exactly once: served, or still waiting in the backlog.
  if (server.admitted() + pending != offered) throw std::logic_error("simulation lost or duplicated a request");

  const double seconds = std::chrono::duration<double>(config.simulated).count();
  return {offered,
          server.admitted(),
          server.received(),
          server.flood_waits(),
          server.into_known_cooldown(),
          static_cast<double>(server.admitted()) / (seconds * capacity)};
}

template <class StrategyT>
Result simulate_pool(const Config& config, std::size_t credentials, bool limiter) {
  return simulate(config, credentials, [&](ManualClock clock, Server& server) {
    return PoolClient<StrategyT>(credentials, config, clock, server, limiter);
  });
}

Result simulate_naive(const Config& config, std::size_t credentials) {
  return simulate(config, credentials,
                  [&](ManualClock, Server& server) { return NaiveClient(credentials, server); });
}

void print_row(std::size_t credentials, std::string_view policy, std::string_view limiter, const Result& r) {
  const double per_thousand = r.sent == 0 ? 0.0 : 1000.0 * static_cast<double>(r.flood_waits) / static_cast<double>(r.sent);
  fmt::print("| {} | {} | {} | {:.3f} | {:.1f} | {} | {} | {} |\n", credentials, policy, limiter, r.goodput,
             per_thousand, r.into_known_cooldown, r.sent, r.served);
}

template <class StrategyT>
void print_strategy(const Config& config, std::size_t credentials, std::string_view name) {
  print_row(credentials, name, "on", simulate_pool<StrategyT>(config, credentials, true));
  print_row(credentials, name, "off", simulate_pool<StrategyT>(config, credentials, false));
}

// ---- command line -----------------------------------------------------------------

[[noreturn]] void usage(std::string_view problem) {
  fmt::print(stderr,
             "sim_goodput: {}\n"
             "usage: sim_goodput [--seconds S] [--rate R] [--flood-wait T] [--escalate] [--load L]\n"
             "                   [--arrivals poisson|fixed] [--limiter-rate X] [--burst B] [--seed N]\n",
             problem);
  std::exit(2);
}

double number(std::string_view flag, const char* text, double min) {
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(value) || value < min) {
    usage(fmt::format("{} needs a number >= {} (got '{}')", flag, min, text));
  }
  return value;
}

Config parse(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--escalate") {
      config.escalate = true;
      continue;
    }
    if (i + 1 >= argc) usage(fmt::format("unknown option or missing value: {}", flag));
    const char* value = argv[++i];
    if (flag == "--seconds") {
      config.simulated = std::chrono::seconds(static_cast<std::int64_t>(number(flag, value, 1)));
    } else if (flag == "--rate") {
      config.rate = static_cast<std::uint32_t>(number(flag, value, 1));
    } else if (flag == "--flood-wait") {
      config.flood_wait = std::chrono::seconds(static_cast<std::int64_t>(number(flag, value, 1)));
    } else if (flag == "--load") {
      config.load = number(flag, value, 0.01);
    } else if (flag == "--limiter-rate") {
      config.limiter_rate = number(flag, value, 0.01);
    } else if (flag == "--burst") {
      config.burst = number(flag, value, 1);
    } else if (flag == "--seed") {
      config.seed = static_cast<std::uint64_t>(number(flag, value, 0));
    } else if (flag == "--arrivals") {
      const std::string_view kind = value;
      if (kind != "poisson" && kind != "fixed") usage("--arrivals is poisson or fixed");
      config.poisson = kind == "poisson";
    } else {
      usage(fmt::format("unknown option: {}", flag));
    }
  }
  return config;
}

}  // namespace

int main(int argc, char** argv) try {
  const Config config = parse(argc, argv);
  fmt::print(
      "server: R = {}/s per credential (sliding 1 s window), FLOOD_WAIT_{} when exceeded{}\n"
      "client: {} arrivals at {} x N x R, {} s virtual per row, seed {}; limiter: token bucket {}/s, burst {}\n\n",
      config.rate, config.flood_wait.count(), config.escalate ? ", extended by T per request sent into it" : "",
      config.poisson ? "Poisson" : "evenly spaced", config.load, config.simulated.count(), config.seed,
      config.limiter_rate.value_or(config.rate), config.burst);
  fmt::print("| N | policy | limiter | goodput (x N*R) | flood waits / 1k sent | sent into known cooldown | sent | served |\n");
  fmt::print("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const std::size_t credentials : {1u, 3u, 5u}) {
    print_row(credentials, "naive (switch on FLOOD_WAIT)", "-", simulate_naive(config, credentials));
    print_strategy<floodgate::BestHealth>(config, credentials, "BestHealth");
    print_strategy<floodgate::RoundRobin>(config, credentials, "RoundRobin");
    print_strategy<floodgate::Weighted>(config, credentials, "Weighted");
    print_strategy<floodgate::LeastLoaded>(config, credentials, "LeastLoaded");
  }
  return 0;
} catch (const std::exception& e) {
  fmt::print(stderr, "sim_goodput: {}\n", e.what());
  return 1;
}
