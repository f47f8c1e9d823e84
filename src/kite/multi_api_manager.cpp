// MultiKeyTickerManager: which key streams which instrument (under one
// mutex), failover, health checks, and the channels. Lock order: this
// manager's mutex, then a TickerManager's; the per-key managers call back
// (on_health, on_message) without holding theirs, so the order never inverts.
#include <floodgate/kite/multi_api_manager.hpp>

#include <floodgate/core/log.hpp>

#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "channel_feed.hpp"

namespace floodgate::kite {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using detail::ChannelFeed;

struct MultiKeyTickerManager::Impl : std::enable_shared_from_this<Impl> {
  struct Key {
    std::string id;
    std::unique_ptr<TickerManager> manager;
    std::vector<std::shared_ptr<ChannelFeed>> connection_feeds;  // empty unless enabled
    // Guarded by Impl::mutex:
    KeyHealth health = KeyHealth::idle;
    Clock::time_point not_serving_since{};
    bool failed_over = false;  // its instruments were moved; cleared when it serves again
    std::uint64_t moved_out = 0;
    std::uint64_t moved_in = 0;
  };

  struct Settings {
    DistributionStrategy strategy;
    Mode default_mode;
    bool health_monitoring;
    std::chrono::milliseconds health_check_interval;
    std::chrono::milliseconds failover_after;
  };

  Impl(asio::any_io_executor ex, Settings config, std::size_t channel_capacity, bool conflate)
      : executor(std::move(ex)),
        settings(config),
        unified(std::make_shared<ChannelFeed>(executor, channel_capacity, conflate)),
        health_timer(executor) {}

  // ---- messages (called on connection strands, no lock held) ----------------

  void deliver(std::size_t key_index, TickerMessage&& message) {
    if (const TickBatch* batch = message.ticks()) ticks.fetch_add(batch->size(), std::memory_order_relaxed);
    Key& key = keys[key_index];
    if (!key.connection_feeds.empty()) key.connection_feeds[message.connection()]->push(TickerMessage(message));
    unified->push(std::move(message));
  }

  // ---- placement (mutex held) -------------------------------------------------

