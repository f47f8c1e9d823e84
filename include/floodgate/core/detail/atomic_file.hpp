// floodgate/core/detail/atomic_file.hpp: the one way floodgate replaces a
// small state file (cooldowns, update offsets) so a crash leaves either the
// old or the new file, never half of one.
//
//   if (!detail::ensure_private_folder(folder)) ...        // created 0700 if missing
//   if (!detail::write_file_atomically(path, text, "cooldown file")) ...
//
// The text goes to a 0600 temporary `.<name>.XXXXXX` in the file's folder,
// which is fsynced, renamed over the file, and the folder is fsynced (a
// rename is durable only once the folder's entry is on disk). Failures are
// logged with `what` and the file's path (never its content) and reported as
// false; `remove_atomic_write_leftovers` deletes temporaries of writers that
// died (call it only while no other writer of that file can be running).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "floodgate/core/log.hpp"

namespace floodgate::detail {

/// errno as text; strerror is not thread-safe, the error category's message is.
inline std::string errno_text() { return std::error_code(errno, std::generic_category()).message(); }

inline std::filesystem::path folder_of(const std::filesystem::path& file) {
  return file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
}

/// The prefix of `file`'s temporaries: ".<name>.".
inline std::string atomic_write_prefix(const std::filesystem::path& file) {
  return "." + file.filename().string() + ".";
}

/// Creates `folder` (and its parents) with mode 0700 if it does not exist;
/// false with errno set when it cannot.
inline bool ensure_private_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  if (std::filesystem::is_directory(folder, ec)) return true;
  std::filesystem::create_directories(folder, ec);
  if (ec) {
    errno = ec.value();
    return false;
  }
  std::filesystem::permissions(folder, std::filesystem::perms::owner_all, ec);
  return true;
}

/// Deletes the `.<name>.XXXXXX` temporaries a dead writer of `file` left behind.
inline void remove_atomic_write_leftovers(const std::filesystem::path& file) {
  const std::string prefix = atomic_write_prefix(file);
  std::error_code ec;
  for (const auto& item : std::filesystem::directory_iterator(folder_of(file), ec)) {
    const std::string name = item.path().filename().string();
    if (name.size() == prefix.size() + 6 && name.starts_with(prefix) && !name.ends_with(".lock")) {
      std::filesystem::remove(item.path(), ec);
    }
  }
}

/// Replaces `file` with `text` atomically and durably (see the header
/// comment). Logs and returns false on failure; the old file is then intact.
inline bool write_file_atomically(const std::filesystem::path& file, std::string_view text, std::string_view what) {
  const auto folder = folder_of(file);
  std::string temp = (folder / (atomic_write_prefix(file) + "XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());  // created 0600
  if (fd < 0) {
    log(LogLevel::warning, "cannot write {} {}: {}", what, file.string(), errno_text());
    return false;
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
  ok = ok && ::rename(temp.c_str(), file.c_str()) == 0;
  if (!ok) {
    log(LogLevel::warning, "cannot write {} {}: {}", what, file.string(), errno_text());
    ::unlink(temp.c_str());
    return false;
  }
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0 || ::fsync(dir) != 0) {
    log(LogLevel::warning, "cannot sync the folder of {} {}: {}", what, file.string(), errno_text());
  }
  if (dir >= 0) ::close(dir);
  return true;
}

}  // namespace floodgate::detail
