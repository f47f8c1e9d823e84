// floodgate/redis/reserving_gate.hpp: shared limits behind a synchronous gate.
//
//   floodgate::redis::ReservingGate gate(redis, {.pool_name = "bots"}, [](auto& limits) {
//     limits.add("bot", Rate::per_second(30), 1)
//           .add_per_key("private_chat", Rate::per_second(1), 3, [](std::int64_t chat) { return chat > 0; });
//   });
//   bot_pool_options.shared_limits = gate.as_function();   // telegram/bot_pool.hpp
//
// A retry executor's gate (async/retry_executor.hpp) must answer at once: how
// long this credential must wait for this destination. A check in Redis takes
// a round trip. The gate bridges the two by reservation: the first time a
// (credential, destination) asks, it starts one RedisLimitSet check (owner =
// the credential id) and answers "wait `poll`"; when the executor comes back,
// the admitted token is there and is spent (answer 0), or Redis' refusal says
// how long to wait. A reservation is spent within `reservation_ttl` of its
// grant or dropped, so the shared limits are exceeded by at most
// rate × reservation_ttl over any window (the same argument as for leases in
// redis/limit_set.hpp); an unspent one costs throughput, never the limit.
//
// Thread-safe. Lifetime: `client` must outlive the gate (declare it first);
// the gate should outlive the pools using it, but their calls may come later:
// a BotPool's retries (waiting out a flood wait or a backoff) outlive the
// BotPool and still ask its gate. ~ReservingGate closes the gate: it waits for
// a call starting a check, and after it no call starts one or touches the
// client or the `configure` function; such a call answers `closed_wait` (an
// hour). Never zero, which would mean a reserved token was spent: a pool still
// running against a destroyed gate would then send outside the shared limits.
// An hour is beyond a retry's max_wait (60 s by default), so such a run ends
// (all_credentials_cooling) instead of waiting, and BotPool caps what it
// honours at an hour anyway. Checks in flight at teardown end without
// touching the client (redis/limit_set.hpp) and record nothing once the
// gate's state is gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "floodgate/async/detail/open_latch.hpp"
#include "floodgate/redis/limit_set.hpp"

namespace floodgate::redis {

struct ReservingGateOptions {
  std::string pool_name = "default";
  FailurePolicy on_unavailable = FailurePolicy::fail_open;
  /// The pause answered while a check is in flight (about one round trip).
  std::chrono::nanoseconds poll = std::chrono::milliseconds(2);
  /// A granted reservation not spent within this is dropped.
  std::chrono::nanoseconds reservation_ttl = std::chrono::milliseconds(250);
};

class ReservingGate {
 public:
  using Limits = RedisLimitSet<std::int64_t>;
  using Configure = std::function<void(Limits&)>;
  using Clock = std::chrono::steady_clock;

  /// `configure` adds the limits of one credential (called once per credential id).
  ReservingGate(RedisClient& client, ReservingGateOptions options, Configure configure)
      : state_(std::make_shared<State>(client, std::move(options), std::move(configure))) {}

  /// Closes the gate: calls made after it (through `as_function`) start no check.
  ~ReservingGate() { state_->open.close(); }
  ReservingGate(const ReservingGate&) = delete;
  ReservingGate& operator=(const ReservingGate&) = delete;

  /// What a closed gate answers: no reservation, and a wait no retry waits out.
  static constexpr std::chrono::nanoseconds closed_wait = std::chrono::hours(1);

  /// How long `credential` must wait before sending to `destination`; zero
  /// means send now (a reserved token was spent). `closed_wait` once the gate is destroyed.
  std::chrono::nanoseconds reserve(std::string_view credential, std::int64_t destination) {
    return State::reserve(state_, credential, destination);
  }

  std::function<std::chrono::nanoseconds(std::string_view, std::int64_t)> as_function() {
    return [state = state_](std::string_view credential, std::int64_t destination) {
      return State::reserve(state, credential, destination);
    };
  }

