#include <floodgate/telegram/tdjson_library.hpp>

#include <fmt/format.h>
#include <fmt/std.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace floodgate::telegram {

struct TdjsonLibrary::Functions {
  // TDLib >= 1.7
  int (*create_client_id)() = nullptr;
  void (*send)(int, const char*) = nullptr;
  const char* (*receive)(double) = nullptr;
  const char* (*execute)(const char*) = nullptr;
  // The legacy interface (to be removed in TDLib 2.0)
  void* (*json_client_create)() = nullptr;
  void (*json_client_send)(void*, const char*) = nullptr;
  const char* (*json_client_receive)(void*, double) = nullptr;
  const char* (*json_client_execute)(void*, const char*) = nullptr;
  void (*json_client_destroy)(void*) = nullptr;
};

// The legacy interface hands out pointers; floodgate speaks in int ids, as the
// current interface does, so both look the same to TdjsonClient.
struct TdjsonLibrary::LegacyClients {
  std::mutex mutex;
  std::unordered_map<std::int32_t, void*> handles;
  std::int32_t next_id = 1;
  std::size_t next_poll = 0;  // round-robin position of receive(); receive thread only
};

namespace {

constexpr const char* kPathVariable = "FLOODGATE_TDJSON_PATH";
constexpr const char* kDefaultName = "libtdjson.so";

// Splits "libtdjson.so.1.8.10" into {1, 8, 10}; empty if it is not one of ours.
std::vector<long> soname_version(const std::string& file_name) {
  const std::string prefix = std::string(kDefaultName) + ".";
  if (!file_name.starts_with(prefix)) return {};
  std::vector<long> parts;
  std::string_view rest(file_name);
  rest.remove_prefix(prefix.size());
  while (!rest.empty()) {
    const auto dot = rest.find('.');
    const auto part = rest.substr(0, dot);
    char* end = nullptr;
    const std::string text(part);
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') return {};
    parts.push_back(value);
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return parts;
}

std::vector<std::filesystem::path> default_search_dirs() {
  std::vector<std::filesystem::path> dirs;
  if (const char* ld_path = std::getenv("LD_LIBRARY_PATH")) {
    std::string_view rest(ld_path);
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {"/usr/local/lib", "/usr/local/lib64", "/usr/lib", "/usr/lib64"}) {
    dirs.emplace_back(dir);
  }
  return dirs;
}

// Versioned files ("libtdjson.so.1.8.29") in `dirs`, newest version first.
std::vector<std::filesystem::path> versioned_candidates(const std::vector<std::filesystem::path>& dirs) {
  std::vector<std::pair<std::vector<long>, std::filesystem::path>> found;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      auto version = soname_version(it->path().filename().string());
      if (!version.empty()) found.emplace_back(std::move(version), it->path());
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::filesystem::path> paths;
  paths.reserve(found.size());
  for (auto& [version, path] : found) paths.push_back(std::move(path));
  return paths;
}

// TDLib starts threads that outlive its clients, so its code must never be
// unmapped under them: RTLD_NODELETE keeps it for the life of the process.
void* load(const std::filesystem::path& path, std::string& error) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* reason = dlerror();
    error = reason != nullptr ? reason : "unknown dlopen error";
  }
  return handle;
}

template <class Fn>
bool bind(void* handle, const char* name, Fn*& slot) {
  slot = reinterpret_cast<Fn*>(dlsym(handle, name));
  return slot != nullptr;
}

}  // namespace

std::shared_ptr<TdjsonLibrary> TdjsonLibrary::open(const Options& options) {
  std::filesystem::path explicit_path = options.path;
  if (explicit_path.empty()) {
    if (const char* env = std::getenv(kPathVariable); env != nullptr && *env != '\0') explicit_path = env;
  }

  std::vector<std::filesystem::path> candidates;
  if (!explicit_path.empty()) {
    candidates.push_back(explicit_path);
  } else {
    candidates.emplace_back(kDefaultName);
    auto versioned = versioned_candidates(options.search_dirs.empty() ? default_search_dirs()
                                                                      : options.search_dirs);
    candidates.insert(candidates.end(), versioned.begin(), versioned.end());
  }

  void* handle = nullptr;
  std::filesystem::path loaded;
  std::string errors;
  for (const auto& candidate : candidates) {
    std::string error;
    handle = load(candidate, error);
    if (handle != nullptr) {
      loaded = candidate;
      break;
    }
    errors += fmt::format("\n  {}: {}", candidate, error);
  }
  if (handle == nullptr) {
    const auto shown = explicit_path.empty() ? std::string(kDefaultName) : explicit_path.string();
    throw TdjsonLoadError(
        fmt::format("cannot load TDLib's JSON library {}:{}\n(install TDLib, or set {} or "
                    "TdjsonLibrary::Options::path to libtdjson's location)",
                    shown, errors, kPathVariable),
        shown);
  }

  auto fn = std::make_unique<Functions>();
  auto fail = [&](const char* symbol, std::string_view hint) -> TdjsonLoadError {
    dlclose(handle);
    return TdjsonLoadError(fmt::format("{} does not export {}{}", loaded, symbol, hint),
                           loaded.string(), symbol);
  };

  Interface interface = Interface::client_id;
  if (bind(handle, "td_create_client_id", fn->create_client_id)) {
    if (!bind(handle, "td_send", fn->send)) throw fail("td_send", "");
    if (!bind(handle, "td_receive", fn->receive)) throw fail("td_receive", "");
    if (!bind(handle, "td_execute", fn->execute)) throw fail("td_execute", "");
  } else {
    interface = Interface::legacy;
    constexpr std::string_view hint = " (nor td_create_client_id: is this libtdjson?)";
    if (!bind(handle, "td_json_client_create", fn->json_client_create)) throw fail("td_json_client_create", hint);
    if (!bind(handle, "td_json_client_send", fn->json_client_send)) throw fail("td_json_client_send", hint);
    if (!bind(handle, "td_json_client_receive", fn->json_client_receive)) throw fail("td_json_client_receive", hint);
    if (!bind(handle, "td_json_client_execute", fn->json_client_execute)) throw fail("td_json_client_execute", hint);
    if (!bind(handle, "td_json_client_destroy", fn->json_client_destroy)) throw fail("td_json_client_destroy", hint);
  }
  return std::shared_ptr<TdjsonLibrary>(new TdjsonLibrary(handle, std::move(loaded), interface, std::move(fn)));
}

