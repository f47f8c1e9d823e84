// Helpers shared by the MTProto tests: a private temporary folder and a
// capture of every log line.
#pragma once

#include <floodgate/core/log.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::test {

/// A folder of its own under the system's temporary folder, removed afterwards.
/// `path` (a child of `base`, not yet created) serves as a sessions root.
struct TempRoot {
  TempRoot() {
    static std::atomic<int> counter{0};
    base = std::filesystem::temp_directory_path() / fmt::format("floodgate-mtproto-{}-{}", ::getpid(), ++counter);
    path = base / "sessions";
  }
  TempRoot(const TempRoot&) = delete;
  TempRoot& operator=(const TempRoot&) = delete;
  ~TempRoot() {
    std::error_code ignored;
    std::filesystem::remove_all(base, ignored);
  }
  std::filesystem::path base;
  std::filesystem::path path;
};

/// Every log line (debug and up) while it lives, to prove what never appears in one.
class LogCapture {
 public:
  LogCapture() {
    set_log_level(LogLevel::debug);
    old_ = set_log_sink([this](LogLevel, std::string_view line) {
      std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  ~LogCapture() {
    set_log_sink(old_);
    set_log_level(LogLevel::info);
  }

  bool contains(std::string_view text) const {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  LogSink old_;
};

}  // namespace floodgate::test
