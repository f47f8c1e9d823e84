// MultiKeyTickerManager: which key streams which instrument (under one
// mutex), failover, keys added and removed, health checks, and the channels.
// Lock order: this manager's mutex, then a TickerManager's; the per-key
// managers call back (on_health, on_message) without holding theirs, so the
// order never inverts. A TickerManager's start() and stop() report its health
// synchronously, so they are called without this manager's mutex.
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

namespace {

// A key's connections keep as many batches as the channel can buffer: a
// backlog the channel holds, once served, allocates nothing the next time.
TickerManagerOptions per_key_options(const MultiKeyTickerManagerOptions& options) {
  TickerManagerOptions per_key = options.per_key;
  per_key.batches_kept = std::max(per_key.batches_kept, options.channel_capacity);
  return per_key;
}

}  // namespace

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

  Impl(asio::any_io_executor ex, Settings config, const MultiKeyTickerManagerOptions& options)
      : executor(std::move(ex)),
        settings(config),
        per_key(per_key_options(options)),
        channel_capacity(options.channel_capacity),
        conflate(options.conflate_ticks),
        per_connection_channels(options.per_connection_channels),
        unified(std::make_shared<ChannelFeed>(executor, channel_capacity, conflate)),
        health_timer(executor) {}

  // ---- messages (called on connection strands, no lock held) ----------------

  // `connection_feeds` are the key's own (empty unless enabled).
  void deliver(const std::vector<std::shared_ptr<ChannelFeed>>& connection_feeds, TickerMessage&& message) {
    if (const TickBatch* batch = message.ticks()) ticks.fetch_add(batch->size(), std::memory_order_relaxed);
    if (!connection_feeds.empty()) connection_feeds[message.connection()]->push(TickerMessage(message));
    unified->push(std::move(message));
  }

  // ---- keys (mutex held) --------------------------------------------------------

  std::size_t key_index(std::string_view id) const {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i]->id == id) return i;
    }
    throw Error(fmt::format("unknown Kite API key id '{}'", id));
  }
  std::shared_ptr<Key> find_key(std::string_view id) const { return keys[key_index(id)]; }

  // Builds a key whose handlers reach this manager through weak pointers (a
  // removed key's late callbacks find nothing). Throws what TickerManager throws.
  std::shared_ptr<Key> make_key(const Credential<KiteKey>& credential) {
    auto key = std::make_shared<Key>();
    key->id = credential.id;
    if (per_connection_channels) {
      for (std::size_t c = 0; c < per_key.max_connections; ++c) {
        key->connection_feeds.push_back(std::make_shared<ChannelFeed>(executor, channel_capacity, conflate));
      }
    }
    const std::weak_ptr<Impl> weak_self = weak_from_this();
    const std::weak_ptr<Key> weak_key = key;
    key->manager = std::make_unique<TickerManager>(
        executor, credential.id, credential.payload, per_key,
        [weak_self, feeds = key->connection_feeds](TickerMessage&& message) {
          if (const auto self = weak_self.lock()) self->deliver(feeds, std::move(message));
        },
        [weak_self, weak_key](KeyHealth) {
          const auto self = weak_self.lock();
          const auto reporting = weak_key.lock();
          if (self && reporting) self->on_key_health_changed(*reporting);
        });
    return key;
  }

  // ---- placement (mutex held) -------------------------------------------------

  // Places `tokens` (all new) on the keys `eligible` allows, evenly by spare
  // capacity: each token goes to the key with the most room left. Returns the
  // tokens that fit nowhere.
  template <class Eligible>
  std::vector<std::uint32_t> place(const std::vector<std::uint32_t>& tokens, Mode mode, Eligible eligible,
                                   bool count_as_moved) {
    std::vector<std::size_t> room(keys.size(), 0);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (eligible(i)) room[i] = keys[i]->manager->spare_capacity();
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
      keys[i]->manager->subscribe(batches[i], mode);  // fits: room was measured under the same lock
      for (const auto token : batches[i]) placement[token] = keys[i].get();
      if (count_as_moved) keys[i]->moved_in += batches[i].size();
    }
    return left_over;
  }

  bool can_take_new(std::size_t i) const {
    return keys[i]->health != KeyHealth::failed && keys[i]->health != KeyHealth::stopped && !keys[i]->failed_over;
  }
  bool can_take_moved(std::size_t i) const { return is_serving(keys[i]->health); }

  // Moves key i's instruments to serving keys; what fits nowhere waits.
  void fail_over(std::size_t i, std::string_view why) {
    Key& key = *keys[i];
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
  void on_key_health_changed(Key& key) {
    std::lock_guard lock(mutex);
    if (stopped) return;
    const auto found = std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.get() == &key; });
    if (found == keys.end()) return;  // removed
    const auto i = static_cast<std::size_t>(found - keys.begin());
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
        const Key& key = *keys[i];
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
  const TickerManagerOptions per_key;
  const std::size_t channel_capacity;
  const bool conflate;
  const bool per_connection_channels;
  const std::shared_ptr<ChannelFeed> unified;

  mutable std::mutex mutex;
  std::vector<std::shared_ptr<Key>> keys;
  // A removed key's per-connection feeds, closed: kept so that references
  // from connection_channel() stay valid until the manager is destroyed.
  std::vector<std::shared_ptr<ChannelFeed>> retired_feeds;
  std::unordered_map<std::uint32_t, Key*> placement;  // token -> the key in `keys` that streams it
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

