#include <floodgate/telegram/mtproto_session.hpp>

#include <floodgate/core/log.hpp>
#include <floodgate/telegram/flood_errors.hpp>

#include "floodgate/async/detail/post_completion.hpp"

#include <boost/asio/bind_executor.hpp>
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

std::optional<AuthStep> prompt_step(std::string_view state) {
  if (state == "authorizationStateWaitPhoneNumber") return AuthStep::phone_number;
  if (state == "authorizationStateWaitCode") return AuthStep::code;
  if (state == "authorizationStateWaitPassword") return AuthStep::password;
  if (state == "authorizationStateWaitEmailAddress") return AuthStep::email_address;
  if (state == "authorizationStateWaitEmailCode") return AuthStep::email_code;
  return std::nullopt;
}

}  // namespace

fs::path default_sessions_root() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    const passwd* user = ::getpwuid(::geteuid());
    home = user != nullptr ? user->pw_dir : ".";
  }
  return fs::path(home) / ".floodgate" / "sessions";
}

std::string_view to_string(MtprotoSession::State state) noexcept {
  switch (state) {
    case MtprotoSession::State::starting: return "starting";
    case MtprotoSession::State::authorizing: return "authorizing";
    case MtprotoSession::State::ready: return "ready";
    case MtprotoSession::State::closing: return "closing";
    case MtprotoSession::State::closed: return "closed";
    case MtprotoSession::State::disabled: return "disabled";
  }
  return "unknown";
}

struct MtprotoSession::Impl : std::enable_shared_from_this<Impl> {
  Impl(TdjsonClient& tdjson_client, std::string session_id, MtprotoCredentials creds, Options opts)
      : tdjson(tdjson_client),
        id(std::move(session_id)),
        credentials(std::move(creds)),
        options(std::move(opts)),
        folder((options.sessions_root.empty() ? default_sessions_root() : options.sessions_root) / id),
        strand(asio::make_strand(tdjson_client.get_executor())) {}

  void start();
  void on_update(nlohmann::json update);
  void on_authorization_state(const std::string& state);
  void send_parameters();
  void ask(AuthStep step, std::string retry_reason);
  void send_auth(nlohmann::json request, std::optional<AuthStep> step);
  void inspect_reply(const nlohmann::json& reply);
  void set_state(State next, std::error_code code = {}, std::string reason = {});
  void disable(std::error_code code, std::string why) { set_state(State::disabled, code, std::move(why)); }
  void tdlib_closed();
  void request_close();
  bool close_requested() const {
    std::lock_guard lock(mutex);
    return close_sent;
  }

  template <class Handler, class... Args>
  void complete(Handler handler, Args... args) {
    async::detail::post_completion(tdjson.get_executor(), std::move(handler), std::move(args)...);
  }

  TdjsonClient& tdjson;
  const std::string id;
  const MtprotoCredentials credentials;
  const Options options;
  const fs::path folder;
  const asio::strand<TdjsonClient::executor_type> strand;
  std::optional<TdjsonClient::ClientId> client;  // set once, in start()

  mutable std::mutex mutex;
  State state = State::starting;
  std::error_code disabled_code;
  std::string reason;
  bool close_sent = false;
  bool closed_by_tdlib = false;
  std::vector<WaitHandler> ready_waiters;
  std::vector<WaitHandler> close_waiters;
};

void MtprotoSession::Impl::start() {
  if (auto problem = make_private_folder(folder); !problem.empty()) {
    return disable(make_error_code(errc::io_error), fmt::format("session folder {} {}", folder, problem));
  }
  client = tdjson.create_client(strand, [weak = weak_from_this()](nlohmann::json update) {
    if (auto self = weak.lock()) self->on_update(std::move(update));
  });
  log(LogLevel::info, "mtproto {}: starting in {}", id, folder);
  // TDLib stays silent until its first request; any request wakes it.
  tdjson.async_send(*client, {{"@type", "getOption"}, {"name", "version"}}, [](std::error_code, nlohmann::json) {});
}

void MtprotoSession::Impl::on_update(nlohmann::json update) {
  if (td_type(update) == "updateAuthorizationState") {
    const auto auth_state = update.find("authorization_state");
    if (auth_state != update.end()) on_authorization_state(std::string(td_type(*auth_state)));
  }
  if (options.on_update) options.on_update(std::move(update));
}

