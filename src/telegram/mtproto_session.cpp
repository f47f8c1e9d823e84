#include <floodgate/telegram/mtproto_session.hpp>

#include <floodgate/core/backoff.hpp>
#include <floodgate/core/log.hpp>
#include <floodgate/telegram/flood_errors.hpp>

#include "floodgate/async/detail/post_completion.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/crc.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <fmt/std.h>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

namespace floodgate::telegram {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr auto kPrivateDir = fs::perms::owner_all;                                 // 0700
constexpr auto kPrivateFile = fs::perms::owner_read | fs::perms::owner_write;     // 0600

bool valid_session_id(std::string_view id) {
  return !id.empty() && id.front() != '.' && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
  });
}

// Creates the missing folders of `folder`, each 0700 regardless of the umask,
// then makes `folder` and everything in it private (0700 folders, 0600
// files), so that files TDLib created with looser modes are tightened too.
// Returns what went wrong, or an empty string.
std::string make_private_folder(const fs::path& folder) {
  std::error_code ec;
  std::vector<fs::path> missing;
  for (auto p = folder; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (!fs::create_directory(*it, ec) && ec) return fmt::format("cannot be created: {}", ec.message());
    fs::permissions(*it, kPrivateDir, fs::perm_options::replace, ec);
  }

  struct stat info {};
  if (::stat(folder.c_str(), &info) != 0) return "cannot be read";
  if (!S_ISDIR(info.st_mode)) return "is not a folder";
  if (info.st_uid != ::geteuid()) return "belongs to another user";

  fs::permissions(folder, kPrivateDir, fs::perm_options::replace, ec);
  if (ec) return fmt::format("cannot be made private: {}", ec.message());
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const auto status = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_directory(status)) {
      fs::permissions(it->path(), kPrivateDir, fs::perm_options::replace, ec);
    } else if (fs::is_regular_file(status)) {
      fs::permissions(it->path(), kPrivateFile, fs::perm_options::replace, ec);
    }
    if (ec) return fmt::format("cannot be made private ({}): {}", it->path().filename(), ec.message());
  }
  return ec ? fmt::format("cannot be listed: {}", ec.message()) : std::string();
}

nlohmann::json auth_request(AuthStep step, const Secret& answer) {
  switch (step) {
    case AuthStep::phone_number:
      return {{"@type", "setAuthenticationPhoneNumber"}, {"phone_number", answer.reveal()}};
    case AuthStep::code:
      return {{"@type", "checkAuthenticationCode"}, {"code", answer.reveal()}};
    case AuthStep::password:
      return {{"@type", "checkAuthenticationPassword"}, {"password", answer.reveal()}};
    case AuthStep::email_address:
      return {{"@type", "setAuthenticationEmailAddress"}, {"email_address", answer.reveal()}};
    case AuthStep::email_code:
      return {{"@type", "checkAuthenticationEmailCode"},
              {"code", {{"@type", "emailAddressAuthenticationCode"}, {"code", answer.reveal()}}}};
  }
  return nullptr;
}

std::string_view step_name(AuthStep step) {
  switch (step) {
    case AuthStep::phone_number: return "phone number";
    case AuthStep::code: return "login code";
    case AuthStep::password: return "2FA password";
    case AuthStep::email_address: return "e-mail address";
    case AuthStep::email_code: return "e-mail code";
  }
  return "login";
}

std::optional<AuthStep> prompt_step(std::string_view state) {
  if (state == "authorizationStateWaitPhoneNumber") return AuthStep::phone_number;
  if (state == "authorizationStateWaitCode") return AuthStep::code;
  if (state == "authorizationStateWaitPassword") return AuthStep::password;
  if (state == "authorizationStateWaitEmailAddress") return AuthStep::email_address;
  if (state == "authorizationStateWaitEmailCode") return AuthStep::email_code;
  return std::nullopt;
}

