// floodgate/core/cooldown_store.hpp: cooldowns and disabled credentials that
// survive a restart.
//
// A process told `FLOOD_WAIT_900` that restarts two minutes later must not
// send that credential a request for thirteen more minutes. The store keeps,
// per credential id, the wall-clock instant its cooldown ends (whole or per
// destination) and whether it is disabled, in a small JSON file:
//
//   {"format": "floodgate-cooldowns", "version": 1, "credentials": {
//     "API-3": {"cooldown_until_ms": 1795816800000, "disabled": false,
//               "scoped": {"-1001234": 1795816260000}}}}
//
// Every change is written at once, atomically (a 0600 temporary file in the
// same folder, fsync, rename), so a crash leaves either the old or the new
// file, never half of one. Expired entries are dropped when the file is
// written. Ids only: no token or hash is ever written here.
//
// It implements core/cooldown_sink.hpp; a pool applies it with `pool.persist_to(store)`. A corrupt file is an
// error (`StoreError`, errc::store_corrupt) or, with
// `OnCorrupt::warn_and_start_empty`, a logged warning and an empty store; never
// a crash.
#pragma once

#include "floodgate/core/cooldown_sink.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace floodgate {

/// Thrown when the cooldown file exists but cannot be read or parsed.
class StoreError : public Error {
 public:
  StoreError(std::error_code code, const std::string& what) : Error(what), code_(code) {}
  std::error_code code() const noexcept { return code_; }

 private:
  std::error_code code_;
};

/// The JSON file implementation of `CooldownSink`.
class CooldownStore final : public CooldownSink {
 public:
  using WallClock = std::function<WallTime()>;
  using Entry = CooldownRecord;

  enum class OnCorrupt {
    fail,                  ///< throw StoreError
    warn_and_start_empty,  ///< log a warning, start empty (the bad file is replaced on the next write)
  };

  /// Opens (or prepares to create) the file at `path`. A missing file is an
  /// empty store. `wall_clock` decides what has expired; tests pass a virtual one.
  explicit CooldownStore(std::filesystem::path path, OnCorrupt on_corrupt = OnCorrupt::fail,
                         WallClock wall_clock = [] { return std::chrono::system_clock::now(); })
      : path_(std::move(path)), wall_clock_(std::move(wall_clock)) {
    try {
      load();
    } catch (const StoreError& e) {
      if (on_corrupt == OnCorrupt::fail) throw;
      log(LogLevel::warning, "{}; starting with no persisted cooldowns", e.what());
      entries_.clear();
    }
  }

  CooldownStore(const CooldownStore&) = delete;
  CooldownStore& operator=(const CooldownStore&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

  /// The entry for `id`, if anything is recorded for it and not yet expired.
  std::optional<Entry> find(std::string_view id) const override {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }

  /// All entries, for inspection.
  std::map<std::string, Entry, std::less<>> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }

  /// Records a cooldown of the whole credential; an earlier one never shortens it.
  void set_cooldown(std::string_view id, WallTime until) override {
    update(id, [&](Entry& e) {
      if (!e.cooldown_until || *e.cooldown_until < until) e.cooldown_until = until;
    });
  }

  /// Records a cooldown of the credential for one destination only.
  void set_scoped_cooldown(std::string_view id, std::string_view destination, WallTime until) override {
    update(id, [&](Entry& e) {
      auto [it, inserted] = e.scoped.try_emplace(std::string(destination), until);
      if (!inserted && it->second < until) it->second = until;
    });
  }

  /// Removes every cooldown of `id` (whole and scoped).
  void clear_cooldowns(std::string_view id) override {
    update(id, [](Entry& e) {
      e.cooldown_until.reset();
      e.scoped.clear();
    });
  }

  void set_disabled(std::string_view id, std::string_view reason) override {
    update(id, [&](Entry& e) {
      e.disabled = true;
      e.disabled_reason = std::string(reason);
    });
  }

  void set_enabled(std::string_view id) override {
    update(id, [](Entry& e) {
      e.disabled = false;
      e.disabled_reason.clear();
    });
  }