namespace {

// The keys, copied under the manager's mutex, to call their managers without it.
std::vector<std::shared_ptr<MultiKeyTickerManager::Impl::Key>> keys_of(const MultiKeyTickerManager::Impl& m) {
  std::lock_guard lock(m.mutex);
  return m.keys;
}

void check_id(const std::string& id) {
  if (id.empty()) throw Error("a Kite API key id must not be empty");
}

}  // namespace

MultiKeyTickerManager::~MultiKeyTickerManager() { stop(); }

void MultiKeyTickerManager::start() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mutex);
    if (m.started || m.stopped) return;
    m.started = true;
    const auto now = Clock::now();
    m.started_at = now;
    for (auto& key : m.keys) key->not_serving_since = now;
    if (m.settings.health_monitoring) m.schedule_health_check();
  }
  for (auto& key : keys_of(m)) key->manager->start();
}

void MultiKeyTickerManager::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mutex);
    if (m.stopped) return;
    m.stopped = true;
    m.health_timer.cancel();
  }
  // A key added concurrently is either in this copy or was added after
  // `stopped` was set: add_key then starts nothing.
  for (auto& key : keys_of(m)) {
    key->manager->stop();
    for (auto& feed : key->connection_feeds) feed->close();
  }
  m.unified->close();
}

void MultiKeyTickerManager::add_key(Credential<KiteKey> credential) {
  Impl& m = *impl_;
  check_id(credential.id);
  std::shared_ptr<Impl::Key> key;
  {
    std::lock_guard lock(m.mutex);
    if (m.stopped) throw Error("cannot add a key after stop()");
    if (std::any_of(m.keys.begin(), m.keys.end(), [&](const auto& k) { return k->id == credential.id; })) {
      throw Error(fmt::format("duplicate Kite API key id '{}'", credential.id));
    }
    key = m.make_key(credential);  // throws for a key or token that cannot go into a URL
    key->not_serving_since = Clock::now();
    m.keys.push_back(key);
    if (!m.started) return;  // start() opens it
  }
  log(LogLevel::info, "Kite key {} added", key->id);
  key->manager->start();  // if stop() ran meanwhile, it stopped this key first and start does nothing
  std::lock_guard lock(m.mutex);
  if (!m.stopped) m.place_waiting();  // the new key may already serve; else its first live report places them
}

