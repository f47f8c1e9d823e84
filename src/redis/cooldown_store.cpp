// RedisCooldownStore: a mirror of the pool's shared records, kept current by
// the events channel and by a full load after every (re)connection. Writes
// are Lua scripts that change a key and publish the change in one step, and
// publish only what changes something, so a write echoed back is a no-op.
#include "floodgate/redis/cooldown_store.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <random>
#include <vector>

#include "floodgate/async/detail/open_latch.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/redis/keys.hpp"

namespace floodgate::redis {
namespace {

using WallTime = CooldownRecord::WallTime;
using Millis = std::chrono::milliseconds;

// KEYS[1] the cooldown key; ARGV ttl_ms, value, channel, message.
// Keeps the later of two cooldowns; publishes only a lengthened one.
const Script kSetCooldown(R"lua(
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ttl then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
)lua");

// KEYS[1] the whole-credential key; ARGV scoped-key pattern, channel, message.
const Script kClear(R"lua(
local removed = redis.call('DEL', KEYS[1])
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = page[1]
  for _, k in ipairs(page[2]) do removed = removed + redis.call('DEL', k) end
until cursor == '0'
if removed > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return removed
)lua");

// KEYS[1] the disabled key; ARGV value, channel, message.
const Script kDisable(R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
)lua");

// KEYS[1] the disabled key; ARGV channel, message.
const Script kEnable(R"lua(
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
)lua");

// KEYS: keys found by SCAN. Returns {value, pttl} for each (value '' when gone).
const Script kRead(R"lua(
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.pcall('GET', k)
  if type(v) ~= 'string' then v = '' end
  out[i] = {v, redis.call('PTTL', k)}
end
return out
)lua");

thread_local const void* applying_remote = nullptr;  // the store whose listener is running here

std::int64_t ttl_ms(WallTime until, WallTime now) {
  const auto left = std::chrono::ceil<Millis>(until - now).count();
  return std::max<std::int64_t>(left, 0);
}

bool later(const std::optional<WallTime>& current, WallTime until) { return !current || *current < until; }

std::string random_origin() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

}  // namespace

struct RedisCooldownStore::Impl : std::enable_shared_from_this<RedisCooldownStore::Impl> {
  Impl(boost::asio::any_io_executor executor, RedisUrl url, RedisCooldownOptions o)
      : options(std::move(o)),
        keys(options.pool_name),
        commands(executor, url, options.client),
        events(executor, std::move(url), options.client),
        origin(random_origin()) {}

  void start() {
    std::weak_ptr<Impl> weak = weak_from_this();
    events.subscribe(keys.channel(), [weak](std::string_view message) {
      if (auto self = weak.lock()) self->on_message(message);
    });
    auto ready = [weak] {
      if (auto self = weak.lock()) self->sync();
    };
    auto down = [weak](std::error_code ec) {
      if (auto self = weak.lock()) self->on_down(ec);
    };
    events.on_ready(ready);
    commands.on_ready(ready);
    events.on_down(down);
    commands.on_down(down);
    commands.start();
    events.start();
  }

  // ---- opening ----

  enum class OpenState { pending, loaded, failed };

  void finish_open(OpenState state, std::error_code ec = {}) {
    std::lock_guard lock(open_mutex);
    if (open_state != OpenState::pending) return;
    open_state = state;
    open_error = ec;
    open_done.notify_all();
  }

  void on_down(std::error_code ec) {
    loaded.store(false);
    finish_open(OpenState::failed, ec);
  }

  // ---- sharing ----

  // After a (re)connection: write back what this process holds (Redis may have
  // restarted empty, or missed writes made while it was away), then load.
  void sync() {
    if (!commands.connected() || !events.connected() || closed.load()) return;
    {
      std::lock_guard lock(mutex);
      if (syncing) {
        sync_again = true;
        return;
      }
      syncing = true;
      sync_again = false;
    }
    write_back();
    scan("0");
  }

