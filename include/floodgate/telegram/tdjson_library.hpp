// floodgate/telegram/tdjson_library.hpp: TDLib's JSON C interface, loaded at run time.
//
// floodgate does not link against TDLib: `TdjsonLibrary::open()` finds
// `libtdjson` with dlopen when the program starts, binds its functions and
// reports a missing library or function as a `TdjsonLoadError` that names the
// file and the symbol, instead of a crash at the first call.
//
//   auto tdjson = telegram::TdjsonLibrary::open();        // FLOODGATE_TDJSON_PATH or the usual names
//   auto tdjson = telegram::TdjsonLibrary::open({.path = "/opt/td/lib/libtdjson.so"});
//
// Where it looks, in order: `Options::path`; else the environment variable
// FLOODGATE_TDJSON_PATH; else `libtdjson.so` through the dynamic loader's
// search path, then the newest `libtdjson.so.<version>` in `Options::search_dirs`.
// An explicit path that fails is an error: it is never silently replaced.
//
// Both generations of the interface are supported behind one API:
//   - TDLib >= 1.7: td_create_client_id / td_send / td_receive / td_execute,
//     one receive queue for all clients, replies tagged with "@client_id";
//   - older: td_json_client_create / _send / _receive / _execute / _destroy,
//     one queue per client. `receive()` then polls the clients in turn and
//     reports which one answered.
//
// Thread safety: `create_client`, `send` and `execute` may be called from any
// thread. `receive` and `destroy_client` must be called from one thread at a
// time (TDLib forbids concurrent receives); `TdjsonClient` owns that thread,
// and there can be only one TdjsonClient per loaded library.
#pragma once

#include <floodgate/core/error.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace floodgate::telegram {

/// libtdjson could not be loaded or lacks a function. `what()` says which
/// file and which symbol; `path()` and `symbol()` give them separately.
class TdjsonLoadError : public Error {
 public:
  TdjsonLoadError(const std::string& message, std::string path, std::string symbol = {})
      : Error(message), path_(std::move(path)), symbol_(std::move(symbol)) {}
  const std::string& path() const noexcept { return path_; }
  /// The missing function, or empty when the library itself did not load.
  const std::string& symbol() const noexcept { return symbol_; }

 private:
  std::string path_;
  std::string symbol_;
};

class TdjsonLibrary {
 public:
  /// Which generation of the C interface the library exports.
  enum class Interface { client_id, legacy };

  struct Options {
    /// The library file; empty: FLOODGATE_TDJSON_PATH, then the defaults.
    std::filesystem::path path;
    /// Folders scanned for `libtdjson.so.<version>` when no unversioned
    /// `libtdjson.so` is installed. Empty: LD_LIBRARY_PATH's folders,
    /// /usr/local/lib, /usr/local/lib64, /usr/lib, /usr/lib64.
    std::vector<std::filesystem::path> search_dirs;
  };

  /// One message from TDLib. `json` stays valid until the next `receive` or
  /// `execute` on the same thread. `client_id` is set by the legacy interface,
  /// whose messages do not carry "@client_id".
  struct Message {
    const char* json;
    std::optional<std::int32_t> client_id;
  };

  /// Loads the library and binds its functions; throws TdjsonLoadError.
  static std::shared_ptr<TdjsonLibrary> open(const Options& options = {});

  TdjsonLibrary(const TdjsonLibrary&) = delete;
  TdjsonLibrary& operator=(const TdjsonLibrary&) = delete;
  ~TdjsonLibrary();

  /// The file that was loaded.
  const std::filesystem::path& path() const noexcept { return path_; }
  Interface interface() const noexcept { return interface_; }

  /// A new TDLib instance. It sends nothing until it receives its first request.
  std::int32_t create_client();
  /// Queues a null-terminated JSON request for `client`.
  void send(std::int32_t client, const char* request);
  /// Waits up to `timeout_seconds` for the next message of any client.
  std::optional<Message> receive(double timeout_seconds);
  /// Runs one of the few requests TDLib can answer synchronously.
  std::string execute(const char* request);
  /// Releases a client that reported authorizationStateClosed. The current
  /// interface frees closed clients itself, so this only matters for legacy.
  void destroy_client(std::int32_t client);

  /// Reserves `receive` for one reader. TDLib's queue is per process, so a
  /// second reader would steal the first one's replies: TdjsonClient claims
  /// the loaded library (however many times it was opened) and releases it
  /// when it shuts down. False if it is already claimed.
  bool claim_receiver() noexcept;
  void release_receiver() noexcept;

  struct Functions;  // the bound entry points (defined in the .cpp)

 private:
  TdjsonLibrary(void* handle, std::filesystem::path path, Interface interface,
                std::unique_ptr<Functions> functions);

  struct LegacyClients;  // id <-> handle table of the legacy interface

  void* handle_;
  std::filesystem::path path_;
  Interface interface_;
  std::unique_ptr<Functions> fn_;
  std::unique_ptr<LegacyClients> legacy_;
};

}  // namespace floodgate::telegram