// Login states of TDLib 1.8.65 that only a person can get past, and what to tell them.
std::optional<std::string_view> user_action_for(std::string_view state) {
  if (state == "authorizationStateWaitRegistration") {
    return "the phone number has no Telegram account; sign up in an official app first";
  }
  if (state == "authorizationStateWaitPremiumPurchase") {
    return "Telegram requires a Telegram Premium purchase before this account can log in; buy it in an official app";
  }
  if (state == "authorizationStateWaitOtherDeviceConfirmation") {
    return "Telegram waits for the login to be confirmed on another device";
  }
  return std::nullopt;
}

// Answers to a login step that say the account itself cannot log in, not that
// the answer was mistyped: a definite rejection.
bool account_rejected(std::string_view message) {
  for (std::string_view definite : {"PHONE_NUMBER_BANNED", "USER_DEACTIVATED", "API_ID_INVALID",
                                    "API_ID_PUBLISHED_FLOOD", "AUTH_KEY_UNREGISTERED", "SESSION_REVOKED"}) {
    if (message.find(definite) != std::string_view::npos) return true;
  }
  return false;
}

// TDLib truncates a td.binlog whose events it cannot read and starts over,
// which silently loses the login. Its first event (the encryption header,
// never encrypted itself) must be whole, of a sane size and carry a valid
// CRC32; anything else is reported instead of handed to TDLib. Returns what
// is wrong, or an empty string (also for a missing or empty file).
std::string check_binlog(const fs::path& file) {
  // Event layout (little endian): size u32, id u64, type i32, flags i32,
  // extra u64, data, crc32 u32 of everything before it.
  constexpr std::uint32_t kMinEvent = 4 + 8 + 4 + 4 + 8 + 4;
  constexpr std::uint32_t kMaxEvent = 1u << 24;
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::vector<unsigned char> head(kMinEvent);
  in.read(reinterpret_cast<char*>(head.data()), 4);
  if (in.gcount() == 0) return {};
  if (in.gcount() < 4) return "td.binlog is cut short";
  const std::uint32_t size = head[0] | head[1] << 8 | head[2] << 16 | static_cast<std::uint32_t>(head[3]) << 24;
  if (size < kMinEvent || size > kMaxEvent || size % 4 != 0) {
    return fmt::format("td.binlog starts with an event of impossible size {}", size);
  }
  head.resize(size);
  in.read(reinterpret_cast<char*>(head.data()) + 4, size - 4);
  if (static_cast<std::uint32_t>(in.gcount()) != size - 4) return "td.binlog is cut short in its first event";
  boost::crc_32_type crc;
  crc.process_bytes(head.data(), size - 4);
  const auto* tail = head.data() + size - 4;
  const std::uint32_t stored = tail[0] | tail[1] << 8 | tail[2] << 16 | static_cast<std::uint32_t>(tail[3]) << 24;
  if (crc.checksum() != stored) return "td.binlog's first event fails its checksum";
  return {};
}

}  // namespace

fs::path default_sessions_root() {
  fs::path home = ".";
  if (const char* variable = std::getenv("HOME"); variable != nullptr && *variable != '\0') {
    home = variable;
  } else {
    // getpwuid_r: getpwuid's result is shared by every thread of the process.
    passwd entry{};
    passwd* user = nullptr;
    std::vector<char> buffer(std::size_t{16} * 1024);
    if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &user) == 0 && user != nullptr) {
      home = user->pw_dir;
    }
  }
  return home / ".floodgate" / "sessions";
}

std::string_view to_string(AuthStep step) noexcept {
  switch (step) {
    case AuthStep::phone_number: return "phone_number";
    case AuthStep::code: return "code";
    case AuthStep::password: return "password";
    case AuthStep::email_address: return "email_address";
    case AuthStep::email_code: return "email_code";
  }
  return "?";
}