  void write_back() {
    Entries snapshot;
    {
      std::lock_guard lock(mutex);
      snapshot = mirror;
    }
    const auto now = std::chrono::system_clock::now();
    for (const auto& [id, record] : snapshot) {
      if (record.cooldown_until && *record.cooldown_until > now) write_cooldown(id, {}, *record.cooldown_until, now);
      for (const auto& [destination, until] : record.scoped) {
        if (until > now) write_cooldown(id, destination, until, now);
      }
      if (record.disabled) write_disabled(id, record.disabled_reason);
    }
  }

  void scan(const std::string& cursor) {
    commands.async_command(
        {"SCAN", cursor, "MATCH", keys.state_pattern(), "COUNT", "1000"},
        [self = shared_from_this()](std::error_code ec, RedisReply page) {
          if (ec || page.is_error() || page.elements.size() != 2) return self->sync_failed(ec, page);
          std::string next = page.elements[0].text;
          std::vector<std::string> found;
          for (auto& k : page.elements[1].elements) {
            found.push_back(std::move(k.text));
          }
          if (found.empty()) return self->scanned(next);
          self->commands.async_eval(kRead, found, {}, [self, found, next](std::error_code rec, RedisReply values) {
            if (rec || values.is_error() || values.elements.size() != found.size()) {
              return self->sync_failed(rec, values);
            }
            for (std::size_t i = 0; i < found.size(); ++i) {
              const auto& pair = values.elements[i].elements;
              if (pair.size() == 2) self->load_key(found[i], pair[0].text, pair[1].integer);
            }
            self->scanned(next);
          });
        });
  }

  void scanned(const std::string& next) {
    if (next != "0") return scan(next);
    bool again = false;
    {
      std::lock_guard lock(mutex);
      syncing = false;
      again = std::exchange(sync_again, false);
    }
    loaded.store(true);
    finish_open(OpenState::loaded);
    if (again) sync();
  }

  void sync_failed(std::error_code ec, const RedisReply& reply) {
    log(LogLevel::warning, "Redis cooldown store {}: loading failed: {}", options.pool_name,
        ec ? ec.message() : reply.text);
    {
      std::lock_guard lock(mutex);
      syncing = false;
    }
    // The connection that failed reconnects and calls sync again.
  }

  // One key read back by the load: its value says whose it is, its TTL how long.
  void load_key(const std::string& key, const std::string& value, std::int64_t pttl) {
    const auto kind = keys.kind_of(key);
    const auto doc = nlohmann::json::parse(value, nullptr, false);
    if (!kind || doc.is_discarded() || !doc.is_object() || !doc.contains("id") || !doc["id"].is_string()) {
      log(LogLevel::warning, "Redis cooldown store {}: ignoring a malformed entry", options.pool_name);
      return;
    }
    CooldownChange change;
    change.id = doc["id"].get<std::string>();
    const auto until = std::chrono::system_clock::now() + Millis(pttl);
    switch (*kind) {
      case Keys::Kind::cooldown:
        if (pttl <= 0) return;
        change.kind = CooldownChange::Kind::cooldown;
        change.until = until;
        break;
      case Keys::Kind::scoped:
        if (pttl <= 0 || !doc.contains("dest") || !doc["dest"].is_string()) return;
        change.kind = CooldownChange::Kind::scoped_cooldown;
        change.destination = doc["dest"].get<std::string>();
        change.until = until;
        break;
      case Keys::Kind::disabled:
        change.kind = CooldownChange::Kind::disable;
        if (doc.contains("reason") && doc["reason"].is_string()) change.reason = doc["reason"].get<std::string>();
        break;
    }
    apply_remote(change);
  }

