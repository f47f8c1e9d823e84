// TickerManager: the placement of tokens on one key's connections, under a
// mutex, plus a mirror of each connection's state from which the key's health
// is derived. The connections do the I/O; their methods only post, so calling
// them under the mutex keeps the order of concurrent calls without blocking.
#include <floodgate/kite/ticker_manager.hpp>

#include <floodgate/core/log.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace floodgate::kite {

std::string_view to_string(KeyHealth health) noexcept {
  switch (health) {
    case KeyHealth::idle: return "idle";
    case KeyHealth::live: return "live";
    case KeyHealth::degraded: return "degraded";
    case KeyHealth::down: return "down";
    case KeyHealth::failed: return "failed";
    case KeyHealth::stopped: return "stopped";
  }
  return "?";
}

namespace {

struct Placement {
  std::size_t connection = 0;
  Mode mode = Mode::quote;
};

void check_limit(std::string_view what, std::size_t value, std::size_t kite_limit) {
  if (value == 0 || value > kite_limit) {
    throw Error(fmt::format("{} must be between 1 and {} (Kite's limit), not {}", what, kite_limit, value));
  }
}

}  // namespace

struct TickerManager::Impl {
  Impl(std::string key_id, TickerManagerOptions opts, MessageHandler message_handler,
       HealthHandler health_handler)
      : id(std::move(key_id)),
        options(std::move(opts)),
        on_message(std::move(message_handler)),
        on_health(std::move(health_handler)),
        load(options.max_connections, 0),
        connection_states(options.max_connections, ConnectionState::idle) {}

  KeyHealth health_locked() const {
    if (stopped) return KeyHealth::stopped;
    if (!started) return KeyHealth::idle;
    const auto connected = std::count(connection_states.begin(), connection_states.end(), ConnectionState::connected);
    const auto finished = std::count_if(connection_states.begin(), connection_states.end(), is_final);
    if (static_cast<std::size_t>(connected) == connection_states.size()) return KeyHealth::live;
    if (connected > 0) return KeyHealth::degraded;
    if (static_cast<std::size_t>(finished) == connection_states.size()) return KeyHealth::failed;
    return KeyHealth::down;
  }

  // ---- messages and events (on a connection's strand, no lock held) ----------

  void deliver(TickBatch&& batch) {
    if (options.callbacks.on_ticks) options.callbacks.on_ticks(batch);
    if (on_message) on_message(TickerMessage{detail::TickBatchPool::of(batch)->shared_source(), std::move(batch)});
  }

  void deliver_text(std::size_t index, TextMessage&& text) {
    const MessageSource& source = *sources[index];
    const TickerCallbacks& callbacks = options.callbacks;
    if (text.type == TextMessage::Type::order && callbacks.on_order_update) callbacks.on_order_update(source, text.data);
    if (text.type == TextMessage::Type::error && callbacks.on_error) {
      callbacks.on_error(source, make_error_code(errc::bad_request),
                         text.data.is_string() ? text.data.get_ref<const std::string&>() : std::string_view());
    }
    if (on_message) on_message(TickerMessage{sources[index], std::move(text)});
  }

  // The official clients' connection events, from a state change.
  void report_event(std::size_t index, ConnectionState before, ConnectionState state, std::error_code reason) const {
    const MessageSource& source = *sources[index];
    const TickerCallbacks& callbacks = options.callbacks;
    if (state == ConnectionState::connected) {
      if (callbacks.on_connect) callbacks.on_connect(source);
      return;
    }
    if (state == ConnectionState::stopped) return;
    if (before == ConnectionState::connected) {
      if (callbacks.on_close) callbacks.on_close(source, reason);
    } else if (reason && callbacks.on_error) {
      callbacks.on_error(source, reason, "connection attempt failed");
    }
    if ((state == ConnectionState::gave_up || state == ConnectionState::auth_failed) && callbacks.on_noreconnect) {
      callbacks.on_noreconnect(source, reason);
    }
  }

  void on_connection_state(std::size_t index, ConnectionState state, std::error_code reason) {
    KeyHealth before, after;
    ConnectionState previous;
    bool report_auth_failure = false;
    {
      std::lock_guard lock(mutex);
      before = health_locked();
      previous = connection_states[index];
      connection_states[index] = state;
      if (is_final(state) && !stopped) move_off_locked(index);
      if (state == ConnectionState::auth_failed && !stopped && !auth_failure_reported) {
        auth_failure_reported = true;
        report_auth_failure = true;
      }
      after = health_locked();
    }
    report_event(index, previous, state, reason);
    if (before != after && on_health) on_health(after);
    if (report_auth_failure && options.on_auth_failed) options.on_auth_failed(id);
  }