std::string_view to_string(MtprotoSession::State state) noexcept {
  switch (state) {
    case MtprotoSession::State::starting: return "starting";
    case MtprotoSession::State::authorizing: return "authorizing";
    case MtprotoSession::State::waiting: return "waiting";
    case MtprotoSession::State::needs_user_action: return "needs user action";
    case MtprotoSession::State::ready: return "ready";
    case MtprotoSession::State::closing: return "closing";
    case MtprotoSession::State::closed: return "closed";
    case MtprotoSession::State::disabled: return "disabled";
  }
  return "unknown";
}

struct MtprotoSession::Impl : std::enable_shared_from_this<Impl> {
  // What a login request was, for its reply's meaning and for sending it again.
  enum class LoginKind { parameters, bot_token, answer };

  Impl(TdjsonClient& tdjson_client, std::string session_id, MtprotoCredentials creds, Options opts)
      : tdjson(tdjson_client),
        io(tdjson_client.get_executor()),
        id(std::move(session_id)),
        credentials(std::move(creds)),
        options(std::move(opts)),
        folder((options.sessions_root.empty() ? default_sessions_root() : options.sessions_root) / id),
        strand(asio::make_strand(tdjson_client.get_executor())) {}

  void start();
  void on_update(nlohmann::json update);
  // Returns true when the state is authorizationStateClosed.
  bool on_authorization_state(const std::string& state);
  void send_parameters();
  void ask(AuthStep step, std::string retry_reason);
  void send_login(LoginKind kind, nlohmann::json request, std::optional<AuthStep> step);
  void on_login_reply(std::uint64_t generation, std::error_code ec, const nlohmann::json& reply);
  void retry_login(std::string why, std::optional<std::chrono::milliseconds> delay = std::nullopt);
  void inspect_reply(const nlohmann::json& reply);
  void set_state(State next, std::error_code code = {}, std::string reason = {});
  void disable(std::error_code code, std::string why) { set_state(State::disabled, code, std::move(why)); }
  void needs_user_action(std::string why) { set_state(State::needs_user_action, {}, std::move(why)); }
  void tdlib_closed();
  void request_close();
  void tighten_folder() {
    if (auto problem = make_private_folder(folder); !problem.empty()) {
      log(LogLevel::warning, "mtproto {}: session folder {} {}", id, folder, problem);
    }
  }
  bool close_requested() const {
    std::lock_guard lock(mutex);
    return close_sent;
  }

  // Through a copy of the executor: a completion queued on the strand may run
  // after the TdjsonClient is gone (the io_context outlives both).
  template <class Handler, class... Args>
  void complete(Handler handler, Args... args) {
    async::detail::post_completion(io, std::move(handler), std::move(args)...);
  }

  TdjsonClient& tdjson;
  const TdjsonClient::executor_type io;
  const std::string id;
  const MtprotoCredentials credentials;
  const Options options;
  const fs::path folder;
  const asio::strand<TdjsonClient::executor_type> strand;
  std::optional<TdjsonClient::ClientId> client;  // set once, in start()
  // Set when async_close completed or the session was destroyed: no user
  // callback runs from then on.
  std::atomic<bool> silenced{false};

  // The login in progress; touched on the strand only.
  struct Login {
    LoginKind kind = LoginKind::parameters;
    nlohmann::json request;
    std::optional<AuthStep> step;
    std::uint64_t generation = 0;  // a reply or timer of an older request is ignored
    int failures = 0;              // consecutive timeouts and transient errors: the backoff
    std::optional<AuthStep> asked;  // the step last asked, and how often in a row
    int asked_times = 0;
    std::unique_ptr<asio::steady_timer> retry;
  } login;

  mutable std::mutex mutex;
  State state = State::starting;
  std::error_code disabled_code;
  std::string reason;
  bool close_sent = false;
  bool closed_by_tdlib = false;
  // Keyed, so that a cancelled waiter can be taken out (a node-based map: Boost
  // 1.81's any_completion_handler cannot be move-assigned, which vector::erase does).
  using Waiters = std::map<std::uint64_t, WaitHandler>;
  Waiters ready_waiters;
  Waiters close_waiters;
  std::uint64_t last_waiter = 0;

