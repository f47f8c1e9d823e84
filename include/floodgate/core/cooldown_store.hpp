// floodgate/core/cooldown_store.hpp: cooldowns and disabled credentials that
// survive a restart.
//
// A process told `FLOOD_WAIT_900` that restarts two minutes later must not
// send that credential a request for thirteen more minutes. The store keeps,
// per credential id, the wall-clock instant its cooldown ends (whole or per
// destination) and whether it is disabled, in a small JSON file:
//
//   {"format": "floodgate-cooldowns", "version": 1, "written_at_ms": 1795815900000,
//    "credentials": {
//     "API-3": {"cooldown_until_ms": 1795816800000, "disabled": false,
//               "scoped": {"-1001234": 1795816260000}}}}
//
// Writing. Every change is written at once, atomically: a 0600 temporary file
// `.<name>.XXXXXX` in the same folder, fsync, rename, fsync of the folder. A
// crash leaves either the old or the new file, never half of one; temporary
// files a crash left behind are removed when the store is opened. Expired
// entries are dropped when the file is written. Ids only: no token or hash is
// ever written here.
//
// Several processes may share one file. Each write holds an exclusive `flock`
// on `.<name>.lock` (beside the file, created once and left in place) while it
// re-reads the file, applies its one change and writes the result, so no
// process loses another's entries: cooldowns merge to the later end, and an
// enable, disable or clear applies to the shared record. A process sees
// another's entries when it opens the store and after each of its own writes
// (`find`, `entries`); a pool reads them when credentials are added or
// `persist_to` is called. The lock is advisory: only floodgate writers honour it.
//
// Wall clock. Instants are wall-clock time, the only clock shared across a
// restart, so a clock step while the process is down moves them:
// - stepped back (the file's `written_at_ms` is later than now): the loader
//   counts no time as passed since that write, so a cooldown is never longer
//   than what was left when it was written (a 13 min cooldown stays 13 min,
//   not 73). The bound is the remaining time at the last write.
// - stepped forward by S: cooldowns end up to S early. Nothing on this machine
//   can tell; the server answers the early request with a new flood wait,
//   which the pool records again.
// Times past the end of `system_clock` (the year 2262) are read as that end,
// never wrapped.
//
// It implements core/cooldown_sink.hpp; a pool applies it with `pool.persist_to(store)`. A corrupt file
// (malformed JSON, a value of the wrong type, a time that is not an integer)
// is an error (`StoreError`, errc::store_corrupt) or, with
// `OnCorrupt::warn_and_start_empty`, a logged warning and an empty store that
// replaces the file on the next write; never a crash. A file written by a
// newer floodgate (version above 1) is never overwritten: with
// `warn_and_start_empty` the store then keeps its state in memory only.
#pragma once

#include "floodgate/core/cooldown_sink.hpp"
#include "floodgate/core/detail/atomic_file.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
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
  StoreError(std::error_code code, const std::string& what, bool newer_version = false)
      : Error(what), code_(code), newer_version_(newer_version) {}
  std::error_code code() const noexcept { return code_; }
  /// The file was written by a newer floodgate; it is never overwritten.
  bool newer_version() const noexcept { return newer_version_; }

 private:
  std::error_code code_;
  bool newer_version_ = false;
};

/// The JSON file implementation of `CooldownSink`.
class CooldownStore final : public CooldownSink {
 public:
  using WallClock = std::function<WallTime()>;
  using Entry = CooldownRecord;
  using Entries = std::map<std::string, Entry, std::less<>>;

  enum class OnCorrupt {
    fail,                  ///< throw StoreError
    warn_and_start_empty,  ///< log a warning, start empty (the bad file is replaced on the next write)
  };