  // A connection that stopped trying for good (it gave up, or was refused)
  // hands its instruments to the key's connections that still stream or try,
  // as far as they have room. What does not fit stays, and leaves with the
  // whole key if the multi-API manager fails it over.
  void move_off_locked(std::size_t from) {
    std::map<std::pair<std::size_t, Mode>, std::vector<std::uint32_t>> batches;  // (to, mode) -> tokens
    std::vector<std::uint32_t> moved;
    for (auto& [token, where] : placement) {
      if (where.connection != from) continue;
      const std::size_t to = least_loaded_live();
      if (to == load.size()) break;
      --load[from];
      ++load[to];
      where.connection = to;
      batches[{to, where.mode}].push_back(token);
      moved.push_back(token);
    }
    if (moved.empty()) return;
    connections[from]->unsubscribe(moved);
    for (auto& [target, tokens] : batches) connections[target.first]->subscribe(std::move(tokens), target.second);
    log(LogLevel::warning, "Kite key {}: connection {} stopped trying; moved {} instruments to its other connections",
        id, from, moved.size());
  }

  // The least loaded connection with room that can still stream; load.size()
  // when there is none.
  std::size_t least_loaded_live() const {
    std::size_t best = load.size();
    for (std::size_t i = 0; i < load.size(); ++i) {
      if (load[i] >= options.max_instruments_per_connection || is_final(connection_states[i])) continue;
      if (best == load.size() || load[i] < load[best]) best = i;
    }
    return best;
  }

  // The connection that should take the next token: the least loaded one that
  // can still stream (final connections only when every one is final).
  std::size_t least_loaded() const {
    std::size_t best = least_loaded_live();
    if (best != load.size()) return best;
    for (std::size_t i = 0; i < load.size(); ++i) {
      if (load[i] < options.max_instruments_per_connection && (best == load.size() || load[i] < load[best])) best = i;
    }
    return best;
  }

  std::size_t capacity() const { return options.max_connections * options.max_instruments_per_connection; }

  // For each of `tokens` that is subscribed: `update(placement iterator)`,
  // then one `send(connection, batch)` per connection with the batch of its
  // tokens. Returns how many were subscribed. Mutex held.
  template <class Update, class Send>
  std::size_t for_subscribed(std::span<const std::uint32_t> tokens, Update update, Send send) {
    std::vector<std::vector<std::uint32_t>> batches(connections.size());
    std::size_t found = 0;
    for (const auto token : tokens) {
      const auto placed = placement.find(token);
      if (placed == placement.end()) continue;
      batches[placed->second.connection].push_back(token);
      update(placed);
      ++found;
    }
    for (std::size_t i = 0; i < connections.size(); ++i) {
      if (!batches[i].empty()) send(*connections[i], std::move(batches[i]));
    }
    return found;
  }

  const std::string id;
  const TickerManagerOptions options;
  const MessageHandler on_message;
  const HealthHandler on_health;
  std::vector<std::unique_ptr<TickerConnection>> connections;
  std::vector<std::shared_ptr<const MessageSource>> sources;  // per connection, shared with its pool

  mutable std::mutex mutex;
  std::unordered_map<std::uint32_t, Placement> placement;
  std::vector<std::size_t> load;  // tokens per connection
  std::vector<ConnectionState> connection_states;
  bool started = false;
  bool stopped = false;
  std::chrono::steady_clock::time_point started_at{};
  bool auth_failure_reported = false;  // on_auth_failed called since the last token update
};