  // Under `mutex`. The waiter's cancellation slot takes it out again and
  // completes it with errc::cancelled: on any type when `any_type` (waiting
  // has no side effect), else on terminal or partial only.
  void add_waiter(Waiters Impl::*list, WaitHandler handler, bool any_type) {
    const auto key = ++last_waiter;
    auto slot = asio::get_associated_cancellation_slot(handler);
    (this->*list).emplace(key, std::move(handler));
    if (!slot.is_connected()) return;
    slot.assign([weak = weak_from_this(), list, key, any_type](asio::cancellation_type type) {
      constexpr auto ends_now = asio::cancellation_type::terminal | asio::cancellation_type::partial;
      if (type == asio::cancellation_type::none || (!any_type && (type & ends_now) == asio::cancellation_type::none)) {
        return;
      }
      const auto self = weak.lock();
      if (!self) return;
      Waiters::node_type node;
      {
        std::lock_guard lock(self->mutex);
        node = (self.get()->*list).extract(key);
      }
      if (!node.empty()) self->complete(std::move(node.mapped()), make_error_code(errc::cancelled));
    });
  }
};

void MtprotoSession::Impl::start() {
  if (auto problem = make_private_folder(folder); !problem.empty()) {
    return disable(make_error_code(errc::io_error), fmt::format("session folder {} {}", folder, problem));
  }
  if (auto problem = check_binlog(folder / "td.binlog"); !problem.empty()) {
    // Handing it to TDLib would lose the login without a word: leave it for a person.
    return disable(make_error_code(errc::store_corrupt),
                   fmt::format("the session database in {} is corrupt ({}); move it away to log in afresh",
                               folder, problem));
  }
  client = tdjson.create_client(strand, [weak = weak_from_this()](nlohmann::json update) {
    if (auto self = weak.lock()) self->on_update(std::move(update));
  });
  log(LogLevel::info, "mtproto {}: starting in {}", id, folder);
  // TDLib stays silent until its first request; any request wakes it.
  tdjson.async_send(*client, {{"@type", "getOption"}, {"name", "version"}}, [](std::error_code, const nlohmann::json&) {});
}

// On the strand. The user hears of an update before the session acts on its
// consequences, so that a closed session's last callback precedes its close.
void MtprotoSession::Impl::on_update(nlohmann::json update) {
  if (silenced) return;
  bool closed = false;
  if (td_type(update) == "updateAuthorizationState") {
    const auto auth_state = update.find("authorization_state");
    if (auth_state != update.end()) closed = on_authorization_state(std::string(td_type(*auth_state)));
  }
  if (options.on_update && !silenced) options.on_update(std::move(update));
  if (closed) tdlib_closed();
}

bool MtprotoSession::Impl::on_authorization_state(const std::string& tdlib_state) {
  if (tdlib_state.empty()) return false;  // unreadable: not a state TDLib sends
  // A new state is progress: earlier timeouts no longer count, a pending retry is moot.
  login.failures = 0;
  ++login.generation;
  if (login.retry) login.retry->cancel();
  if (tdlib_state == "authorizationStateClosed") return true;
  if (tdlib_state == "authorizationStateClosing") return false;
  if (close_requested()) return false;  // closing: nothing to log in to any more
  if (tdlib_state == "authorizationStateWaitTdlibParameters") {
    send_parameters();
    return false;
  }
  tighten_folder();  // TDLib has opened (and created) its files by now
  if (tdlib_state == "authorizationStateReady") {
    set_state(State::ready);
    return false;
  }
  if (tdlib_state == "authorizationStateLoggingOut") {
    disable(make_error_code(errc::auth_failed),
            "Telegram ended the login (authorization revoked or logged out elsewhere)");
    return false;
  }

  set_state(State::authorizing);
  if (tdlib_state == "authorizationStateWaitPhoneNumber" && options.bot_token) {
    send_login(LoginKind::bot_token,
               {{"@type", "checkAuthenticationBotToken"}, {"token", options.bot_token->reveal()}}, std::nullopt);
  } else if (auto step = prompt_step(tdlib_state)) {
    ask(*step, {});
  } else if (auto action = user_action_for(tdlib_state)) {
    needs_user_action(fmt::format("{} ({})", *action, tdlib_state));
  } else {
    needs_user_action(fmt::format("TDLib asks for a login step floodgate does not handle ({}); "
                                  "log the account in with another TDLib client, then reuse the folder",
                                  tdlib_state));
  }
  return false;
}

