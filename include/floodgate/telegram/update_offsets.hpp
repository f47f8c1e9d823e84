// floodgate/telegram/update_offsets.hpp: how far each bot's updates are
// handled, kept across restarts for an `UpdatePoller` (update_poller.hpp).
//
// Per bot (by token id, never the token) two numbers:
//
//   next_offset        the getUpdates `offset` to ask for: every update below
//                      it is handled (acknowledged by the consumer);
//   delivered_through  the highest update_id handed to the consumer. Updates
//                      in [next_offset, delivered_through] were delivered and
//                      not yet acknowledged when this was written: after a
//                      crash they come again, flagged `Update::redelivered`.
//
// `UpdateOffsetSink` is the small interface the poller needs (a database can
// implement it, and should write the offset in the same transaction as the
// handler's effects for exactly-once); `UpdateOffsetFile` is the JSON file
// implementation:
//
//   {"format": "floodgate-update-offsets", "version": 1,
//    "bots": {"token-1": {"next_offset": 812, "delivered_through": 815}}}
//
// written like every floodgate state file (core/detail/atomic_file.hpp):
// atomically through a 0600 temporary, fsynced, renamed, folder fsynced; the
// folder is created 0700. A file that cannot be read or parsed is an error at
// construction (floodgate::Error naming the file): starting from zero would
// hand every update of the last 24 h to the handler again. One process owns a
// file (Telegram allows one getUpdates per bot anyway); thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace floodgate::telegram {

struct UpdateOffsets {
  std::int64_t next_offset = 0;        ///< 0: nothing handled yet (ask from the oldest update)
  std::int64_t delivered_through = 0;  ///< 0: nothing delivered yet
  friend bool operator==(const UpdateOffsets&, const UpdateOffsets&) = default;
};

class UpdateOffsetSink {
 public:
  virtual ~UpdateOffsetSink() = default;
  /// What was recorded for `token_id`, if anything.
  virtual std::optional<UpdateOffsets> find(std::string_view token_id) const = 0;
  /// Records `offsets` durably; false when it could not (the poller then
  /// delivers and confirms nothing more for that bot until a save succeeds).
  virtual bool save(std::string_view token_id, const UpdateOffsets& offsets) = 0;
};

class UpdateOffsetFile final : public UpdateOffsetSink {
 public:
  /// Reads `path` if it exists (a missing file records nothing). Throws
  /// floodgate::Error when it exists and is unreadable, corrupt or of a newer version.
  explicit UpdateOffsetFile(std::filesystem::path path);

  std::optional<UpdateOffsets> find(std::string_view token_id) const override;
  bool save(std::string_view token_id, const UpdateOffsets& offsets) override;

  const std::filesystem::path& path() const noexcept { return path_; }
  /// Parses a file's text (tests and fuzzing); throws floodgate::Error naming `source`.
  static std::map<std::string, UpdateOffsets, std::less<>> parse(std::string_view text, std::string_view source);

 private:
  std::filesystem::path path_;
  mutable std::mutex mutex_;
  std::map<std::string, UpdateOffsets, std::less<>> offsets_;
};

}  // namespace floodgate::telegram