TickerManager::TickerManager(const boost::asio::any_io_executor& executor, std::string id, const KiteKey& key,
                                     TickerManagerOptions options, MessageHandler on_message,
                                     HealthHandler on_health) {
  check_limit("max_connections", options.max_connections, kite_max_connections_per_key);
  check_limit("max_instruments_per_connection", options.max_instruments_per_connection, kite_max_instruments_per_connection);
  impl_ = std::make_shared<Impl>(std::move(id), std::move(options), std::move(on_message), std::move(on_health));

  // The handlers hold the Impl weakly: a connection's strand may still call
  // one while the manager is being destroyed. Each connection decodes into its
  // own pool, which outlives both while a batch of it is held.
  const std::weak_ptr<Impl> weak = impl_;
  for (std::size_t i = 0; i < impl_->options.max_connections; ++i) {
    auto pool = std::make_shared<detail::TickBatchPool>(MessageSource{impl_->id, i}, impl_->options.batches_kept);
    impl_->sources.push_back(pool->shared_source());
    TickerConnection::Handlers handlers{
        .on_frame =
            [weak, pool](const FrameView& frame) {
              const auto impl = weak.lock();
              if (!impl) return;
              auto filling = pool->take();
              auto& ticks = filling.ticks();
              ticks.reserve(frame.size());  // a block new to the pool: one allocation, not one per doubling
              for (const PacketView packet : frame) ticks.push_back(packet.decode());
              impl->deliver(pool->publish(filling));
            },
        .on_text = [weak, i](TextMessage&& text) { if (const auto impl = weak.lock()) impl->deliver_text(i, std::move(text)); },
        .on_state =
            [weak, i](ConnectionState state, std::error_code reason) {
              if (const auto impl = weak.lock()) impl->on_connection_state(i, state, reason);
            },
        .on_reconnect =
            [weak, i](std::size_t failures, std::chrono::milliseconds delay) {
              const auto impl = weak.lock();
              if (impl && impl->options.callbacks.on_reconnect) {
                impl->options.callbacks.on_reconnect(*impl->sources[i], failures, delay);
              }
            },
    };
    impl_->connections.push_back(std::make_unique<TickerConnection>(
        executor, fmt::format("{}#{}", impl_->id, i), key, impl_->options.connection, std::move(handlers)));
  }
}

TickerManager::~TickerManager() { stop(); }

void TickerManager::start() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->started || impl_->stopped) return;
    impl_->started = true;
    impl_->started_at = std::chrono::steady_clock::now();
  }
  // idle -> down until a connection is up. Reported here because no connection
  // state change does it for a key whose connections never come up (a key
  // the multi-API manager must then fail over).
  if (impl_->on_health) impl_->on_health(KeyHealth::down);
  for (auto& connection : impl_->connections) connection->start();
}

void TickerManager::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  for (auto& connection : impl_->connections) connection->stop();
  if (impl_->on_health) impl_->on_health(KeyHealth::stopped);
}

void TickerManager::subscribe(std::span<const std::uint32_t> tokens, Mode mode) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  if (m.stopped) throw Error(fmt::format("{}: cannot subscribe after stop()", m.id));

  std::vector<std::uint32_t> fresh;
  std::vector<std::vector<std::uint32_t>> mode_changes(m.connections.size());
  std::unordered_set<std::uint32_t> seen;
  for (const auto token : tokens) {
    if (!seen.insert(token).second) continue;
    if (const auto it = m.placement.find(token); it != m.placement.end()) {
      if (it->second.mode != mode) mode_changes[it->second.connection].push_back(token);
    } else {
      fresh.push_back(token);
    }
  }
  const std::size_t free = m.capacity() - m.placement.size();
  if (fresh.size() > free) {
    throw CapacityError(fmt::format("{} cannot take {} more instruments: {} connections x {} = {}, {} subscribed, {} free",
                                    m.id, fresh.size(), m.options.max_connections,
                                    m.options.max_instruments_per_connection, m.capacity(), m.placement.size(), free),
                        fresh.size(), free);
  }

  std::vector<std::vector<std::uint32_t>> batches(m.connections.size());
  for (const auto token : fresh) {
    const std::size_t target = m.least_loaded();
    ++m.load[target];
    m.placement.emplace(token, Placement{target, mode});
    batches[target].push_back(token);
  }
  for (std::size_t i = 0; i < m.connections.size(); ++i) {
    for (const auto token : mode_changes[i]) m.placement[token].mode = mode;
    if (!batches[i].empty()) m.connections[i]->subscribe(std::move(batches[i]), mode);
    if (!mode_changes[i].empty()) m.connections[i]->set_mode(std::move(mode_changes[i]), mode);
  }
}

std::size_t TickerManager::unsubscribe(std::span<const std::uint32_t> tokens) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  return m.for_subscribed(
      tokens,
      [&m](auto placed) {
        --m.load[placed->second.connection];
        m.placement.erase(placed);
      },
      [](TickerConnection& connection, std::vector<std::uint32_t> batch) {
        connection.unsubscribe(std::move(batch));
      });
}