  std::size_t key_index(std::string_view id) const {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].id == id) return i;
    }
    throw Error(fmt::format("unknown Kite API key id '{}'", id));
  }

  // Places `tokens` (all new) on the keys `eligible` allows, evenly by spare
  // capacity: each token goes to the key with the most room left. Returns the
  // tokens that fit nowhere.
  template <class Eligible>
  std::vector<std::uint32_t> place(const std::vector<std::uint32_t>& tokens, Mode mode, Eligible eligible,
                                   bool count_as_moved) {
    std::vector<std::size_t> room(keys.size(), 0);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (eligible(i)) room[i] = keys[i].manager->spare_capacity();
    }
    std::vector<std::vector<std::uint32_t>> batches(keys.size());
    std::vector<std::uint32_t> left_over;
    for (const auto token : tokens) {
      const auto best = std::max_element(room.begin(), room.end());
      if (*best == 0) {
        left_over.push_back(token);
        continue;
      }
      --*best;
      batches[static_cast<std::size_t>(best - room.begin())].push_back(token);
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (batches[i].empty()) continue;
      keys[i].manager->subscribe(batches[i], mode);  // fits: room was measured under the same lock
      for (const auto token : batches[i]) placement[token] = i;
      if (count_as_moved) keys[i].moved_in += batches[i].size();
    }
    return left_over;
  }

  bool can_take_new(std::size_t i) const {
    return keys[i].health != KeyHealth::failed && keys[i].health != KeyHealth::stopped && !keys[i].failed_over;
  }
  bool can_take_moved(std::size_t i) const { return is_serving(keys[i].health); }

  // Moves key i's instruments to serving keys; what fits nowhere waits.
  void fail_over(std::size_t i, std::string_view why) {
    Key& key = keys[i];
    key.failed_over = true;
    const auto released = key.manager->release_all();
    if (released.empty()) return;
    std::map<Mode, std::vector<std::uint32_t>> by_mode;
    for (const auto& [token, mode] : released) {
      placement.erase(token);
      by_mode[mode].push_back(token);
    }
    std::size_t waiting = 0;
    for (const auto& [mode, tokens] : by_mode) {
      const auto left_over = place(tokens, mode, [&](std::size_t k) { return k != i && can_take_moved(k); }, true);
      for (const auto token : left_over) unplaced[token] = mode;
      waiting += left_over.size();
    }
    key.moved_out += released.size();
    failovers.fetch_add(1);
    instruments_moved.fetch_add(released.size() - waiting);
    log(LogLevel::warning, "Kite key {} {}: moved {} of its {} instruments to other keys, {} wait for room", key.id,
        why, released.size() - waiting, released.size(), waiting);
  }

  void place_waiting() {
    if (unplaced.empty()) return;
    std::map<Mode, std::vector<std::uint32_t>> by_mode;
    for (const auto& [token, mode] : unplaced) by_mode[mode].push_back(token);
    unplaced.clear();
    std::size_t placed = 0;
    for (const auto& [mode, tokens] : by_mode) {
      const auto left_over = place(tokens, mode, [&](std::size_t k) { return can_take_moved(k); }, true);
      for (const auto token : left_over) unplaced[token] = mode;
      placed += tokens.size() - left_over.size();
    }
    instruments_moved.fetch_add(placed);
    if (placed > 0) log(LogLevel::info, "Kite: placed {} waiting instruments, {} still wait", placed, unplaced.size());
  }

  // ---- health -----------------------------------------------------------------

  // Called on every change of key i's health. The value the key reports may
  // already be stale (its connections report from their own strands, so two
  // changes can arrive out of order): its current health is read under our lock.
  void on_key_health_changed(std::size_t i) {
    std::lock_guard lock(mutex);
    if (stopped) return;
    Key& key = keys[i];
    const KeyHealth health = key.manager->health();
    const bool was_serving = is_serving(key.health);
    key.health = health;
    if (is_serving(health)) {
      key.failed_over = false;
      place_waiting();
      return;
    }
    if (was_serving || key.not_serving_since == Clock::time_point{}) key.not_serving_since = Clock::now();
    if (health == KeyHealth::failed && settings.strategy == DistributionStrategy::round_robin) {
      fail_over(i, "stopped trying (access denied or reconnects exhausted)");
    }
  }

  void check_health() {
    std::lock_guard lock(mutex);
    if (stopped) return;
    const auto now = Clock::now();
    if (settings.strategy == DistributionStrategy::round_robin) {
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const Key& key = keys[i];
        if (is_serving(key.health) || key.failed_over || key.health == KeyHealth::idle) continue;
        if (now - key.not_serving_since >= settings.failover_after) fail_over(i, "has been down too long");
      }
    }
    place_waiting();
  }

  void schedule_health_check() {
    health_timer.expires_after(settings.health_check_interval);
    health_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      const auto self = weak.lock();
      if (ec || !self) return;
      self->check_health();
      std::lock_guard lock(self->mutex);
      if (!self->stopped) self->schedule_health_check();
    });
  }

  const asio::any_io_executor executor;
  const Settings settings;
  const std::shared_ptr<ChannelFeed> unified;
  std::vector<Key> keys;  // fixed once built

  mutable std::mutex mutex;
  std::unordered_map<std::uint32_t, std::size_t> placement;  // token -> key index
  std::map<std::uint32_t, Mode> unplaced;                     // moved off a failed key, waiting for room
  asio::steady_timer health_timer;
  bool started = false;
  bool stopped = false;
  Clock::time_point started_at{};

  std::atomic<std::uint64_t> ticks{0};
  std::atomic<std::uint64_t> failovers{0};
  std::atomic<std::uint64_t> instruments_moved{0};
};

// ---- the manager ---------------------------------------------------------------

MultiKeyTickerManager::~MultiKeyTickerManager() { stop(); }

void MultiKeyTickerManager::start() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mutex);
    if (m.started || m.stopped) return;
    m.started = true;
    const auto now = Clock::now();
    m.started_at = now;
    for (auto& key : m.keys) key.not_serving_since = now;
    if (m.settings.health_monitoring) m.schedule_health_check();
  }
  for (auto& key : m.keys) key.manager->start();
}

void MultiKeyTickerManager::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mutex);
    if (m.stopped) return;
    m.stopped = true;
    m.health_timer.cancel();
  }
  for (auto& key : m.keys) {
    key.manager->stop();
    for (auto& feed : key.connection_feeds) feed->close();
  }
  m.unified->close();
}