  void on_message(std::string_view message) {
    const auto doc = nlohmann::json::parse(message, nullptr, false);
    auto text = [&](const char* field) -> std::optional<std::string> {
      if (!doc.contains(field) || !doc[field].is_string()) return std::nullopt;
      return doc[field].get<std::string>();
    };
    if (doc.is_discarded() || !doc.is_object()) return malformed();
    const auto op = text("op");
    const auto id = text("id");
    if (!op || !id) return malformed();
    if (text("origin") == origin) return;  // our own change, already applied
    CooldownChange change;
    change.id = *id;
    if (*op == "cooldown" || *op == "scoped") {
      if (!doc.contains("ttl_ms") || !doc["ttl_ms"].is_number_integer()) return malformed();
      change.kind = *op == "cooldown" ? CooldownChange::Kind::cooldown : CooldownChange::Kind::scoped_cooldown;
      change.until = std::chrono::system_clock::now() + Millis(doc["ttl_ms"].get<std::int64_t>());
      if (*op == "scoped") {
        auto dest = text("dest");
        if (!dest) return malformed();
        change.destination = *dest;
      }
    } else if (*op == "clear") {
      change.kind = CooldownChange::Kind::clear;
    } else if (*op == "disable") {
      change.kind = CooldownChange::Kind::disable;
      change.reason = text("reason").value_or("");
    } else if (*op == "enable") {
      change.kind = CooldownChange::Kind::enable;
    } else {
      return malformed();
    }
    apply_remote(change);
  }

  void malformed() { log(LogLevel::warning, "Redis cooldown store {}: ignoring a malformed event", options.pool_name); }

  // A change from elsewhere: into the mirror and the fallback, then the pool,
  // whose calls back into this sink are recognised and not written again.
  void apply_remote(const CooldownChange& change) {
    using Kind = CooldownChange::Kind;
    bool news = false;
    {
      std::lock_guard lock(mutex);
      CooldownRecord& r = mirror[change.id];
      switch (change.kind) {
        case Kind::cooldown:
          news = later(r.cooldown_until, change.until);
          if (news) r.cooldown_until = change.until;
          break;
        case Kind::scoped_cooldown: {
          auto it = r.scoped.find(change.destination);
          news = it == r.scoped.end() || it->second < change.until;
          if (news) r.scoped[change.destination] = change.until;
          break;
        }
        case Kind::clear:
          news = r.cooldown_until || !r.scoped.empty();
          r.cooldown_until.reset();
          r.scoped.clear();
          break;
        case Kind::disable:
          news = !r.disabled;
          r.disabled = true;
          r.disabled_reason = change.reason;
          break;
        case Kind::enable:
          news = r.disabled;
          r.disabled = false;
          r.disabled_reason.clear();
          break;
      }
    }
    if (!news) return;
    // A reply already queued when close() ran still comes here: the fallback
    // and the pool may be gone right after close(), so not past the latch.
    open.run_if_open([&] {
      if (auto* fallback = options.fallback) {
        switch (change.kind) {
          case Kind::cooldown: fallback->set_cooldown(change.id, change.until); break;
          case Kind::scoped_cooldown: fallback->set_scoped_cooldown(change.id, change.destination, change.until); break;
          case Kind::clear: fallback->clear_cooldowns(change.id); break;
          case Kind::disable: fallback->set_disabled(change.id, change.reason); break;
          case Kind::enable: fallback->set_enabled(change.id); break;
        }
      }
      std::lock_guard lock(listener_mutex);
      if (!listener) return;
      applying_remote = this;
      try {
        listener(change);
      } catch (const std::exception& e) {
        log(LogLevel::warning, "Redis cooldown store {}: applying a change failed: {}", options.pool_name, e.what());
      }
      applying_remote = nullptr;
    });
  }

  // ---- writes ----

  nlohmann::json event(const char* op, std::string_view id) const {
    return {{"op", op}, {"id", id}, {"origin", origin}};
  }

  void write_cooldown(const std::string& id, const std::string& destination, WallTime until, WallTime now) {
    const auto ttl = ttl_ms(until, now);
    if (ttl <= 0) return;
    const bool scoped = !destination.empty();
    nlohmann::json value{{"id", id}};
    auto message = event(scoped ? "scoped" : "cooldown", id);
    message["ttl_ms"] = ttl;
    if (scoped) {
      value["dest"] = destination;
      message["dest"] = destination;
    }
    const std::string key = scoped ? keys.scoped(id, destination) : keys.cooldown(id);
    commands.async_eval(kSetCooldown, {key}, {std::to_string(ttl), value.dump(), keys.channel(), message.dump()},
                        written());
  }