void MtprotoSession::Impl::send_parameters() {
  send_login(LoginKind::parameters,
             {
                 {"@type", "setTdlibParameters"},
                 {"use_test_dc", options.use_test_dc},
                 {"database_directory", folder.string()},
                 {"files_directory", (folder / "files").string()},
                 {"database_encryption_key", options.database_encryption_key.reveal()},
                 {"use_file_database", options.use_file_database},
                 {"use_chat_info_database", options.use_chat_info_database},
                 {"use_message_database", options.use_message_database},
                 {"use_secret_chats", false},
                 {"api_id", credentials.api_id},
                 {"api_hash", credentials.api_hash.reveal()},
                 {"system_language_code", options.system_language_code},
                 {"device_model", options.device_model},
                 {"system_version", ""},
                 {"application_version", options.application_version},
             },
             std::nullopt);
}

void MtprotoSession::Impl::ask(AuthStep step, std::string retry_reason) {
  if (!options.prompt) {
    return needs_user_action(fmt::format("not logged in: TDLib asks for the {}, and neither a bot token nor a "
                                         "login prompt is configured",
                                         step_name(step)));
  }
  login.asked_times = login.asked == step ? login.asked_times + 1 : 1;
  login.asked = step;
  if (login.asked_times > options.max_prompt_retries + 1) {
    return needs_user_action(fmt::format("gave up after {} rejected answers to the {} prompt (last: {})",
                                         login.asked_times - 1, step_name(step), retry_reason));
  }
  // The person may answer from any thread, later; only the first answer counts.
  auto answered = std::make_shared<std::atomic<bool>>(false);
  AuthReply reply = [weak = weak_from_this(), step, answered](Secret answer) {
    if (answered->exchange(true)) return;
    if (auto self = weak.lock()) {
      asio::post(self->strand, [self, step, answer = std::move(answer)] {
        if (self->silenced || self->close_requested()) return;
        if (answer.reveal().empty()) {
          return self->needs_user_action(fmt::format("the login was cancelled: no answer to the {} prompt",
                                                     step_name(step)));
        }
        self->send_login(LoginKind::answer, auth_request(step, answer), step);
      });
    }
  };
  if (silenced) return;
  options.prompt(AuthPrompt{id, step, std::move(retry_reason), login.asked_times}, std::move(reply));
}

// On the strand. Login requests carry their own timeout: a login that does
// not progress is retried, never taken for a rejection.
void MtprotoSession::Impl::send_login(LoginKind kind, nlohmann::json request, std::optional<AuthStep> step) {
  login.kind = kind;
  login.request = std::move(request);
  login.step = step;
  const auto generation = ++login.generation;
  tdjson.async_send(*client, login.request, options.login_timeout,
                    asio::bind_executor(strand, [weak = weak_from_this(), generation](std::error_code ec,
                                                                                      const nlohmann::json& reply) {
                      if (auto self = weak.lock()) self->on_login_reply(generation, ec, reply);
                    }));
}

