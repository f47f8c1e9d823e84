// floodgate/core/cooldown_sink.hpp: where a pool keeps what must outlive it.
//
// A process told `FLOOD_WAIT_900` that restarts two minutes later must not
// send that credential a request for thirteen more minutes, and a process next
// to it should not either. A `CredentialPool` (core/pool.hpp) records every
// cooldown, disable and enable in a `CooldownSink` given to `persist_to`, and
// reads a credential's record back when the credential is added.
//
// Implementations: `CooldownStore` (core/cooldown_store.hpp, a JSON file).
// This header is the whole interface, so the pool includes neither JSON nor
// file-system headers. Times are wall-clock: a steady clock's epoch is per boot.
// Records name credentials by id only; no token or hash ever reaches a sink.
//
// Calls come from any thread, outside the pool's lock; they should be quick
// (the file store writes a small file) and must not call back into the pool.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace floodgate {

/// What is remembered about one credential.
struct CooldownRecord {
  using WallTime = std::chrono::system_clock::time_point;

  std::optional<WallTime> cooldown_until;  ///< the whole credential cools until then
  bool disabled = false;
  std::string disabled_reason;
  std::map<std::string, WallTime, std::less<>> scoped;  ///< destination -> cools until then
};

class CooldownSink {
 public:
  using WallTime = CooldownRecord::WallTime;

  virtual ~CooldownSink() = default;

  /// The record for `id`, if anything is recorded for it and not yet expired.
  virtual std::optional<CooldownRecord> find(std::string_view id) const = 0;
  /// The whole credential cools until `until`; an earlier time never shortens a later one.
  virtual void set_cooldown(std::string_view id, WallTime until) = 0;
  /// The credential cools for one destination until `until`.
  virtual void set_scoped_cooldown(std::string_view id, std::string_view destination, WallTime until) = 0;
  /// Every cooldown of `id` (whole and scoped) is over.
  virtual void clear_cooldowns(std::string_view id) = 0;
  virtual void set_disabled(std::string_view id, std::string_view reason) = 0;
  virtual void set_enabled(std::string_view id) = 0;
};

}  // namespace floodgate