  void write_disabled(const std::string& id, const std::string& reason) {
    auto message = event("disable", id);
    message["reason"] = reason;
    commands.async_eval(kDisable, {keys.disabled(id)},
                        {nlohmann::json{{"id", id}, {"reason", reason}}.dump(), keys.channel(), message.dump()},
                        written());
  }

  // A write that did not reach Redis needs nothing here: the mirror keeps
  // it, and every reconnection writes the mirror back (write_back).
  std::function<void(std::error_code, RedisReply)> written() {
    return [self = shared_from_this()](std::error_code, RedisReply reply) {
      if (reply.is_error()) {
        log(LogLevel::warning, "Redis cooldown store {}: a write was refused: {}", self->options.pool_name, reply.text);
      }
    };
  }

  // Merges a record known locally into the mirror and writes what was new.
  void adopt(const std::string& id, const CooldownRecord& local) {
    const auto now = std::chrono::system_clock::now();
    std::vector<std::pair<std::string, WallTime>> cooldowns;  // destination ("" = whole), until
    bool disable = false;
    {
      std::lock_guard lock(mutex);
      CooldownRecord& r = mirror[id];
      if (local.cooldown_until && *local.cooldown_until > now && later(r.cooldown_until, *local.cooldown_until)) {
        r.cooldown_until = local.cooldown_until;
        cooldowns.emplace_back("", *local.cooldown_until);
      }
      for (const auto& [destination, until] : local.scoped) {
        auto [slot, inserted] = r.scoped.try_emplace(destination, until);
        if (!inserted && slot->second >= until) continue;
        slot->second = until;
        cooldowns.emplace_back(destination, until);
      }
      if (local.disabled && !r.disabled) {
        r.disabled = disable = true;
        r.disabled_reason = local.disabled_reason;
      }
    }
    for (const auto& [destination, until] : cooldowns) write_cooldown(id, destination, until, now);
    if (disable) write_disabled(id, local.disabled_reason);
  }

  bool remote_echo() const { return applying_remote == this; }

  using Entries = std::map<std::string, CooldownRecord, std::less<>>;

  RedisCooldownOptions options;
  Keys keys;
  RedisClient commands;
  RedisClient events;
  std::string origin;  // tells this store's own events from others'

  mutable std::mutex mutex;
  Entries mirror;
  bool syncing = false;
  bool sync_again = false;
  std::atomic<bool> loaded{false};
  std::atomic<bool> closed{false};
  async::detail::OpenLatch open;  // closed first by close(): fallback writes and the listener run inside

  std::mutex listener_mutex;
  std::function<void(const CooldownChange&)> listener;

  std::mutex open_mutex;
  std::condition_variable open_done;
  OpenState open_state = OpenState::pending;
  std::error_code open_error;
};

RedisCooldownStore::RedisCooldownStore(boost::asio::any_io_executor executor, RedisUrl url,
                                       RedisCooldownOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(url), std::move(options))) {
  impl_->start();
}

RedisCooldownStore::~RedisCooldownStore() { close(); }

bool RedisCooldownStore::open() {
  std::unique_lock lock(impl_->open_mutex);
  impl_->open_done.wait_for(lock, impl_->options.open_timeout,
                            [&] { return impl_->open_state != Impl::OpenState::pending; });
  if (impl_->open_state == Impl::OpenState::loaded) return true;
  const std::error_code ec = impl_->open_state == Impl::OpenState::failed ? impl_->open_error
                                                                           : make_error_code(errc::timeout);
  const std::string why =
      ec == floodgate::errc::auth_failed
          ? fmt::format("Redis at {} refused the user/password (check the URL's credentials and the ACL)",
                        impl_->commands.url().redacted())
          : fmt::format("Redis at {} is unavailable ({})", impl_->commands.url().redacted(), ec.message());
  if (impl_->options.on_unavailable == FailurePolicy::fail_closed) {
    throw RedisError(ec, why + "; the policy is fail_closed");
  }
  log(LogLevel::warning, "{}; cooldowns are not shared until it is back (policy fail_open{})", why,
      impl_->options.fallback ? ", using the local store" : "");
  return false;
}

