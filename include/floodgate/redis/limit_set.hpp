// floodgate/redis/limit_set.hpp: rate limits shared by every process, kept in Redis.
//
//   floodgate::redis::RedisClient redis(io.get_executor(), parse_redis_url(url));
//   redis.start();
//   floodgate::redis::RedisLimitSet<std::int64_t> limits(redis, {.pool_name = "bots", .owner = "tok-1"});
//   limits.add("bot", Rate::per_second(30), 1)
//         .add_per_key("private_chat", Rate::per_second(1), 3, [](std::int64_t chat) { return chat > 0; });
//   limits.async_try_acquire(chat_id, 1, [](std::error_code ec, floodgate::LimitDecision d) {
//     if (!ec && d) send(); else if (!ec) retry_in(d.retry_after);
//   });
//
// The same limits as a core LimitSet (same `add` / `add_per_key`, same
// decision: the refusing limit's name, `per_key`, `retry_after`), but the
// state lives in Redis, so N processes holding token tok-1 share tok-1's
// 30/s instead of getting 30/s each. One check is one Lua script (EVALSHA)
// that judges every applicable limit at one instant and takes from all of
// them or from none.
//
// Algorithm: GCRA (the generic cell rate algorithm, as in redis-cell and
// Stripe's limiter). It is a token bucket stored as a single number per
// limit, the "theoretical arrival time": a request of n passes when
// max(TAT, now) + n·T − now ≤ burst·T (T = one token's interval), and then
// that becomes the TAT. One key, one GET and one SET per limit, an exact
// retry_after, no refill loop, and a key whose TTL is exactly when it would
// be full again (so idle chats cost no memory). The clock is Redis' own
// `TIME`, read inside the script: processes' clocks never enter.
//
// Batching (`lease` > 1): a check to which only shared (not per-key) limits
// apply takes `lease` tokens from Redis at once and spends them locally for
// at most `lease_ttl`; tokens still unspent then are dropped, never carried.
// Bound: Redis never grants more than burst + rate·x in any interval of
// length x, and a token is spent at most lease_ttl after its grant, so in any
// window of length t all processes together send at most
// burst + rate·(t + lease_ttl): the overshoot is at most rate·lease_ttl
// tokens (lease tokens with the default lease_ttl = lease / rate), however
// many processes there are. Checks that a per-key limit applies to go to Redis
// every time.
//
// Failure (`on_unavailable`): fail_open judges with a local LimitSet of the
// same limits (this process alone; a warning is logged once per outage);
// fail_closed completes with redis::errc::unavailable. Either way without
// waiting: the client fails fast while Redis is away. A Redis restarted
// without persistence has forgotten the TATs: each limit may then admit one
// more burst.
//
// Cancellation (the handler's cancellation slot, any type): a check ends at
// once with floodgate::errc::cancelled (== std::errc::operation_canceled),
// never with a local decision. A check not sent to Redis yet takes nothing; one
// whose script was already sent ends the caller's wait on terminal or partial
// and may still have taken its tokens in Redis (they are not given back: a
// limiter errs on the side of sending less); `total` alone lets it end with
// its decision (RedisClient's rules). The set stays usable.
//
// Completes with void(std::error_code, LimitDecision) on the caller's
// executor, never inline. Configure before sharing; checks are thread-safe.
//
// Lifetime: the client must outlive the calls to the set (`async_try_acquire`,
// `shared`), not the checks they started. A check still queued or in flight
// when the client is destroyed is ended by the client's shutdown
// (errc::shut_down) and completes through the client's strand, an executor
// the set copied when it was made: nothing on that path touches the client
// object. The set itself may go before its checks too (they hold its state).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "floodgate/core/limit_set.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/keys.hpp"

namespace floodgate::redis {

struct RedisLimitOptions {
  /// Keys are floodgate:{pool_name}:limit:<owner>:<limit>[:<key>].
  std::string pool_name = "default";
  /// Whose limits these are: the credential id (limits are per token).
  std::string owner = "default";
  FailurePolicy on_unavailable = FailurePolicy::fail_open;
  /// Tokens taken from Redis per round trip for checks only shared limits
  /// apply to; 1 = no batching. At most the smallest shared burst.
  std::uint32_t lease = 1;
  /// How long leased tokens may be spent; 0 = lease × the tightest shared interval.
  std::chrono::nanoseconds lease_ttl{0};
};

namespace detail {
/// The GCRA check script (one per process, shared by every set).
const Script& gcra_script();
}  // namespace detail

template <class Key>
class RedisLimitSet {
 public:
  using Scope = std::function<bool(const Key&)>;
  using Signature = void(std::error_code, LimitDecision);