void MtprotoSession::Impl::on_authorization_state(const std::string& tdlib_state) {
  if (tdlib_state.empty()) return;  // unreadable: not a state TDLib sends
  if (tdlib_state == "authorizationStateWaitTdlibParameters") return send_parameters();
  if (tdlib_state == "authorizationStateReady") {
    make_private_folder(folder);  // TDLib has created its files by now
    return set_state(State::ready);
  }
  if (tdlib_state == "authorizationStateClosed") return tdlib_closed();
  if (tdlib_state == "authorizationStateClosing") return;
  if (tdlib_state == "authorizationStateLoggingOut") {
    if (!close_requested()) {
      disable(make_error_code(errc::auth_failed),
              "Telegram ended the login (authorization revoked or logged out elsewhere)");
    }
    return;
  }

  set_state(State::authorizing);
  if (tdlib_state == "authorizationStateWaitPhoneNumber" && options.bot_token) {
    return send_auth({{"@type", "checkAuthenticationBotToken"}, {"token", options.bot_token->reveal()}},
                     std::nullopt);
  }
  if (tdlib_state == "authorizationStateWaitRegistration") {
    return disable(make_error_code(errc::auth_failed),
                   "the phone number has no Telegram account; sign up in an official app first");
  }
  if (auto step = prompt_step(tdlib_state)) return ask(*step, {});
  disable(make_error_code(errc::auth_failed), fmt::format("unsupported login step {}", tdlib_state));
}

void MtprotoSession::Impl::send_parameters() {
  const nlohmann::json parameters{
      {"@type", "setTdlibParameters"},
      {"use_test_dc", options.use_test_dc},
      {"database_directory", folder.string()},
      {"files_directory", (folder / "files").string()},
      {"database_encryption_key", ""},
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
  };
  tdjson.async_send(*client, parameters,
                    asio::bind_executor(strand, [weak = weak_from_this()](std::error_code ec, nlohmann::json reply) {
                      auto self = weak.lock();
                      if (!self || ec) return;
                      const auto error = classify_td_response(reply);
                      if (!error) return;
                      if (error->kind == OutcomeKind::auth_failed ||
                          error->message.find("api_") != std::string::npos) {
                        return self->disable(make_error_code(errc::auth_failed),
                                             fmt::format("TDLib rejected the api_id/api_hash: {}", error->message));
                      }
                      self->disable(make_error_code(errc::store_corrupt),
                                    fmt::format("TDLib could not open the session database in {}: {}",
                                                self->folder, error->message));
                    }));
}

void MtprotoSession::Impl::ask(AuthStep step, std::string retry_reason) {
  if (!options.prompt) {
    return disable(make_error_code(errc::auth_failed),
                   "not logged in, and neither a bot token nor a login prompt is configured");
  }
  // The person may answer from any thread, later; only the first answer counts.
  auto answered = std::make_shared<std::atomic<bool>>(false);
  AuthReply reply = [weak = weak_from_this(), step, answered](Secret answer) {
    if (answered->exchange(true)) return;
    if (auto self = weak.lock()) {
      asio::post(self->strand, [self, step, answer = std::move(answer)] {
        self->send_auth(auth_request(step, answer), step);
      });
    }
  };
  options.prompt(AuthPrompt{id, step, std::move(retry_reason)}, std::move(reply));
}

void MtprotoSession::Impl::send_auth(nlohmann::json request, std::optional<AuthStep> step) {
  tdjson.async_send(
      *client, std::move(request),
      asio::bind_executor(strand, [weak = weak_from_this(), step](std::error_code ec, nlohmann::json reply) {
        auto self = weak.lock();
        if (!self || ec == errc::shut_down) return;
        if (ec) return self->disable(ec, fmt::format("login request failed: {}", ec.message()));
        const auto error = classify_td_response(reply);
        if (!error) return;  // accepted: TDLib announces the next state
        if (error->kind == OutcomeKind::rejected && step) return self->ask(*step, error->message);
        if (error->kind == OutcomeKind::flood_wait) {
          return self->disable(make_error_code(errc::auth_failed),
                               fmt::format("Telegram asks to wait {}s before logging in again ({})",
                                           error->retry_after.count(), error->message));
        }
        self->disable(make_error_code(errc::auth_failed), fmt::format("login rejected: {}", error->message));
      }));
}

void MtprotoSession::Impl::inspect_reply(const nlohmann::json& reply) {
  const auto error = classify_td_response(reply);
  if (!error || error->kind != OutcomeKind::auth_failed) return;
  {
    std::lock_guard lock(mutex);
    if (state != State::ready) return;  // before login TDLib answers 401 to most requests
  }
  disable(make_error_code(errc::auth_failed), fmt::format("authorization failed: {}", error->message));
}