TdjsonLibrary::TdjsonLibrary(void* handle, std::filesystem::path path, Interface interface,
                             std::unique_ptr<Functions> functions)
    : handle_(handle),
      path_(std::move(path)),
      interface_(interface),
      fn_(std::move(functions)),
      legacy_(interface == Interface::legacy ? std::make_unique<LegacyClients>() : nullptr) {}

TdjsonLibrary::~TdjsonLibrary() {
  if (legacy_) {
    for (auto& [id, client] : legacy_->handles) fn_->json_client_destroy(client);
  }
  dlclose(handle_);
}

std::int32_t TdjsonLibrary::create_client() {
  if (!legacy_) return fn_->create_client_id();
  void* client = fn_->json_client_create();
  std::lock_guard lock(legacy_->mutex);
  const auto id = legacy_->next_id++;
  legacy_->handles.emplace(id, client);
  return id;
}

void TdjsonLibrary::send(std::int32_t client, const char* request) {
  if (!legacy_) return fn_->send(client, request);
  void* handle = nullptr;
  {
    std::lock_guard lock(legacy_->mutex);
    const auto it = legacy_->handles.find(client);
    if (it == legacy_->handles.end()) return;  // destroyed: like TDLib, drop the request
    handle = it->second;
  }
  fn_->json_client_send(handle, request);
}

std::optional<TdjsonLibrary::Message> TdjsonLibrary::receive(double timeout_seconds) {
  if (!legacy_) {
    const char* json = fn_->receive(timeout_seconds);
    if (json == nullptr) return std::nullopt;
    return Message{json, std::nullopt};
  }

  // One queue per client: poll each once without waiting, starting after the
  // client served last so that a busy client cannot starve the others; if all
  // are idle, wait a short slice on one of them. Handles cannot disappear
  // meanwhile, because only this thread destroys them.
  std::vector<std::pair<std::int32_t, void*>> clients;
  {
    std::lock_guard lock(legacy_->mutex);
    clients.assign(legacy_->handles.begin(), legacy_->handles.end());
  }
  if (clients.empty()) return std::nullopt;
  std::sort(clients.begin(), clients.end());
  const auto start = legacy_->next_poll++ % clients.size();
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& [id, handle] = clients[(start + i) % clients.size()];
    if (const char* json = fn_->json_client_receive(handle, 0.0)) return Message{json, id};
  }
  constexpr double kIdleSlice = 0.02;
  const auto& [id, handle] = clients[start];
  if (const char* json = fn_->json_client_receive(handle, std::min(timeout_seconds, kIdleSlice))) {
    return Message{json, id};
  }
  return std::nullopt;
}

std::string TdjsonLibrary::execute(const char* request) {
  const char* reply = legacy_ ? fn_->json_client_execute(nullptr, request) : fn_->execute(request);
  return reply != nullptr ? std::string(reply) : std::string();
}

namespace {
// Loaded libraries (dlopen handles, one per file) that have a reader.
std::mutex receivers_mutex;
std::set<void*> receivers;
}  // namespace

bool TdjsonLibrary::claim_receiver() noexcept {
  std::lock_guard lock(receivers_mutex);
  return receivers.insert(handle_).second;
}

void TdjsonLibrary::release_receiver() noexcept {
  std::lock_guard lock(receivers_mutex);
  receivers.erase(handle_);
}

void TdjsonLibrary::destroy_client(std::int32_t client) {
  if (!legacy_) return;
  void* handle = nullptr;
  {
    std::lock_guard lock(legacy_->mutex);
    const auto it = legacy_->handles.find(client);
    if (it == legacy_->handles.end()) return;
    handle = it->second;
    legacy_->handles.erase(it);
  }
  fn_->json_client_destroy(handle);
}

}  // namespace floodgate::telegram
