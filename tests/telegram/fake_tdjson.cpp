// A fake libtdjson for the tests: TDLib's JSON C interface with a scripted
// Telegram behind it. Built three times (see CMakeLists.txt):
//   fake_tdjson          the current interface (td_create_client_id, td_send, ...)
//   fake_tdjson_legacy   only the old td_json_client_* interface (FAKE_TD_LEGACY)
//   fake_tdjson_broken   the current interface without td_receive (FAKE_TD_WITHOUT_RECEIVE)
//
// It behaves like TDLib 1.8.65 where the tests can tell: requests are answered
// on a thread of the library, never inside td_send; a client says nothing
// until its first request, then walks the authorization states:
// waitTdlibParameters -> (database in database_directory) -> waitPhoneNumber
// -> ... -> ready, announcing a new state *before* the `ok` of the request
// that caused it; a rejected bot token is 400 ACCESS_TOKEN_INVALID; `close`
// answers `ok`, announces Closing, answers every request still unanswered
// with 500 "Request aborted", then announces Closed (even a "silent" client:
// closing is local to TDLib). Its "database" is `td.binlog`: one event in
// TDLib's binlog framing (size, header, data, CRC32) whose data is the JSON
// {"authorized": bool}; it creates it 0644 (and folders 0755) on purpose, so
// the tests can see the session tighten them.
//
// The test scripts accounts through extra exported functions (fake_control.hpp):
//   fake_td_script(json)   merge a rule, keyed by "client_id" or by "api_id":
//     "silent": true           never answer anything but close (Telegram unreachable)
//     "bot_token": "...", "phone": "...", "code": "...", "password": "..."  accepted logins
//     "revoked": true          the login is revoked: a saved login closes at start,
//                              a ready client answers its next request 401 SESSION_REVOKED and closes
//     "responses": {"<@type>": [reply, reply, ...]}   replies used in turn, the last one
//                              repeating; the string "silent" means no reply, "pass"
//                              the fake's own behaviour (e.g. a login step after an error)
//   fake_td_push(client, text)   queue any text (even malformed) as if TDLib sent it
//   fake_td_requests()           every request received so far, as a JSON array
//   fake_td_reset()              forget clients, rules and queued messages
#include <boost/crc.hpp>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#define FAKE_TD_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Client {
  bool started = false;
  std::string state = "authorizationStateWaitTdlibParameters";
  std::optional<std::int64_t> api_id;
  fs::path database;
  std::map<std::string, std::size_t> served;  // scripted replies used, per request type
  std::vector<json> unanswered;               // "@extra" of requests left without a reply
};

struct Fake {
  std::mutex mutex;
  std::condition_variable arrived;
  std::deque<std::pair<int, std::string>> queue;  // (client, message) for td_receive
  std::deque<std::pair<int, std::string>> inbox;  // (client, request) for the worker
  std::condition_variable inbox_ready;
  bool worker_started = false;
  std::map<int, Client> clients;
  int next_id = 1;
  std::map<std::int64_t, json> rules_by_client;
  std::map<std::int64_t, json> rules_by_api_id;
  json requests = json::array();
};

// Never destroyed: the worker thread waits on its condition variable for as
// long as the process lives, and destroying a condition variable that a thread
// waits on blocks exit forever (glibc's pthread_cond_destroy waits for waiters).
Fake& fake() {
  static Fake* const instance = new Fake;
  return *instance;
}

// The returned strings live until the next call on the same thread, as TDLib's do.
thread_local std::string returned;
const char* hand_out(std::string text) {
  returned = std::move(text);
  return returned.c_str();
}

class Session {
 public:
  Session(Fake& f, int id, Client& c) : f_(f), id_(id), c_(c) {}

  json rule() const {
    json merged = json::object();
    if (c_.api_id) {
      if (auto it = f_.rules_by_api_id.find(*c_.api_id); it != f_.rules_by_api_id.end()) merged.merge_patch(it->second);
    }
    if (auto it = f_.rules_by_client.find(id_); it != f_.rules_by_client.end()) merged.merge_patch(it->second);
    return merged;
  }