void MultiKeyTickerManager::remove_key(std::string_view api_key_id) {
  Impl& m = *impl_;
  std::shared_ptr<Impl::Key> key;
  {
    std::lock_guard lock(m.mutex);
    if (m.stopped) throw Error("cannot remove a key after stop()");
    const std::size_t index = m.key_index(api_key_id);
    key = m.keys[index];
    if (m.keys.size() == 1) {
      throw Error(fmt::format("cannot remove Kite key {}: it is the manager's last key", key->id));
    }
    // Its instruments go to the other keys that can take new ones, all or none.
    const std::size_t held = key->manager->instrument_count();
    std::size_t free = 0;
    for (std::size_t k = 0; k < m.keys.size(); ++k) {
      if (k != index && m.can_take_new(k)) free += m.keys[k]->manager->spare_capacity();
    }
    if (held > free) {
      throw CapacityError(fmt::format("cannot remove Kite key {}: its {} instruments do not fit on the other keys "
                                      "({} free on keys that can stream); unsubscribe some or add a key first",
                                      key->id, held, free),
                          held, free);
    }
    const auto released = key->manager->release_all();
    m.keys.erase(m.keys.begin() + static_cast<std::ptrdiff_t>(index));
    std::map<Mode, std::vector<std::uint32_t>> by_mode;
    for (const auto& [token, mode] : released) {
      m.placement.erase(token);
      by_mode[mode].push_back(token);
    }
    for (const auto& [mode, tokens] : by_mode) {
      const auto left_over = m.place(tokens, mode, [&](std::size_t k) { return m.can_take_new(k); }, true);
      for (const auto token : left_over) m.unplaced[token] = mode;  // never: room was counted above
    }
    m.instruments_moved.fetch_add(released.size());
    m.retired_feeds.insert(m.retired_feeds.end(), key->connection_feeds.begin(), key->connection_feeds.end());
    log(LogLevel::info, "Kite key {} removed: its {} instruments moved to the other keys", key->id, released.size());
  }
  key->manager->stop();  // its health report finds the key gone
  for (auto& feed : key->connection_feeds) feed->close();
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
  std::map<Impl::Key*, std::vector<std::uint32_t>> placed_by_key;
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
    capacity += m.keys[i]->manager->capacity();
    if (m.can_take_new(i)) free += m.keys[i]->manager->spare_capacity();
  }
  if (fresh.size() > free) {
    throw CapacityError(fmt::format("cannot place {} more instruments: {} keys can hold {} in all, {} subscribed, "
                                    "{} free on keys that can stream",
                                    fresh.size(), m.keys.size(), capacity, m.placement.size(), free),
                        fresh.size(), free);
  }
  for (auto& [key, existing] : placed_by_key) key->manager->change_mode(existing, wanted);
  m.place(fresh, wanted, [&](std::size_t k) { return m.can_take_new(k); }, false);
}

void MultiKeyTickerManager::subscribe_on(std::string_view api_key_id,
                                                         std::span<const std::uint32_t> tokens,
                                                         std::optional<Mode> mode) {
  Impl& m = *impl_;
  const Mode wanted = mode.value_or(m.settings.default_mode);
  std::lock_guard lock(m.mutex);
  if (m.stopped) throw Error("cannot subscribe after stop()");
  Impl::Key* target = m.find_key(api_key_id).get();
  for (const auto token : tokens) {
    if (const auto it = m.placement.find(token); it != m.placement.end() && it->second != target) {
      throw Error(fmt::format("instrument {} is already subscribed on key {}; unsubscribe it first", token,
                              it->second->id));
    }
  }
  target->manager->subscribe(tokens, wanted);  // all or nothing; throws CapacityError
  for (const auto token : tokens) {
    m.placement[token] = target;
    m.unplaced.erase(token);
  }
}

std::size_t MultiKeyTickerManager::unsubscribe(std::span<const std::uint32_t> tokens) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::map<Impl::Key*, std::vector<std::uint32_t>> by_key;
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
  for (auto& [key, batch] : by_key) key->manager->unsubscribe(batch);
  return removed;
}

std::size_t MultiKeyTickerManager::change_mode(std::span<const std::uint32_t> tokens, Mode mode) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::map<Impl::Key*, std::vector<std::uint32_t>> by_key;
  std::size_t changed = 0;
  for (const auto token : tokens) {
    if (const auto it = m.placement.find(token); it != m.placement.end()) {
      by_key[it->second].push_back(token);
    } else if (const auto waiting = m.unplaced.find(token); waiting != m.unplaced.end()) {
      waiting->second = mode;
      ++changed;
    }
  }
  for (auto& [key, batch] : by_key) changed += key->manager->change_mode(batch, mode);
  return changed;
}

void MultiKeyTickerManager::update_access_token(std::string_view api_key_id, const Secret& access_token) {
  std::shared_ptr<Impl::Key> key;
  {
    std::lock_guard lock(impl_->mutex);
    key = impl_->find_key(api_key_id);
  }
  key->manager->update_access_token(access_token);
}

