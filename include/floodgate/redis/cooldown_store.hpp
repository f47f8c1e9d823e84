// floodgate/redis/cooldown_store.hpp: cooldowns and disabled credentials
// shared by every process that holds the same pool, through Redis.
//
//   floodgate::CooldownStore file("state/cooldowns.json");            // local fallback
//   floodgate::redis::RedisCooldownStore shared(io.get_executor(), parse_redis_url(url),
//                                               {.pool_name = "bots", .fallback = &file});
//   shared.open();          // blocks this (non-I/O) thread until loaded, or the policy decides
//   shared.attach(pool);    // pool.persist_to(shared) + other processes' changes pushed into the pool
//   ...
//   shared.detach(pool);    // before either goes away
//
// A flood wait, a per-destination cooldown, a disable or an enable recorded by
// any process's pool reaches every other attached pool within one round trip:
// each change is written and published in one Lua script, and every store
// subscribes to its pool's channel. A process that starts later loads what is
// there (`open`). Nothing is polled per request: `find` reads a local mirror.
//
// Keys (one Redis Cluster slot per pool, thanks to the `{pool}` hash tag;
// credential ids only, never a token):
//   floodgate:{pool}:cooldown:<id>                whole credential; value JSON, TTL = the cooldown
//   floodgate:{pool}:scoped:<len(id)>:<id>:<dest> one destination; value JSON, TTL = the cooldown
//   floodgate:{pool}:disabled:<id>                disabled (a definite answer): no TTL, until enabled
//   channel floodgate:{pool}:events               one JSON message per change
// Expiry is Redis' own TTL: a crashed process leaves nothing that outlives
// its cooldown. TTLs, not instants, travel between processes, so hosts'
// wall clocks need not agree (a receiver counts from when it hears).
//
// Failure policy (`on_unavailable`):
// - fail_open: `open` logs a warning and returns when Redis cannot be reached
//   (or refuses the password); the pool works from this process's own
//   knowledge and the `fallback` sink (the JSON file store), which every
//   change is also written to. Changes made meanwhile are written to Redis
//   when it is back (cooldowns merge to the later end), and what others
//   wrote meanwhile is loaded then. A `clear` made while Redis is away is not
//   replayed (so the shared cooldown stays: the safe side).
// - fail_closed: `open` throws RedisError (the password redacted) instead.
// A Redis restarted without persistence loses its keys; every store writes
// its live entries back when it reconnects.
//
// Thread-safe. Sink calls never block on Redis: they update the mirror and
// the fallback and queue the write.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "floodgate/core/cooldown_sink.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/url.hpp"

namespace floodgate::redis {

struct RedisCooldownOptions {
  /// The pool's name in keys: letters, digits, '_', '-', '.' (it is the hash tag).
  std::string pool_name = "default";
  FailurePolicy on_unavailable = FailurePolicy::fail_open;
  /// A local sink (usually a CooldownStore file) kept up to date with every
  /// change and consulted by `find`: what survives when Redis does not.
  CooldownSink* fallback = nullptr;
  /// How long `open` waits for the first load.
  std::chrono::milliseconds open_timeout{3000};
  RedisClientOptions client;
};

/// One change heard from another process, as applied to an attached pool.
struct CooldownChange {
  enum class Kind { cooldown, scoped_cooldown, clear, disable, enable };
  Kind kind = Kind::cooldown;
  std::string id;
  std::string destination;           ///< scoped_cooldown
  CooldownRecord::WallTime until{};  ///< cooldown, scoped_cooldown
  std::string reason;                ///< disable
};

class RedisCooldownStore final : public CooldownSink {
 public:
  /// Throws floodgate::Error for an invalid pool name or unusable TLS options.
  RedisCooldownStore(boost::asio::any_io_executor executor, RedisUrl url, RedisCooldownOptions options = {});
  ~RedisCooldownStore() override;
  RedisCooldownStore(const RedisCooldownStore&) = delete;
  RedisCooldownStore& operator=(const RedisCooldownStore&) = delete;

  /// Connects and loads the pool's records. Blocks the calling thread (never
  /// call it on the executor's own thread) for at most `open_timeout`.
  /// Returns true when loaded from Redis; false when Redis is unavailable and
  /// the policy is fail_open (a warning is logged); throws RedisError when it
  /// is fail_closed.
  bool open();

  /// `pool.persist_to(*this)`, and changes from other processes applied to
  /// `pool` as they arrive. One pool per store.
  template <class Pool>
  void attach(Pool& pool) {
    pool.persist_to(*this);
    on_change([&pool](const CooldownChange& change) {
      using Kind = CooldownChange::Kind;
      using Wait = typename Pool::duration;
      auto wait = [&] {
        return std::chrono::duration_cast<Wait>(change.until - std::chrono::system_clock::now());
      };
      switch (change.kind) {
        case Kind::cooldown: pool.cooldown(change.id, wait()); break;
        case Kind::scoped_cooldown: pool.cooldown(change.id, change.destination, wait()); break;
        case Kind::clear: pool.clear_cooldown(change.id); break;
        case Kind::disable: pool.disable(change.id, change.reason); break;
        case Kind::enable: pool.enable(change.id); break;
      }
    });
  }

  /// Undoes `attach`: when it returns, the store no longer calls into `pool`
  /// and the pool no longer calls into the store.
  template <class Pool>
  void detach(Pool& pool) {
    on_change(nullptr);
    pool.stop_persisting();
  }

  /// Runs `handler` for each change another process makes (on the I/O
  /// thread); the pool's calls back into this sink are not written again.
  /// Setting nullptr waits for a running handler.
  void on_change(std::function<void(const CooldownChange&)> handler);

  /// True while both connections to Redis are up and the records loaded.
  bool shared() const noexcept;

  /// Stops: closes the connections; writes still queued end unsent. Waits
  /// for a change from another process being applied; when it returns, the
  /// store calls neither `fallback` nor the `on_change` handler again (not
  /// even for a load reply already read), so both may be destroyed next.
  /// The destructor runs it.
  void close();

  // ---- CooldownSink ----
  std::optional<CooldownRecord> find(std::string_view id) const override;
  void set_cooldown(std::string_view id, WallTime until) override;
  void set_scoped_cooldown(std::string_view id, std::string_view destination, WallTime until) override;
  void clear_cooldowns(std::string_view id) override;
  void set_disabled(std::string_view id, std::string_view reason) override;
  void set_enabled(std::string_view id) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::redis