void MtprotoSession::Impl::on_login_reply(std::uint64_t generation, std::error_code ec, const nlohmann::json& reply) {
  // A stale reply, or the close: TDLib answers what was pending with
  // 500 "Request aborted" when it closes, which is no rejection.
  if (generation != login.generation || silenced || close_requested() || ec == errc::shut_down) return;
  if (ec == errc::deadline_exceeded) {
    return retry_login(fmt::format("no answer from TDLib to {} within {} ms (is Telegram reachable?)",
                                   td_type(login.request), options.login_timeout.count()));
  }
  if (ec) return retry_login(fmt::format("{} failed: {}", td_type(login.request), ec.message()));
  const auto error = classify_td_response(reply);
  if (!error) {
    login.failures = 0;
    if (login.kind == LoginKind::parameters) tighten_folder();  // TDLib created its database
    return;  // accepted: TDLib announces the next state
  }
  if (error->kind == OutcomeKind::flood_wait) {
    return retry_login(fmt::format("Telegram asks to wait {} s before logging in again ({})",
                                   error->retry_after.count(), error->message),
                       std::chrono::duration_cast<std::chrono::milliseconds>(error->retry_after));
  }
  if (error->kind == OutcomeKind::maybe_applied || error->kind == OutcomeKind::not_sent) {  // not a rejection
    return retry_login(fmt::format("{} failed: {} {}", td_type(login.request), error->code, error->message));
  }
  switch (login.kind) {
    case LoginKind::parameters:
      if (error->message.find("encryption key") != std::string::npos) {
        return disable(make_error_code(errc::store_corrupt),
                       fmt::format("the session database in {} is encrypted with another key ({}); set "
                                   "Options::database_encryption_key to the key it was created with",
                                   folder, error->message));
      }
      if (error->kind == OutcomeKind::auth_failed || error->message.find("api_") != std::string::npos) {
        return disable(make_error_code(errc::auth_failed),
                       fmt::format("TDLib rejected the api_id/api_hash: {}", error->message));
      }
      return disable(make_error_code(errc::store_corrupt),
                     fmt::format("TDLib could not open the session database in {}: {}", folder, error->message));
    case LoginKind::bot_token:
      return disable(make_error_code(errc::auth_failed), fmt::format("the bot token was rejected: {}", error->message));
    case LoginKind::answer:
      if (error->kind == OutcomeKind::auth_failed || account_rejected(error->message)) {
        return disable(make_error_code(errc::auth_failed), fmt::format("login rejected: {}", error->message));
      }
      return ask(*login.step, error->message);  // a mistyped answer: ask again (bounded)
  }
}

// On the strand: reports `waiting` and sends the same login request again
// after `delay` (default: 1 s, doubling per failure, capped).
void MtprotoSession::Impl::retry_login(std::string why, std::optional<std::chrono::milliseconds> delay) {
  ++login.failures;
  if (!delay) {
    // The top of the backoff's range, no jitter: one session per account, no herd to spread.
    const auto cap = options.login_retry_max;
    delay = doubling_ceiling(std::min<std::chrono::milliseconds>(std::chrono::seconds(1), cap), cap,
                             static_cast<std::size_t>(login.failures));
  }
  set_state(State::waiting, {},
            fmt::format("{}; trying again in {} ms", why, delay->count()));
  const auto generation = login.generation;
  login.retry = std::make_unique<asio::steady_timer>(strand, *delay);
  login.retry->async_wait([weak = weak_from_this(), generation](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec || generation != self->login.generation || self->silenced || self->close_requested()) return;
    self->set_state(State::authorizing);
    self->send_login(self->login.kind, self->login.request, self->login.step);
  });
}

void MtprotoSession::Impl::inspect_reply(const nlohmann::json& reply) {
  const auto error = classify_td_response(reply);
  if (!error || error->kind != OutcomeKind::auth_failed) return;
  {
    std::lock_guard lock(mutex);
    if (state != State::ready || close_sent) return;  // before login TDLib answers 401 to most requests
  }
  disable(make_error_code(errc::auth_failed), fmt::format("authorization failed: {}", error->message));
}