void MultiKeyTickerManager::subscribe(std::span<const std::uint32_t> tokens, std::optional<Mode> mode) {
  Impl& m = *impl_;
  const Mode wanted = mode.value_or(m.settings.default_mode);
  std::lock_guard lock(m.mutex);
  if (m.settings.strategy == DistributionStrategy::manual) {
    throw Error("subscribe places instruments automatically, but this manager uses manual distribution: "
                "use subscribe_on");
  }
  if (m.stopped) throw Error("cannot subscribe after stop()");

  std::vector<std::uint32_t> fresh;
  std::map<std::size_t, std::vector<std::uint32_t>> placed_by_key;
  std::unordered_set<std::uint32_t> seen;
  for (const auto token : tokens) {
    if (!seen.insert(token).second) continue;
    if (const auto it = m.placement.find(token); it != m.placement.end()) {
      placed_by_key[it->second].push_back(token);
    } else if (const auto waiting = m.unplaced.find(token); waiting != m.unplaced.end()) {
      waiting->second = wanted;
    } else {
      fresh.push_back(token);
    }
  }

  std::size_t free = 0, capacity = 0;
  for (std::size_t i = 0; i < m.keys.size(); ++i) {
    capacity += m.keys[i].manager->capacity();
    if (m.can_take_new(i)) free += m.keys[i].manager->spare_capacity();
  }
  if (fresh.size() > free) {
    throw CapacityError(fmt::format("cannot place {} more instruments: {} keys can hold {} in all, {} subscribed, "
                                    "{} free on keys that can stream",
                                    fresh.size(), m.keys.size(), capacity, m.placement.size(), free),
                        fresh.size(), free);
  }
  for (auto& [key, existing] : placed_by_key) m.keys[key].manager->change_mode(existing, wanted);
  m.place(fresh, wanted, [&](std::size_t k) { return m.can_take_new(k); }, false);
}

void MultiKeyTickerManager::subscribe_on(std::string_view api_key_id,
                                                         std::span<const std::uint32_t> tokens,
                                                         std::optional<Mode> mode) {
  Impl& m = *impl_;
  const Mode wanted = mode.value_or(m.settings.default_mode);
  std::lock_guard lock(m.mutex);
  if (m.stopped) throw Error("cannot subscribe after stop()");
  const std::size_t target = m.key_index(api_key_id);
  for (const auto token : tokens) {
    if (const auto it = m.placement.find(token); it != m.placement.end() && it->second != target) {
      throw Error(fmt::format("instrument {} is already subscribed on key {}; unsubscribe it first", token,
                              m.keys[it->second].id));
    }
  }
  m.keys[target].manager->subscribe(tokens, wanted);  // all or nothing; throws CapacityError
  for (const auto token : tokens) {
    m.placement[token] = target;
    m.unplaced.erase(token);
  }
}

std::size_t MultiKeyTickerManager::unsubscribe(std::span<const std::uint32_t> tokens) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::map<std::size_t, std::vector<std::uint32_t>> by_key;
  std::size_t removed = 0;
  for (const auto token : tokens) {
    if (const auto it = m.placement.find(token); it != m.placement.end()) {
      by_key[it->second].push_back(token);
      m.placement.erase(it);
      ++removed;
    } else {
      removed += m.unplaced.erase(token);
    }
  }
  for (auto& [key, batch] : by_key) m.keys[key].manager->unsubscribe(batch);
  return removed;
}

std::size_t MultiKeyTickerManager::change_mode(std::span<const std::uint32_t> tokens, Mode mode) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::map<std::size_t, std::vector<std::uint32_t>> by_key;
  std::size_t changed = 0;
  for (const auto token : tokens) {
    if (const auto it = m.placement.find(token); it != m.placement.end()) {
      by_key[it->second].push_back(token);
    } else if (const auto waiting = m.unplaced.find(token); waiting != m.unplaced.end()) {
      waiting->second = mode;
      ++changed;
    }
  }
  for (auto& [key, batch] : by_key) changed += m.keys[key].manager->change_mode(batch, mode);
  return changed;
}

void MultiKeyTickerManager::update_access_token(std::string_view api_key_id, Secret access_token) {
  impl_->keys[impl_->key_index(api_key_id)].manager->update_access_token(std::move(access_token));
}

TickerChannel& MultiKeyTickerManager::channel() noexcept { return impl_->unified->channel(); }

TickerChannel& MultiKeyTickerManager::connection_channel(std::string_view api_key_id, std::size_t connection) {
  auto& key = impl_->keys[impl_->key_index(api_key_id)];
  if (key.connection_feeds.empty()) {
    throw Error("per-connection channels are off; enable them with options.per_connection_channels");
  }
  if (connection >= key.connection_feeds.size()) {
    throw Error(fmt::format("key {} has connections 0 to {}, not {}", key.id, key.connection_feeds.size() - 1,
                            connection));
  }
  return key.connection_feeds[connection]->channel();
}