  /// Opens (or prepares to create) the file at `path`. A missing file is an
  /// empty store. `wall_clock` decides what has expired; tests pass a virtual one.
  explicit CooldownStore(std::filesystem::path path, OnCorrupt on_corrupt = OnCorrupt::fail,
                         WallClock wall_clock = [] { return std::chrono::system_clock::now(); })
      : path_(std::move(path)), on_corrupt_(on_corrupt), wall_clock_(std::move(wall_clock)) {
    const FileLock lock(lock_path());  // a folder that does not exist yet has no file and no leftovers
    if (lock.held()) remove_leftover_temporaries();
    try {
      entries_ = read_file(wall_clock_());
    } catch (const StoreError& e) {
      if (on_corrupt == OnCorrupt::fail) throw;
      read_only_ = e.newer_version();
      log(LogLevel::warning, "{}; starting with no persisted cooldowns{}", e.what(),
          read_only_ ? " and leaving the file as it is" : "");
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
  Entries entries() const {
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

  /// Parses the text of a cooldown file, dropping what has expired at `now`
  /// (the loader and the fuzzer use it). Throws StoreError naming `source`.
  static Entries parse(std::string_view text, WallTime now, std::string_view source = "cooldown file") {
    const std::string name(source);
    auto corrupt = [&](const std::string& why) {
      return StoreError(make_error_code(errc::store_corrupt), "cooldown file " + name + " is corrupt: " + why);
    };
    // Outside data: a depth limit keeps a hostile file from exhausting the stack.
    constexpr int kMaxDepth = 16;
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(
          text.begin(), text.end(),
          [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
            if (depth > kMaxDepth) throw StoreError(make_error_code(errc::store_corrupt), "nested too deeply");
            return true;
          });
    } catch (const nlohmann::json::exception& e) {
      throw corrupt(e.what());
    } catch (const StoreError& e) {
      throw corrupt(e.what());
    }
    if (!doc.is_object() || !doc.contains("format") || doc["format"] != "floodgate-cooldowns" ||
        !doc.contains("version") || !doc["version"].is_number_integer()) {
      throw StoreError(make_error_code(errc::store_corrupt),
                       "cooldown file " + name + " is not a floodgate-cooldowns file");
    }
    if (doc["version"] != 1) {
      throw StoreError(make_error_code(errc::store_corrupt),
                       "cooldown file " + name + " has version " + doc["version"].dump() +
                           ", written by a newer floodgate (this one reads version 1)",
                       doc["version"] > 1);
    }
    if (!doc.contains("credentials") || !doc["credentials"].is_object()) throw corrupt("no \"credentials\" object");

    // A wall clock stepped back since the write: count no time as passed.
    std::int64_t now_ms = to_ms(now);
    if (doc.contains("written_at_ms")) now_ms = std::max(now_ms, read_ms(doc["written_at_ms"], corrupt));
    const std::int64_t shift_ms = to_ms(now) - now_ms;  // <= 0
    auto until_at = [&](const nlohmann::json& value) -> std::optional<WallTime> {
      const std::int64_t ms = read_ms(value, corrupt);
      if (ms <= now_ms) return std::nullopt;
      return from_ms(saturating_add(ms, shift_ms));
    };

    Entries entries;
    for (const auto& [id, item] : doc["credentials"].items()) {
      if (!item.is_object()) throw corrupt("the record of \"" + id + "\" is not an object");
      Entry entry;
      if (item.contains("cooldown_until_ms")) entry.cooldown_until = until_at(item["cooldown_until_ms"]);
      if (item.contains("disabled")) {
        if (!item["disabled"].is_boolean()) throw corrupt("\"disabled\" of \"" + id + "\" is not true or false");
        entry.disabled = item["disabled"].get<bool>();
      }
      if (item.contains("reason")) {
        if (!item["reason"].is_string()) throw corrupt("\"reason\" of \"" + id + "\" is not a string");
        entry.disabled_reason = item["reason"].get<std::string>();
      }
      if (item.contains("scoped")) {
        if (!item["scoped"].is_object()) throw corrupt("\"scoped\" of \"" + id + "\" is not an object");
        for (const auto& [destination, ms] : item["scoped"].items()) {
          if (auto until = until_at(ms)) entry.scoped.emplace(destination, *until);
        }
      }
      if (is_useful(entry)) entries.emplace(id, std::move(entry));
    }
    return entries;
  }

 private:
  // An exclusive flock on the lock file, released on destruction. Not held
  // when the lock file cannot be opened (its folder does not exist yet).
  class FileLock {
   public:
    explicit FileLock(const std::filesystem::path& path)
        : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, S_IRUSR | S_IWUSR)) {
      if (fd_ < 0) return;
      while (::flock(fd_, LOCK_EX) != 0) {
        if (errno != EINTR) {
          ::close(std::exchange(fd_, -1));
          return;
        }
      }
    }
    ~FileLock() {
      if (fd_ >= 0) ::close(fd_);  // closing releases the lock
    }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    bool held() const noexcept { return fd_ >= 0; }

   private:
    int fd_;
  };

  template <class Change>
  void update(std::string_view id, Change&& change) {
    std::lock_guard lock(mutex_);
    apply(entries_, id, change);  // the running process keeps it even if the write fails
    if (read_only_) return;
    if (!ensure_folder()) {
      log(LogLevel::warning, "cannot write cooldown file {}: {}", path_.string(), last_error());
      return;
    }
    const FileLock file_lock(lock_path());
    if (!file_lock.held()) {
      log(LogLevel::warning, "cannot lock cooldown file {}: {}", path_.string(), last_error());
      return;
    }
    // Apply this one change to what is on disk now, so other processes'
    // entries written since our last read are kept.
    const auto now = wall_clock_();
    Entries shared;
    try {
      shared = read_file(now);
    } catch (const StoreError& e) {
      if (e.newer_version()) {
        read_only_ = true;
        log(LogLevel::warning, "{}; not overwriting it, cooldowns are kept in memory only", e.what());
        return;
      }
      if (on_corrupt_ == OnCorrupt::fail || e.code() != errc::store_corrupt) {
        log(LogLevel::warning, "{}; not writing to it", e.what());
        return;
      }
      log(LogLevel::warning, "{}; replacing it", e.what());
    }
    apply(shared, id, change);
    drop_expired(shared, now);
    if (write_file(shared, now)) entries_ = std::move(shared);
  }