void MtprotoSession::Impl::set_state(State next, std::error_code code, std::string why) {
  std::vector<WaitHandler> waiters;
  std::error_code outcome;
  {
    std::lock_guard lock(mutex);
    // Disabled and closed are final; the first reason is the one that matters.
    if (state == next || state == State::disabled || state == State::closed) return;
    if (state == State::closing && next != State::closed && next != State::disabled) return;
    state = next;
    if (next == State::disabled) {
      disabled_code = code;
      reason = why;
    }
    if (next == State::ready || next == State::disabled || next == State::closed) {
      waiters = std::move(ready_waiters);
      ready_waiters.clear();
      outcome = next == State::ready ? std::error_code{}
                : next == State::disabled ? code
                                          : make_error_code(errc::shut_down);
    }
  }
  if (next == State::disabled) {
    log(LogLevel::warning, "mtproto {}: disabled: {}", id, why);
  } else {
    log(LogLevel::info, "mtproto {}: {}", id, to_string(next));
  }
  for (auto& waiter : waiters) complete(std::move(waiter), outcome);
  if (options.on_state_change) {
    asio::post(strand, [self = shared_from_this(), next, why = std::move(why)] {
      self->options.on_state_change(next, why);
    });
  }
}

void MtprotoSession::Impl::tdlib_closed() {
  make_private_folder(folder);
  bool requested = false;
  std::vector<WaitHandler> waiters;
  {
    std::lock_guard lock(mutex);
    closed_by_tdlib = true;
    requested = close_sent;
    waiters = std::move(close_waiters);
    close_waiters.clear();
  }
  if (requested) {
    set_state(State::closed);
  } else {
    disable(make_error_code(errc::auth_failed), "TDLib closed the session (authorization revoked or logged out)");
  }
  for (auto& waiter : waiters) complete(std::move(waiter), std::error_code{});
}

void MtprotoSession::Impl::request_close() {
  {
    std::lock_guard lock(mutex);
    if (!client || closed_by_tdlib || close_sent) return;
    close_sent = true;
  }
  tdjson.async_send(*client, {{"@type", "close"}}, [](std::error_code, nlohmann::json) {});
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
  impl_->request_close();  // keeps TDLib's database consistent
  if (impl_->client) impl_->tdjson.clear_update_handler(*impl_->client);
  std::vector<WaitHandler> waiters;
  {
    std::lock_guard lock(impl_->mutex);
    waiters = std::move(impl_->ready_waiters);
    std::move(impl_->close_waiters.begin(), impl_->close_waiters.end(), std::back_inserter(waiters));
    impl_->ready_waiters.clear();
    impl_->close_waiters.clear();
  }
  for (auto& waiter : waiters) impl_->complete(std::move(waiter), make_error_code(errc::shut_down));
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
  return impl_->reason;
}

void MtprotoSession::wait_ready(WaitHandler handler) {
  std::error_code outcome;
  {
    std::lock_guard lock(impl_->mutex);
    switch (impl_->state) {
      case State::starting:
      case State::authorizing:
        impl_->ready_waiters.push_back(std::move(handler));
        return;
      case State::ready: break;
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
    if (impl_->state == State::disabled) refused = impl_->disabled_code;
    if (impl_->state == State::closing || impl_->state == State::closed) refused = make_error_code(errc::shut_down);
  }
  if (refused) return impl_->complete(std::move(handler), refused, nlohmann::json(nullptr));

  // The reply is inspected on the handler's own executor, right before it runs.
  auto executor = asio::get_associated_executor(handler, impl_->tdjson.get_executor());
  impl_->tdjson.async_send(
      *impl_->client, std::move(request),
      asio::bind_executor(executor, [weak = std::weak_ptr<Impl>(impl_), handler = std::move(handler)](
                                        std::error_code ec, nlohmann::json reply) mutable {
        if (auto self = weak.lock(); self && !ec) self->inspect_reply(reply);
        std::move(handler)(ec, std::move(reply));
      }));
}

void MtprotoSession::close(WaitHandler handler) {
  bool open = false;
  {
    std::lock_guard lock(impl_->mutex);
    open = impl_->client && !impl_->closed_by_tdlib;
    if (open) impl_->close_waiters.push_back(std::move(handler));
  }
  if (!open) return impl_->complete(std::move(handler), std::error_code{});  // nothing left to close
  impl_->set_state(State::closing);
  impl_->request_close();
}

}  // namespace floodgate::telegram