void RedisCooldownStore::on_change(std::function<void(const CooldownChange&)> handler) {
  std::lock_guard lock(impl_->listener_mutex);
  impl_->listener = std::move(handler);
}

bool RedisCooldownStore::shared() const noexcept {
  return impl_->loaded.load() && impl_->commands.connected() && impl_->events.connected();
}

void RedisCooldownStore::close() {
  impl_->open.close();  // waits for a remote change being applied; none is applied after
  impl_->closed.store(true);
  on_change(nullptr);
  impl_->events.close();
  impl_->commands.close();
}

std::optional<CooldownRecord> RedisCooldownStore::find(std::string_view id) const {
  // What the fallback knows and Redis does not (recorded while Redis was
  // away, or by an earlier run) joins the mirror and is written to Redis.
  if (auto* fallback = impl_->options.fallback) {
    if (auto local = fallback->find(id)) impl_->adopt(std::string(id), *local);
  }
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->mirror.find(id);
  if (it == impl_->mirror.end()) return std::nullopt;
  const auto now = std::chrono::system_clock::now();
  CooldownRecord live = it->second;
  if (live.cooldown_until && *live.cooldown_until <= now) live.cooldown_until.reset();
  std::erase_if(live.scoped, [&](const auto& entry) { return entry.second <= now; });
  if (!live.cooldown_until && live.scoped.empty() && !live.disabled) return std::nullopt;
  return live;
}

void RedisCooldownStore::set_cooldown(std::string_view id, WallTime until) {
  if (impl_->remote_echo()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& r = impl_->mirror[std::string(id)];
    if (later(r.cooldown_until, until)) r.cooldown_until = until;
  }
  if (auto* fallback = impl_->options.fallback) fallback->set_cooldown(id, until);
  impl_->write_cooldown(std::string(id), {}, until, std::chrono::system_clock::now());
}

void RedisCooldownStore::set_scoped_cooldown(std::string_view id, std::string_view destination, WallTime until) {
  if (impl_->remote_echo()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& r = impl_->mirror[std::string(id)];
    auto [slot, inserted] = r.scoped.try_emplace(std::string(destination), until);
    if (!inserted) slot->second = std::max(slot->second, until);
  }
  if (auto* fallback = impl_->options.fallback) fallback->set_scoped_cooldown(id, destination, until);
  impl_->write_cooldown(std::string(id), std::string(destination), until, std::chrono::system_clock::now());
}

void RedisCooldownStore::clear_cooldowns(std::string_view id) {
  if (impl_->remote_echo()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& r = impl_->mirror[std::string(id)];
    r.cooldown_until.reset();
    r.scoped.clear();
  }
  if (auto* fallback = impl_->options.fallback) fallback->clear_cooldowns(id);
  impl_->commands.async_eval(kClear, {impl_->keys.cooldown(id)},
                             {impl_->keys.scoped_pattern(id), impl_->keys.channel(), impl_->event("clear", id).dump()},
                             impl_->written());
}

void RedisCooldownStore::set_disabled(std::string_view id, std::string_view reason) {
  if (impl_->remote_echo()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& r = impl_->mirror[std::string(id)];
    r.disabled = true;
    r.disabled_reason = std::string(reason);
  }
  if (auto* fallback = impl_->options.fallback) fallback->set_disabled(id, reason);
  impl_->write_disabled(std::string(id), std::string(reason));
}

void RedisCooldownStore::set_enabled(std::string_view id) {
  if (impl_->remote_echo()) return;
  {
    std::lock_guard lock(impl_->mutex);
    auto& r = impl_->mirror[std::string(id)];
    r.disabled = false;
    r.disabled_reason.clear();
  }
  if (auto* fallback = impl_->options.fallback) fallback->set_enabled(id);
  impl_->commands.async_eval(kEnable, {impl_->keys.disabled(id)},
                             {impl_->keys.channel(), impl_->event("enable", id).dump()},
                             impl_->written());
}

}  // namespace floodgate::redis