  template <class Change>
  static void apply(Entries& entries, std::string_view id, Change& change) {
    auto it = entries.find(id);
    if (it == entries.end()) it = entries.emplace(std::string(id), Entry{}).first;
    change(it->second);
  }

  static std::int64_t to_ms(WallTime t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  }
  // Saturates at the ends of system_clock's range instead of overflowing.
  static WallTime from_ms(std::int64_t ms) {
    using std::chrono::milliseconds;
    constexpr std::int64_t kMaxMs = std::chrono::duration_cast<milliseconds>(WallTime::max().time_since_epoch()).count();
    constexpr std::int64_t kMinMs = std::chrono::duration_cast<milliseconds>(WallTime::min().time_since_epoch()).count();
    if (ms >= kMaxMs) return WallTime::max();
    if (ms <= kMinMs) return WallTime::min();
    return WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::milliseconds(ms)));
  }
  static std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    std::int64_t sum = 0;
    if (!__builtin_add_overflow(a, b, &sum)) return sum;
    return b < 0 ? std::numeric_limits<std::int64_t>::min() : std::numeric_limits<std::int64_t>::max();
  }
  // A time in milliseconds: an integer; one beyond int64 saturates.
  template <class Corrupt>
  static std::int64_t read_ms(const nlohmann::json& value, Corrupt& corrupt) {
    if (value.is_number_unsigned()) {
      const auto u = value.get<std::uint64_t>();
      return u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                 ? std::numeric_limits<std::int64_t>::max()
                 : static_cast<std::int64_t>(u);
    }
    if (value.is_number_integer()) return value.get<std::int64_t>();
    throw corrupt("a time is not an integer number of milliseconds: " + value.dump().substr(0, 40));
  }

  static std::string last_error() { return detail::errno_text(); }

  static bool is_useful(const Entry& e) { return e.cooldown_until || e.disabled || !e.scoped.empty(); }

  static void drop_expired(Entries& entries, WallTime now) {
    for (auto it = entries.begin(); it != entries.end();) {
      Entry& e = it->second;
      if (e.cooldown_until && *e.cooldown_until <= now) e.cooldown_until.reset();
      std::erase_if(e.scoped, [&](const auto& kv) { return kv.second <= now; });
      it = is_useful(e) ? std::next(it) : entries.erase(it);
    }
  }

  std::filesystem::path folder() const { return detail::folder_of(path_); }
  std::filesystem::path lock_path() const { return folder() / ("." + path_.filename().string() + ".lock"); }

  bool ensure_folder() const { return detail::ensure_private_folder(folder()); }


  // `.<name>.XXXXXX` files exist only while a writer holds the lock; seen
  // under the lock, they were left by a writer that died.
  void remove_leftover_temporaries() const { detail::remove_atomic_write_leftovers(path_); }

  // The file's entries (empty when there is no file); throws StoreError.
  Entries read_file(WallTime now) const {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec)) return {};
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream text;
    if (in) text << in.rdbuf();
    if (!in || in.bad()) {
      throw StoreError(make_error_code(errc::io_error),
                       "cannot read cooldown file " + path_.string() + ": " + last_error());
    }
    return parse(text.str(), now, path_.string());
  }

  static nlohmann::json to_json(const Entries& entries, WallTime now) {
    auto credentials = nlohmann::json::object();
    for (const auto& [id, e] : entries) {
      auto item = nlohmann::json::object();
      if (e.cooldown_until) item["cooldown_until_ms"] = to_ms(*e.cooldown_until);
      item["disabled"] = e.disabled;
      if (!e.disabled_reason.empty()) item["reason"] = e.disabled_reason;
      if (!e.scoped.empty()) {
        auto scoped = nlohmann::json::object();
        for (const auto& [destination, until] : e.scoped) scoped[destination] = to_ms(until);
        item["scoped"] = std::move(scoped);
      }
      credentials[id] = std::move(item);
    }
    return {{"format", "floodgate-cooldowns"},
            {"version", 1},
            {"written_at_ms", to_ms(now)},
            {"credentials", std::move(credentials)}};
  }

  // Writes `entries` (expired ones already dropped) atomically; the caller
  // holds the file lock. A failed
  // write is logged, not thrown: the in-memory state (and so the running
  // pool) stays right; only persistence across a restart is at risk.
  bool write_file(const Entries& entries, WallTime now) const {
    return detail::write_file_atomically(path_, to_json(entries, now).dump(2) + "\n", "cooldown file");
  }

  std::filesystem::path path_;
  OnCorrupt on_corrupt_;
  WallClock wall_clock_;
  mutable std::mutex mutex_;
  Entries entries_;
  bool read_only_ = false;  // the file is a newer version: never overwrite it
};

}  // namespace floodgate