 private:
  template <class Change>
  void update(std::string_view id, Change&& change) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) it = entries_.emplace(std::string(id), Entry{}).first;
    change(it->second);
    save_locked();
  }

  static std::int64_t to_ms(WallTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }
  static WallTime from_ms(std::int64_t ms) {
    return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(ms)));
  }

  void load() {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) return;
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      throw StoreError(make_error_code(errc::io_error),
                       "cannot read cooldown file " + path_.string() + ": " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    try {
      const auto doc = nlohmann::json::parse(text.str());
      if (!doc.is_object() || doc.value("format", "") != "floodgate-cooldowns" || doc.value("version", 0) != 1 ||
          !doc.contains("credentials") || !doc["credentials"].is_object()) {
        throw StoreError(make_error_code(errc::store_corrupt),
                         "cooldown file " + path_.string() + " is not a floodgate-cooldowns version 1 file");
      }
      const auto now = wall_clock_();
      for (const auto& [id, item] : doc["credentials"].items()) {
        Entry entry;
        if (item.contains("cooldown_until_ms")) {
          const auto until = from_ms(item.at("cooldown_until_ms").get<std::int64_t>());
          if (until > now) entry.cooldown_until = until;
        }
        entry.disabled = item.value("disabled", false);
        entry.disabled_reason = item.value("reason", "");
        if (item.contains("scoped")) {
          for (const auto& [destination, ms] : item.at("scoped").items()) {
            const auto until = from_ms(ms.get<std::int64_t>());
            if (until > now) entry.scoped.emplace(destination, until);
          }
        }
        if (is_useful(entry)) entries_.emplace(id, std::move(entry));
      }
    } catch (const nlohmann::json::exception& e) {
      throw StoreError(make_error_code(errc::store_corrupt),
                       "cooldown file " + path_.string() + " is corrupt: " + e.what());
    }
  }

  static bool is_useful(const Entry& e) { return e.cooldown_until || e.disabled || !e.scoped.empty(); }

  nlohmann::json to_json_locked() {
    const auto now = wall_clock_();
    auto credentials = nlohmann::json::object();
    for (auto it = entries_.begin(); it != entries_.end();) {
      Entry& e = it->second;
      if (e.cooldown_until && *e.cooldown_until <= now) e.cooldown_until.reset();
      std::erase_if(e.scoped, [&](const auto& kv) { return kv.second <= now; });
      if (!is_useful(e)) {
        it = entries_.erase(it);
        continue;
      }
      auto item = nlohmann::json::object();
      if (e.cooldown_until) item["cooldown_until_ms"] = to_ms(*e.cooldown_until);
      item["disabled"] = e.disabled;
      if (!e.disabled_reason.empty()) item["reason"] = e.disabled_reason;
      if (!e.scoped.empty()) {
        auto scoped = nlohmann::json::object();
        for (const auto& [destination, until] : e.scoped) scoped[destination] = to_ms(until);
        item["scoped"] = std::move(scoped);
      }
      credentials[it->first] = std::move(item);
      ++it;
    }
    return {{"format", "floodgate-cooldowns"}, {"version", 1}, {"credentials", std::move(credentials)}};
  }

  // A failed write is logged, not thrown: the in-memory state (and so the
  // running pool) stays right; only persistence across a restart is at risk.
  void save_locked() {
    const std::string text = to_json_locked().dump(2) + "\n";
    const auto dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (!ec) std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
    }
    std::string temp_name = ".";  // appended piecewise: GCC 12 warns (-Wrestrict) on a + chain here
    temp_name += path_.filename().string();
    temp_name += ".XXXXXX";
    std::string temp = (dir / temp_name).string();
    const int fd = ::mkstemp(temp.data());  // created 0600
    if (fd < 0) {
      log(LogLevel::warning, "cannot write cooldown file {}: {}", path_.string(), std::strerror(errno));
      return;
    }
    bool ok = ::fchmod(fd, S_IRUSR | S_IWUSR) == 0;
    for (std::size_t done = 0; ok && done < text.size();) {
      const auto n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    ok = (::close(fd) == 0) && ok;
    ok = ok && ::rename(temp.c_str(), path_.c_str()) == 0;
    if (!ok) {
      log(LogLevel::warning, "cannot write cooldown file {}: {}", path_.string(), std::strerror(errno));
      ::unlink(temp.c_str());
    }
  }

  std::filesystem::path path_;
  WallClock wall_clock_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace floodgate