void MtprotoSession::Impl::set_state(State next, std::error_code code, std::string why) {
  Waiters waiters;
  std::error_code outcome;
  {
    std::lock_guard lock(mutex);
    // Disabled and closed are final; the first reason is the one that matters.
    if (state == State::disabled || state == State::closed) return;
    if (state == next && why == reason) return;
    if (state == State::closing && next != State::closed && next != State::disabled) return;
    state = next;
    reason = why;
    if (next == State::disabled) disabled_code = code;
    if (next != State::starting && next != State::authorizing && next != State::closing) {
      waiters = std::move(ready_waiters);
      ready_waiters.clear();
      switch (next) {
        case State::ready: outcome = {}; break;
        case State::disabled: outcome = code; break;
        case State::waiting: outcome = make_error_code(errc::deadline_exceeded); break;
        case State::needs_user_action: outcome = make_error_code(errc::cancelled); break;
        default: outcome = make_error_code(errc::shut_down); break;
      }
    }
  }
  if (next == State::disabled) {
    log(LogLevel::warning, "mtproto {}: disabled: {}", id, why);
  } else if (!why.empty()) {
    log(LogLevel::warning, "mtproto {}: {}: {}", id, to_string(next), why);
  } else {
    log(LogLevel::info, "mtproto {}: {}", id, to_string(next));
  }
  for (auto& [key, waiter] : waiters) complete(std::move(waiter), outcome);
  if (options.on_state_change) {
    // Through the strand, in order; checked again there, since the session
    // may have closed (or been destroyed) meanwhile.
    asio::post(strand, [self = shared_from_this(), next, why = std::move(why)] {
      if (!self->silenced) self->options.on_state_change(next, why);
    });
  }
}

// On the strand, after the user saw the Closed update.
void MtprotoSession::Impl::tdlib_closed() {
  tighten_folder();
  bool requested = false;
  {
    std::lock_guard lock(mutex);
    closed_by_tdlib = true;
    requested = close_sent;
  }
  if (requested) {
    set_state(State::closed);
  } else {
    disable(make_error_code(errc::auth_failed), "TDLib closed the session (authorization revoked or logged out)");
  }
  // Queued behind the state-change callback just posted: the close completes
  // after the session's last callback, and nothing runs after it.
  asio::post(strand, [self = shared_from_this()] {
    Waiters waiters;
    {
      std::lock_guard lock(self->mutex);
      waiters = std::move(self->close_waiters);
      self->close_waiters.clear();
    }
    self->silenced = true;
    for (auto& [key, waiter] : waiters) self->complete(std::move(waiter), std::error_code{});
  });
}

void MtprotoSession::Impl::request_close() {
  {
    std::lock_guard lock(mutex);
    if (!client || closed_by_tdlib || close_sent) return;
    close_sent = true;
  }
  tdjson.async_send(*client, {{"@type", "close"}}, [](std::error_code, const nlohmann::json&) {});
}

MtprotoSession::MtprotoSession(TdjsonClient& tdjson, std::string id, MtprotoCredentials credentials,
                               Options options) {
  if (!valid_session_id(id)) {
    throw Error(fmt::format("invalid MTProto session id \"{}\": use letters, digits, '.', '-', '_' "
                            "and do not start with '.'",
                            id));
  }
  impl_ = std::make_shared<Impl>(tdjson, std::move(id), std::move(credentials), std::move(options));
  impl_->start();
}