 private:
  struct Slot {
    enum class Kind { checking, granted, refused } kind = Kind::checking;
    Clock::time_point until{};  // granted: spend before; refused: wait until
  };

  struct State {
    State(RedisClient& c, ReservingGateOptions o, Configure f)
        : client(c), options(std::move(o)), configure(std::move(f)) {}

    // Everything that may start a check (and so touch the client) runs inside the latch.
    static std::chrono::nanoseconds reserve(const std::shared_ptr<State>& self, std::string_view credential,
                                            std::int64_t destination) {
      std::chrono::nanoseconds answer = closed_wait;
      self->open.run_if_open([&] { answer = reserve_open(self, credential, destination); });
      return answer;
    }

    static std::chrono::nanoseconds reserve_open(const std::shared_ptr<State>& self, std::string_view credential,
                                                 std::int64_t destination) {
      const auto now = Clock::now();
      Limits* limits = nullptr;
      {
        std::lock_guard lock(self->mutex);
        self->prune(now);
        auto key = std::make_pair(std::string(credential), destination);
        auto it = self->slots.find(key);
        if (it != self->slots.end()) {
          Slot& slot = it->second;
          switch (slot.kind) {
            case Slot::Kind::checking: return self->options.poll;
            case Slot::Kind::granted: {
              const auto spend_before = slot.until;  // read before the erase frees the slot
              self->slots.erase(it);
              if (now < spend_before) return std::chrono::nanoseconds::zero();
              break;  // expired: ask again
            }
            case Slot::Kind::refused:
              if (now < slot.until) return slot.until - now;
              self->slots.erase(it);
              break;
          }
        }
        self->slots[key] = Slot{};
        limits = &self->limits_of(key.first);
      }
      std::weak_ptr<State> weak = self;
      limits->async_try_acquire(destination, 1, [weak, key = std::make_pair(std::string(credential), destination)](
                                                    std::error_code ec, LimitDecision d) {
        auto state = weak.lock();
        if (!state) return;
        std::lock_guard lock(state->mutex);
        auto it = state->slots.find(key);
        if (it == state->slots.end()) return;
        const auto at = Clock::now();
        if (ec) {  // fail_closed and Redis away: try again a little later
          it->second = Slot{Slot::Kind::refused, at + std::chrono::milliseconds(100)};
        } else if (d) {
          it->second = Slot{Slot::Kind::granted, at + state->options.reservation_ttl};
        } else {
          const auto wait = std::min<std::chrono::nanoseconds>(d.retry_after, std::chrono::hours(1));
          it->second = Slot{Slot::Kind::refused, at + wait};
        }
      });
      return self->options.poll;
    }

    Limits& limits_of(const std::string& credential) {
      auto it = sets.find(credential);
      if (it == sets.end()) {
        auto limits = std::make_unique<Limits>(
            client, RedisLimitOptions{.pool_name = options.pool_name, .owner = credential,
                                      .on_unavailable = options.on_unavailable});
        configure(*limits);
        it = sets.emplace(credential, std::move(limits)).first;
      }
      return *it->second;
    }

    // Forgets what has expired, so the map holds only live pairs.
    void prune(Clock::time_point now) {
      if (slots.size() < 4096) return;
      std::erase_if(slots, [&](const auto& entry) {
        return entry.second.kind != Slot::Kind::checking && entry.second.until <= now;
      });
    }

    async::detail::OpenLatch open;  // closed by ~ReservingGate
    RedisClient& client;            // used only inside `open`
    ReservingGateOptions options;
    Configure configure;
    std::mutex mutex;
    std::map<std::string, std::unique_ptr<Limits>, std::less<>> sets;
    std::map<std::pair<std::string, std::int64_t>, Slot> slots;
  };

  std::shared_ptr<State> state_;
};

}  // namespace floodgate::redis