  void emit(json message) {
#ifndef FAKE_TD_LEGACY
    message["@client_id"] = id_;
#endif
    f_.queue.emplace_back(id_, message.dump());
    f_.arrived.notify_all();
  }

  void set_state(const std::string& state) {
    c_.state = state;
    emit({{"@type", "updateAuthorizationState"}, {"authorization_state", {{"@type", state}}}});
  }

  void handle(const std::string& text) {
    auto request = json::parse(text, nullptr, false);
    if (request.is_discarded() || !request.is_object()) {
      return emit({{"@type", "error"}, {"code", 400}, {"message", "Failed to parse JSON object as TDLib request"}});
    }
    f_.requests.push_back({{"client", id_}, {"request", request}});
    if (!c_.started) {
      c_.started = true;
      if (!rule().value("silent", false)) set_state(c_.state);
    }
    extra_ = request.contains("@extra") ? request["@extra"] : json();
    const auto type = request.value("@type", "");
    if (c_.state == "authorizationStateClosed") return reply(error(500, "Request aborted"));
    if (type == "close") return close();
    if (rule().value("silent", false)) return leave_unanswered();

    if (c_.state == "authorizationStateReady" && rule().value("revoked", false)) {
      reply(error(401, "SESSION_REVOKED"));
      return revoke();
    }
    if (const auto scripted = rule().value("responses", json::object()); scripted.contains(type)) {
      const auto& list = scripted[type];
      const auto index = std::min(c_.served[type]++, list.size() - 1);
      if (list[index] == "silent") return leave_unanswered();
      if (list[index] != "pass") return reply(list[index]);
    }
    if (type == "setTdlibParameters") return set_parameters(request);
    if (type == "checkAuthenticationBotToken") return login_step(request, "bot_token", "token", "ACCESS_TOKEN_INVALID", 400);
    if (type == "setAuthenticationPhoneNumber") return login_step(request, "phone", "phone_number", "PHONE_NUMBER_INVALID", 400);
    if (type == "checkAuthenticationCode") return login_step(request, "code", "code", "PHONE_CODE_INVALID", 400);
    if (type == "checkAuthenticationPassword") return login_step(request, "password", "password", "PASSWORD_HASH_INVALID", 400);
    if (type == "testCallEmpty") return reply({{"@type", "ok"}});
    if (type == "testCallString") return reply({{"@type", "testString"}, {"value", request.value("x", "")}});
    if (type == "getOption") return reply({{"@type", "optionValueString"}, {"value", "fake"}});
    if (type == "getAuthorizationState") return reply({{"@type", c_.state}});
    if (c_.state != "authorizationStateReady") return reply(error(401, "Unauthorized"));
    reply(error(400, "fake: unscripted request " + type));
  }

 private:
  static json error(int code, const std::string& message) {
    return {{"@type", "error"}, {"code", code}, {"message", message}};
  }

  void reply(json message) {
    if (!extra_.is_null()) message["@extra"] = extra_;
    emit(std::move(message));
  }

  void leave_unanswered() {
    if (!extra_.is_null()) c_.unanswered.push_back(extra_);
  }

  void close() {
    reply({{"@type", "ok"}});
    set_state("authorizationStateClosing");
    for (auto& extra : c_.unanswered) emit({{"@type", "error"}, {"code", 500}, {"message", "Request aborted"}, {"@extra", extra}});
    c_.unanswered.clear();
    set_state("authorizationStateClosed");
  }

  fs::path binlog() const { return c_.database / "td.binlog"; }

  static void put32(std::string& out, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }

  // One event in TDLib's framing: size, id, type, flags, extra, data, CRC32.
  void save(bool authorized) {
    std::string data = json{{"authorized", authorized}}.dump();
    data.resize((data.size() + 3) / 4 * 4, ' ');
    std::string event;
    put32(event, static_cast<std::uint32_t>(4 + 8 + 4 + 4 + 8 + data.size() + 4));
    event.append(8, '\0');                      // id
    put32(event, static_cast<std::uint32_t>(-3));  // type: TDLib's encryption header
    event.append(4 + 8, '\0');                  // flags, extra
    event += data;
    boost::crc_32_type crc;
    crc.process_bytes(event.data(), event.size());
    put32(event, crc.checksum());
    std::ofstream(binlog(), std::ios::binary) << event;
    ::chmod(binlog().c_str(), 0644);
  }

  // The JSON in the event, or discarded when the file is not one event of ours.
  json load() const {
    std::ifstream in(binlog(), std::ios::binary);
    const std::string event((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    constexpr std::size_t kHeader = 4 + 8 + 4 + 4 + 8;
    if (event.size() < kHeader + 4) return json::value_t::discarded;
    return json::parse(event.substr(kHeader, event.size() - kHeader - 4), nullptr, false);
  }

  void set_parameters(const json& request) {
    if (c_.state != "authorizationStateWaitTdlibParameters") return reply(error(400, "Unexpected setTdlibParameters"));
    const auto api_id = request.value("api_id", 0);
    const auto api_hash = request.value("api_hash", "");
    const auto directory = request.value("database_directory", "");
    if (api_id <= 0 || api_hash.empty()) {
      return reply(error(400, "Valid api_id must be provided. Can be obtained at https://my.telegram.org"));
    }
    if (directory.empty() || request.value("files_directory", "").empty()) {
      return reply(error(400, "fake: database_directory and files_directory are required"));
    }
    c_.api_id = api_id;
    c_.database = directory;
    if (rule().value("silent", false)) return leave_unanswered();

    std::error_code ec;
    fs::create_directories(c_.database, ec);
    const fs::path temp = fs::path(request.value("files_directory", "")) / "temp";
    fs::create_directories(temp, ec);
    ::chmod(temp.c_str(), 0755);
    bool authorized = false;
    if (fs::exists(binlog())) {
      const auto saved = load();
      if (saved.is_discarded() || !saved.is_object()) {
        return reply(error(400, "Can't open database: binlog is corrupted"));
      }
      authorized = saved.value("authorized", false);
    } else {
      save(false);
    }
    // Like TDLib: the new state first, then the request's `ok`.
    if (!authorized) {
      set_state("authorizationStateWaitPhoneNumber");
    } else if (!rule().value("revoked", false)) {
      set_state("authorizationStateReady");
    }
    reply({{"@type", "ok"}});
    if (authorized && rule().value("revoked", false)) revoke();
  }

  // One step of a login: the request's `field` must equal the rule's `key`.
  void login_step(const json& request, const char* key, const char* field, const char* wrong, int wrong_code) {
    const auto expected = rule().value(key, "");
    if (expected.empty() || request.value(field, "") != expected) return reply(error(wrong_code, wrong));
    const std::string step = key;
    if (step == "phone") {
      set_state("authorizationStateWaitCode");
    } else if (step == "code" && !rule().value("password", "").empty()) {
      set_state("authorizationStateWaitPassword");
    } else {
      save(true);
      set_state("authorizationStateReady");
    }
    reply({{"@type", "ok"}});
  }

  void revoke() {
    save(false);
    set_state("authorizationStateLoggingOut");
    set_state("authorizationStateClosing");
    set_state("authorizationStateClosed");
  }

  Fake& f_;
  int id_;
  Client& c_;
  json extra_;
};

int create() {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  const int id = f.next_id++;
  f.clients[id];
  return id;
}

// Answers requests on its own thread, as TDLib does: never inside td_send.
void work() {
  auto& f = fake();
  std::unique_lock lock(f.mutex);
  for (;;) {
    f.inbox_ready.wait(lock, [&] { return !f.inbox.empty(); });
    auto [id, text] = std::move(f.inbox.front());
    f.inbox.pop_front();
    if (auto it = f.clients.find(id); it != f.clients.end()) Session(f, id, it->second).handle(text);
  }
}

void send(int id, const char* text) {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  if (text == nullptr || !f.clients.contains(id)) return;
  f.inbox.emplace_back(id, text);
  if (!f.worker_started) {
    f.worker_started = true;
    std::thread(work).detach();  // lives as long as the process: the library is never unloaded
  }
  f.inbox_ready.notify_all();
}

// The next message (of `client`, if given), waiting up to `timeout` seconds.
[[maybe_unused]] const char* receive(std::optional<int> client, double timeout) {
  auto& f = fake();
  std::unique_lock lock(f.mutex);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  for (;;) {
    auto it = std::find_if(f.queue.begin(), f.queue.end(),
                           [&](const auto& message) { return !client || message.first == *client; });
    if (it != f.queue.end()) {
      auto text = std::move(it->second);
      f.queue.erase(it);
      return hand_out(std::move(text));
    }
    if (f.arrived.wait_until(lock, deadline) == std::cv_status::timeout) return nullptr;
  }
}

const char* execute(const char* text) {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  const auto request = json::parse(text ? text : "", nullptr, false);
  f.requests.push_back({{"client", 0}, {"execute", request}});
  if (!request.is_discarded() && request.value("@type", "") == "setLogVerbosityLevel") {
    return hand_out(R"({"@type":"ok"})");
  }
  return hand_out(R"({"@type":"error","code":400,"message":"fake: not executable"})");
}

}  // namespace

#ifdef FAKE_TD_LEGACY
FAKE_TD_EXPORT void* td_json_client_create() { return reinterpret_cast<void*>(static_cast<std::intptr_t>(create())); }
FAKE_TD_EXPORT void td_json_client_send(void* client, const char* request) {
  send(static_cast<int>(reinterpret_cast<std::intptr_t>(client)), request);
}
FAKE_TD_EXPORT const char* td_json_client_receive(void* client, double timeout) {
  return receive(static_cast<int>(reinterpret_cast<std::intptr_t>(client)), timeout);
}
FAKE_TD_EXPORT const char* td_json_client_execute(void*, const char* request) { return execute(request); }
FAKE_TD_EXPORT void td_json_client_destroy(void* client) {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  f.clients.erase(static_cast<int>(reinterpret_cast<std::intptr_t>(client)));
}
#else
FAKE_TD_EXPORT int td_create_client_id() { return create(); }
FAKE_TD_EXPORT void td_send(int client, const char* request) { send(client, request); }
#ifndef FAKE_TD_WITHOUT_RECEIVE
FAKE_TD_EXPORT const char* td_receive(double timeout) { return receive(std::nullopt, timeout); }
#endif
FAKE_TD_EXPORT const char* td_execute(const char* request) { return execute(request); }
#endif

FAKE_TD_EXPORT void fake_td_script(const char* rule_text) {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  auto rule = json::parse(rule_text, nullptr, false);
  if (rule.contains("client_id")) f.rules_by_client[rule["client_id"].get<std::int64_t>()].merge_patch(rule);
  if (rule.contains("api_id")) f.rules_by_api_id[rule["api_id"].get<std::int64_t>()].merge_patch(rule);
}

FAKE_TD_EXPORT void fake_td_push(int client, const char* text) {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  f.queue.emplace_back(client, text);
  f.arrived.notify_all();
}

FAKE_TD_EXPORT const char* fake_td_requests() {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  return hand_out(f.requests.dump());
}

FAKE_TD_EXPORT void fake_td_reset() {
  auto& f = fake();
  std::lock_guard lock(f.mutex);
  f.queue.clear();
  f.inbox.clear();
  f.clients.clear();
  f.rules_by_client.clear();
  f.rules_by_api_id.clear();
  f.requests = json::array();
}