MtprotoSession::~MtprotoSession() {
  // TDLib must close the database before the process ends, or it aborts at
  // exit; the wait is signalled by the receive thread, not the io_context.
  impl_->request_close();
  if (impl_->client && !impl_->tdjson.wait_closed(*impl_->client, impl_->options.close_timeout)) {
    log(LogLevel::warning, "mtproto {}: TDLib did not close the session within {} ms", impl_->id,
        impl_->options.close_timeout.count());
  }
  impl_->silenced = true;
  if (impl_->client) impl_->tdjson.clear_update_handler(*impl_->client);
  Impl::Waiters ready;
  Impl::Waiters closing;
  {
    std::lock_guard lock(impl_->mutex);
    ready = std::move(impl_->ready_waiters);
    closing = std::move(impl_->close_waiters);
    impl_->ready_waiters.clear();
    impl_->close_waiters.clear();
  }
  for (auto* waiters : {&ready, &closing}) {
    for (auto& [key, waiter] : *waiters) impl_->complete(std::move(waiter), make_error_code(errc::shut_down));
  }
  // A pending login retry must not outlive the strand's executor: cancel it there.
  asio::post(impl_->strand, [impl = impl_] {
    if (impl->login.retry) impl->login.retry->cancel();
  });
}

const std::string& MtprotoSession::id() const noexcept { return impl_->id; }
std::optional<TdjsonClient::ClientId> MtprotoSession::client_id() const { return impl_->client; }
const fs::path& MtprotoSession::folder() const noexcept { return impl_->folder; }

MtprotoSession::State MtprotoSession::state() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->state;
}

std::string MtprotoSession::disabled_reason() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->state == State::disabled ? impl_->reason : std::string();
}

std::string MtprotoSession::reason() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->reason;
}

void MtprotoSession::wait_ready(WaitHandler handler) {
  std::error_code outcome;
  {
    std::lock_guard lock(impl_->mutex);
    switch (impl_->state) {
      case State::starting:
      case State::authorizing:
        impl_->add_waiter(&Impl::ready_waiters, std::move(handler), /*any_type=*/true);
        return;
      case State::ready: break;
      case State::waiting: outcome = make_error_code(errc::deadline_exceeded); break;
      case State::needs_user_action: outcome = make_error_code(errc::cancelled); break;
      case State::disabled: outcome = impl_->disabled_code; break;
      case State::closing:
      case State::closed: outcome = make_error_code(errc::shut_down); break;
    }
  }
  impl_->complete(std::move(handler), outcome);
}

void MtprotoSession::send(nlohmann::json request, SendHandler handler) {
  std::error_code refused;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->state == State::disabled) {
      refused = impl_->disabled_code;
    } else if (impl_->state == State::closing || impl_->state == State::closed || !impl_->client) {
      refused = make_error_code(errc::shut_down);
    }
  }
  if (refused) return impl_->complete(std::move(handler), refused, nlohmann::json(nullptr));

  // The reply is inspected on the handler's own executor, right before it runs.
  auto executor = asio::get_associated_executor(handler, impl_->tdjson.get_executor());
  // The caller's cancellation slot goes with it to TdjsonClient (its rules).
  auto slot = asio::get_associated_cancellation_slot(handler);
  impl_->tdjson.async_send(
      *impl_->client, std::move(request),
      asio::bind_cancellation_slot(
          slot, asio::bind_executor(executor, [weak = std::weak_ptr<Impl>(impl_), handler = std::move(handler)](
                                                  std::error_code ec, nlohmann::json reply) mutable {
            if (auto self = weak.lock(); self && !ec) self->inspect_reply(reply);
            std::move(handler)(ec, std::move(reply));
          })));
}

void MtprotoSession::close(WaitHandler handler) {
  bool open = false;
  {
    std::lock_guard lock(impl_->mutex);
    open = impl_->client && !impl_->closed_by_tdlib;
    if (open) impl_->add_waiter(&Impl::close_waiters, std::move(handler), /*any_type=*/false);
  }
  if (!open) {
    // Nothing left to close; still after every callback already queued.
    // NOLINTNEXTLINE(bugprone-use-after-move): handler was moved above only when open
    return asio::post(impl_->strand, [impl = impl_, handler = std::move(handler)]() mutable {
      impl->silenced = true;
      impl->complete(std::move(handler), std::error_code{});
    });
  }
  impl_->set_state(State::closing);
  impl_->request_close();
}

}  // namespace floodgate::telegram