  /// `client` must outlive the calls to this set; its checks may outlive it (see Lifetime above).
  RedisLimitSet(RedisClient& client, RedisLimitOptions options = {})
      : state_(std::make_shared<State>(client, std::move(options))) {}

  RedisLimitSet& add(std::string name, Rate rate, double burst) {
    state_->local.add(name, rate, burst);
    state_->limits.push_back(Limit{std::move(name), rate, burst, false, {}});
    return *this;
  }

  RedisLimitSet& add_per_key(std::string name, Rate rate, double burst, Scope applies_to = {}) {
    state_->local.add_per_key(name, rate, burst, applies_to);
    // Per-key limits are judged first, as in LimitSet: a refusal names the most specific.
    auto first_shared = std::find_if(state_->limits.begin(), state_->limits.end(),
                                     [](const Limit& l) { return !l.per_key; });
    state_->limits.insert(first_shared, Limit{std::move(name), rate, burst, true, std::move(applies_to)});
    return *this;
  }

  /// Takes n tokens from every limit that applies to `key` (in Redis), or none.
  template <class CompletionToken>
  auto async_try_acquire(const Key& key, std::uint32_t n, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [state = state_](auto handler, Key k, std::uint32_t count) {
          State::check(state, std::move(k), count,
                       boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, key, n);
  }

  /// Whether the last check reached Redis (false while failing open or closed).
  bool shared() const { return state_->client.connected(); }

 private:
  struct Limit {
    std::string name;
    Rate rate;
    double burst;
    bool per_key;
    Scope applies_to;
  };

  struct State {
    State(RedisClient& c, RedisLimitOptions o)
        : client(c), strand(c.get_executor()), options(std::move(o)), keys(options.pool_name) {}

    using Handler = boost::asio::any_completion_handler<Signature>;

    // Never inline: through the client's strand, then on the handler's own executor.
    // The strand is the copy taken at construction: a check may end after the client is gone.
    void complete(Handler handler, std::error_code ec, LimitDecision d) {
      boost::asio::post(strand, [h = std::move(handler), ec, d, s = strand]() mutable {
        auto ex = boost::asio::get_associated_executor(h, s);
        boost::asio::dispatch(ex, [h = std::move(h), ec, d]() mutable { std::move(h)(ec, d); });
      });
    }

    static void check(const std::shared_ptr<State>& self, Key key, std::uint32_t n, Handler handler) {
      std::vector<const Limit*> applicable;
      bool keyed = false;
      for (const Limit& l : self->limits) {
        if (l.per_key && l.applies_to && !l.applies_to(key)) continue;
        applicable.push_back(&l);
        keyed = keyed || l.per_key;
      }
      if (applicable.empty()) return self->complete(std::move(handler), {}, LimitDecision{true});
      for (const Limit* l : applicable) {
        if (l->rate.is_zero() || static_cast<double>(n) > l->burst) {
          return self->complete(std::move(handler), {}, refusal(*l, LimitDecision::never));
        }
      }
      std::uint32_t take = n;
      if (!keyed && self->options.lease > 1) {
        if (self->spend_leased(n)) return self->complete(std::move(handler), {}, LimitDecision{true});
        // One lease in flight at a time; checks meanwhile take only their own tokens.
        if (self->begin_lease()) take = std::max(n, self->lease_size(applicable));
      }
      std::vector<std::string> redis_keys;
      std::vector<std::string> args{std::to_string(take)};
      const std::string key_text = keyed ? fmt::format("{}", key) : std::string();
      for (const Limit* l : applicable) {
        redis_keys.push_back(self->keys.limit(self->options.owner + ":" + l->name, l->per_key ? key_text : ""));
        const auto interval_us = std::max<std::int64_t>(
            1, std::chrono::duration_cast<std::chrono::microseconds>(l->rate.interval()).count());
        args.push_back(std::to_string(interval_us));
        args.push_back(std::to_string(static_cast<std::int64_t>(l->burst * static_cast<double>(interval_us))));
      }
      // The caller's slot reaches the script call: the client drops it unsent, or stops waiting.
      const auto slot = boost::asio::get_associated_cancellation_slot(handler);
      self->client.async_eval(
          detail::gcra_script(), std::move(redis_keys), std::move(args),
          boost::asio::bind_cancellation_slot(slot, [self, applicable, key = std::move(key), n, take,
                                                     handler = std::move(handler)](std::error_code ec,
                                                                                   RedisReply reply) mutable {
            if (take > n) self->end_lease();
            if (ec == floodgate::errc::cancelled) return self->complete(std::move(handler), ec, {});
            if (ec || reply.is_error() || reply.elements.size() != 3) {
              return self->unavailable(std::move(key), n, std::move(handler), ec, reply);
            }
            self->back_in_service();
            if (reply.elements[0].integer == 1) {
              if (take > n) self->store_leased(take - n, applicable);
              return self->complete(std::move(handler), {}, LimitDecision{true});
            }
            const auto index = static_cast<std::size_t>(std::max<std::int64_t>(reply.elements[1].integer, 1) - 1);
            const Limit& refusing = *applicable[std::min(index, applicable.size() - 1)];
            self->complete(std::move(handler), {}, refusal(refusing, std::chrono::microseconds(reply.elements[2].integer)));
          }));
    }

    static LimitDecision refusal(const Limit& l, std::chrono::nanoseconds wait) {
      LimitDecision d;
      d.admitted = false;
      d.retry_after = wait;
      d.limit = l.name;
      d.per_key = l.per_key;
      return d;
    }

    void unavailable(Key key, std::uint32_t n, Handler handler, std::error_code ec, const RedisReply& reply) {
      const bool closed = options.on_unavailable == FailurePolicy::fail_closed;
      {
        std::lock_guard lock(mutex);
        if (!outage) {
          outage = true;
          log(LogLevel::warning, "shared limits of {} in pool {}: Redis unavailable ({}); {}", options.owner,
              options.pool_name, ec ? ec.message() : reply.text,
              closed ? "refusing (fail_closed)" : "limiting locally, this process alone (fail_open)");
        }
      }
      if (closed) return complete(std::move(handler), ec ? ec : make_error_code(errc::unavailable), {});
      complete(std::move(handler), {}, local.try_acquire(key, n));
    }

    void back_in_service() {
      std::lock_guard lock(mutex);
      if (!outage) return;
      outage = false;
      log(LogLevel::info, "shared limits of {} in pool {}: Redis is back", options.owner, options.pool_name);
    }

    std::uint32_t lease_size(const std::vector<const Limit*>& applicable) const {
      double smallest_burst = static_cast<double>(options.lease);
      for (const Limit* l : applicable) smallest_burst = std::min(smallest_burst, l->burst);
      return static_cast<std::uint32_t>(std::max(1.0, smallest_burst));
    }

    bool begin_lease() {
      std::lock_guard lock(mutex);
      return !std::exchange(lease_in_flight, true);
    }
    void end_lease() {
      std::lock_guard lock(mutex);
      lease_in_flight = false;
    }

    bool spend_leased(std::uint32_t n) {
      std::lock_guard lock(mutex);
      if (leased < n || std::chrono::steady_clock::now() >= lease_expiry) return false;
      leased -= n;
      return true;
    }

    void store_leased(std::uint32_t extra, const std::vector<const Limit*>& applicable) {
      auto ttl = options.lease_ttl;
      if (ttl.count() == 0) {
        std::chrono::nanoseconds tightest{0};
        for (const Limit* l : applicable) tightest = std::max(tightest, l->rate.interval());
        ttl = tightest * options.lease;
      }
      std::lock_guard lock(mutex);
      leased = extra;  // unspent tokens of an older lease are dropped, never added up
      lease_expiry = std::chrono::steady_clock::now() + ttl;
    }

    RedisClient& client;                   // only where a check starts (the caller keeps it alive then)
    boost::asio::any_io_executor strand;   // the client's strand, used by completions instead of `client`
    RedisLimitOptions options;
    Keys keys;
    std::vector<Limit> limits;
    LimitSet<Key> local;  // the same limits, for fail_open

    std::mutex mutex;
    bool outage = false;
    std::uint32_t leased = 0;
    bool lease_in_flight = false;
    std::chrono::steady_clock::time_point lease_expiry{};
  };

  std::shared_ptr<State> state_;
};

}  // namespace floodgate::redis