std::size_t TickerManager::change_mode(std::span<const std::uint32_t> tokens, Mode mode) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  return m.for_subscribed(
      tokens, [mode](auto placed) { placed->second.mode = mode; },
      [mode](TickerConnection& connection, std::vector<std::uint32_t> batch) {
        connection.set_mode(std::move(batch), mode);
      });
}

void TickerManager::update_access_token(const Secret& access_token) {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  m.auth_failure_reported = false;
  // Checked (and thrown) by the first connection, before any is changed.
  for (auto& connection : m.connections) connection->update_access_token(access_token);
}

std::vector<std::pair<std::uint32_t, Mode>> TickerManager::release_all() {
  Impl& m = *impl_;
  std::lock_guard lock(m.mutex);
  std::vector<std::pair<std::uint32_t, Mode>> released;
  std::vector<std::vector<std::uint32_t>> batches(m.connections.size());
  released.reserve(m.placement.size());
  for (const auto& [token, where] : m.placement) {
    released.emplace_back(token, where.mode);
    batches[where.connection].push_back(token);
  }
  m.placement.clear();
  std::fill(m.load.begin(), m.load.end(), 0);
  for (std::size_t i = 0; i < m.connections.size(); ++i) {
    if (!batches[i].empty()) m.connections[i]->unsubscribe(std::move(batches[i]));
  }
  std::sort(released.begin(), released.end());
  return released;
}

bool TickerManager::is_subscribed(std::uint32_t token) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->placement.contains(token);
}

std::size_t TickerManager::instrument_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->placement.size();
}

std::size_t TickerManager::capacity() const noexcept { return impl_->capacity(); }

KeyHealth TickerManager::health() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->health_locked();
}

KeyStats TickerManager::stats() const {
  KeyStats out;
  out.id = impl_->id;
  out.capacity = impl_->capacity();
  {
    std::lock_guard lock(impl_->mutex);
    out.health = impl_->health_locked();
    out.instruments = impl_->placement.size();
    if (impl_->started) {
      out.uptime = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                         impl_->started_at);
    }
  }
  for (const auto& connection : impl_->connections) {
    out.connections.push_back(connection->stats());
    const ConnectionStats& c = out.connections.back();
    out.ticks += c.ticks;
    out.reconnects += c.reconnects;
    out.malformed_frames += c.malformed_frames;
    out.unknown_packets += c.unknown_packets;
    out.failed_attempts += c.failed_attempts;
    out.watchdog_timeouts += c.watchdog_timeouts;
  }
  return out;
}

std::vector<std::vector<std::uint32_t>> TickerManager::distribution() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::vector<std::uint32_t>> out(impl_->connections.size());
  for (const auto& [token, where] : impl_->placement) out[where.connection].push_back(token);
  for (auto& tokens : out) std::sort(tokens.begin(), tokens.end());
  return out;
}

HealthSnapshot health_snapshot(const KeyStats& stats) {
  HealthSnapshot out;
  out.id = stats.id;
  std::uint64_t connects = 0;
  for (const auto& connection : stats.connections) connects += connection.connects;
  out.successes = connects;
  out.failures = stats.failed_attempts;
  out.requests = connects + stats.failed_attempts;
  out.smoothed_success_rate = out.success_ratio();
  switch (stats.health) {
    case KeyHealth::idle:
    case KeyHealth::live:
    case KeyHealth::degraded: out.state = CredentialState::ready; break;
    case KeyHealth::down:
      out.state = CredentialState::ejected;
      out.cooldown_until = std::chrono::system_clock::now();  // its connections are dialling: no later bound
      for (const auto& connection : stats.connections) {
        out.ejections = std::max(out.ejections, static_cast<std::uint32_t>(connection.failures_in_a_row));
      }
      break;
    case KeyHealth::failed:
    case KeyHealth::stopped: {
      out.state = CredentialState::disabled;
      const bool refused = std::any_of(stats.connections.begin(), stats.connections.end(), [](const ConnectionStats& c) {
        return c.state == ConnectionState::auth_failed;
      });
      out.disabled_reason = stats.health == KeyHealth::stopped ? "stopped"
                            : refused                         ? "access token refused"
                                                              : "reconnect attempts used up";
      break;
    }
  }
  return out;
}

const std::string& TickerManager::id() const noexcept { return impl_->id; }

}  // namespace floodgate::kite