TickerChannel& MultiKeyTickerManager::channel() noexcept { return impl_->unified->channel(); }

TickerChannel& MultiKeyTickerManager::connection_channel(std::string_view api_key_id, std::size_t connection) {
  std::lock_guard lock(impl_->mutex);
  const auto key = impl_->find_key(api_key_id);
  if (key->connection_feeds.empty()) {
    throw Error("per-connection channels are off; enable them with options.per_connection_channels");
  }
  if (connection >= key->connection_feeds.size()) {
    throw Error(fmt::format("key {} has connections 0 to {}, not {}", key->id, key->connection_feeds.size() - 1,
                            connection));
  }
  return key->connection_feeds[connection]->channel();  // outlives the key (retired_feeds)
}

namespace {

KeyStats stats_of(const MultiKeyTickerManager::Impl& m, const MultiKeyTickerManager::Impl::Key& key) {
  KeyStats stats = key.manager->stats();
  std::lock_guard lock(m.mutex);
  stats.instruments_moved_out = key.moved_out;
  stats.instruments_moved_in = key.moved_in;
  return stats;
}

}  // namespace

KeyStats MultiKeyTickerManager::key_stats(std::string_view api_key_id) const {
  std::shared_ptr<Impl::Key> key;
  {
    std::lock_guard lock(impl_->mutex);
    key = impl_->find_key(api_key_id);
  }
  return stats_of(*impl_, *key);
}

std::vector<KeyStats> MultiKeyTickerManager::all_key_stats() const {
  std::vector<KeyStats> all;
  for (const auto& key : keys_of(*impl_)) all.push_back(stats_of(*impl_, *key));
  return all;
}

ManagerStats MultiKeyTickerManager::stats() const {
  const Impl& m = *impl_;
  ManagerStats out;
  const auto keys = keys_of(m);
  out.keys = keys.size();
  for (const auto& key : keys) {
    const auto api = stats_of(m, *key);
    if (is_serving(api.health)) ++out.keys_serving;
    out.instruments += api.instruments;
    out.reconnects += api.reconnects;
    out.unknown_packets += api.unknown_packets;
    out.connections_open += static_cast<std::size_t>(
        std::count_if(api.connections.begin(), api.connections.end(),
                      [](const ConnectionStats& c) { return c.state == ConnectionState::connected; }));
    for (const auto& feed : key->connection_feeds) {
      out.messages_dropped += feed->dropped();
      out.ticks_conflated += feed->conflated();
    }
  }
  out.ticks = m.ticks.load();
  out.messages_delivered = m.unified->delivered();
  out.messages_dropped += m.unified->dropped();
  out.ticks_conflated += m.unified->conflated();
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
  for (const auto& key : keys_of(*impl_)) {
    auto& tokens = out[key->id];
    for (const auto& on_connection : key->manager->distribution()) {
      tokens.insert(tokens.end(), on_connection.begin(), on_connection.end());
    }
    std::sort(tokens.begin(), tokens.end());
  }
  return out;
}

MultiKeyTickerManager::MultiKeyTickerManager(asio::any_io_executor executor, const MultiKeyTickerManagerOptions& options) {
  if (options.keys.empty()) throw Error("a Kite ticker manager needs at least one API key (options.keys)");
  std::unordered_set<std::string> ids;
  for (const auto& key : options.keys) {
    check_id(key.id);
    if (!ids.insert(key.id).second) throw Error(fmt::format("duplicate Kite API key id '{}'", key.id));
  }
  if (options.channel_capacity == 0) throw Error("channel_capacity must be at least 1");
  if (options.health_monitoring && options.health_check_interval.count() <= 0) {
    throw Error("health_check_interval must be positive");
  }

  impl_ = std::make_shared<Impl>(std::move(executor),
                                 Impl::Settings{options.distribution, options.default_mode, options.health_monitoring,
                                                options.health_check_interval, options.failover_after},
                                 options);
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  m.keys.reserve(options.keys.size());
  for (const auto& credential : options.keys) m.keys.push_back(m.make_key(credential));
}

}  // namespace floodgate::kite