KeyStats MultiKeyTickerManager::key_stats(std::string_view api_key_id) const {
  const auto& key = impl_->keys[impl_->key_index(api_key_id)];
  KeyStats stats = key.manager->stats();
  std::lock_guard lock(impl_->mutex);
  stats.instruments_moved_out = key.moved_out;
  stats.instruments_moved_in = key.moved_in;
  return stats;
}

std::vector<KeyStats> MultiKeyTickerManager::all_key_stats() const {
  std::vector<KeyStats> all;
  for (const auto& key : impl_->keys) all.push_back(key_stats(key.id));
  return all;
}

ManagerStats MultiKeyTickerManager::stats() const {
  const Impl& m = *impl_;
  ManagerStats out;
  out.keys = m.keys.size();
  for (const auto& api : all_key_stats()) {
    if (is_serving(api.health)) ++out.keys_serving;
    out.instruments += api.instruments;
    out.reconnects += api.reconnects;
    out.unknown_packets += api.unknown_packets;
    out.connections_open += static_cast<std::size_t>(
        std::count_if(api.connections.begin(), api.connections.end(),
                      [](const ConnectionStats& c) { return c.state == ConnectionState::connected; }));
  }
  out.ticks = m.ticks.load();
  out.messages_delivered = m.unified->delivered();
  out.messages_dropped = m.unified->dropped();
  out.ticks_conflated = m.unified->conflated();
  for (const auto& key : m.keys) {
    for (const auto& feed : key.connection_feeds) {
      out.messages_dropped += feed->dropped();
      out.ticks_conflated += feed->conflated();
    }
  }
  out.failovers = m.failovers.load();
  out.instruments_moved = m.instruments_moved.load();
  std::lock_guard lock(m.mutex);
  out.unplaced_instruments = m.unplaced.size();
  if (m.started) out.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - m.started_at);
  return out;
}

std::vector<HealthSnapshot> MultiKeyTickerManager::snapshot() const {
  std::vector<HealthSnapshot> out;
  for (const auto& api : all_key_stats()) out.push_back(health_snapshot(api));
  return out;
}

std::map<std::string, std::vector<std::uint32_t>> MultiKeyTickerManager::distribution() const {
  std::map<std::string, std::vector<std::uint32_t>> out;
  for (const auto& key : impl_->keys) {
    auto& tokens = out[key.id];
    for (const auto& on_connection : key.manager->distribution()) {
      tokens.insert(tokens.end(), on_connection.begin(), on_connection.end());
    }
    std::sort(tokens.begin(), tokens.end());
  }
  return out;
}

MultiKeyTickerManager::MultiKeyTickerManager(asio::any_io_executor executor, MultiKeyTickerManagerOptions options) {
  if (options.keys.empty()) throw Error("a Kite ticker manager needs at least one API key (options.keys)");
  std::unordered_set<std::string> ids;
  for (const auto& key : options.keys) {
    if (key.id.empty()) throw Error("a Kite API key id must not be empty");
    if (!ids.insert(key.id).second) throw Error(fmt::format("duplicate Kite API key id '{}'", key.id));
  }
  if (options.channel_capacity == 0) throw Error("channel_capacity must be at least 1");
  if (options.health_monitoring && options.health_check_interval.count() <= 0) {
    throw Error("health_check_interval must be positive");
  }

  impl_ = std::make_shared<Impl>(executor,
                                 Impl::Settings{options.distribution, options.default_mode, options.health_monitoring,
                                                options.health_check_interval, options.failover_after},
                                 options.channel_capacity, options.conflate_ticks);
  Impl& m = *impl_;
  m.keys.reserve(options.keys.size());
  const std::weak_ptr<Impl> weak = impl_;
  for (std::size_t i = 0; i < options.keys.size(); ++i) {
    Impl::Key key;
    key.id = options.keys[i].id;
    key.manager = std::make_unique<TickerManager>(
        executor, options.keys[i].id, options.keys[i].payload, options.per_key,
        [weak, i](TickerMessage&& message) {
          if (const auto self = weak.lock()) self->deliver(i, std::move(message));
        },
        [weak, i](KeyHealth) {
          if (const auto self = weak.lock()) self->on_key_health_changed(i);
        });
    if (options.per_connection_channels) {
      for (std::size_t c = 0; c < options.per_key.max_connections; ++c) {
        key.connection_feeds.push_back(
            std::make_shared<ChannelFeed>(executor, options.channel_capacity, options.conflate_ticks));
      }
    }
    m.keys.push_back(std::move(key));
  }
}

}  // namespace floodgate::kite
