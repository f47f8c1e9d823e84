// floodgate/telegram/mtproto_session.hpp: one logged-in TDLib client per credential.
//
// An `MtprotoSession` is one Telegram account (user or bot) reached through
// one api_id/api_hash pair. It keeps TDLib's database in its own folder,
// `<sessions root>/<id>/` (default `~/.floodgate/sessions/<id>/`), so that a
// restart reuses the login instead of asking for a code again. Folders are
// made 0700 and the files in them 0600 whatever the umask.
//
// The session drives TDLib's authorization states itself: it sends the TDLib
// parameters (api_hash goes to TDLib and nowhere else: never to a log, an
// exception or a status line), logs a bot in with its token, and hands the
// prompts of a user login (phone number, code, password) to your callback:
//
//   telegram::MtprotoSession session(tdjson, "account1", {api_id, Secret(api_hash)},
//       {.prompt = [](const telegram::AuthPrompt& p, telegram::AuthReply reply) {
//          std::thread([p, reply] { reply(Secret(ask_user(p))); }).detach();   // may answer later
//        }});
//   session.async_wait_ready([](std::error_code ec) { ... });
//   session.async_send({{"@type", "getMe"}}, [](std::error_code ec, nlohmann::json me) { ... });
//
// One rule decides what ends a session: only a *definite* answer disables it.
// A session that cannot work is *disabled*, with a reason a person can act on
// (`disabled_reason()`) and an error code that requests then complete with:
//   - errc::io_error       its folder cannot be created, is not a folder, or is not ours;
//   - errc::store_corrupt  TDLib cannot open the database in the folder (a corrupt
//                          td.binlog, checked before TDLib would silently truncate it;
//                          a wrong database encryption key);
//   - errc::auth_failed    Telegram or TDLib rejected the credential: an invalid
//                          api_id/api_hash, a bot token Telegram does not accept, a
//                          banned number, a login revoked or ended elsewhere.
// What is not a definite answer never disables:
//   - a login request that times out (Options::login_timeout), a 5xx, or a
//     FLOOD_WAIT during login: the session is `waiting` and retries with backoff
//     (or after the server's wait) on its own;
//   - a login step only a person can take (no prompt configured, an empty answer,
//     Options::max_prompt_retries rejected answers, a new account to register,
//     a Premium purchase, ...): the session `needs_user_action`, with the step
//     named in the reason; it does not retry, but nothing is persisted;
//   - 500 "Request aborted" while closing: it is the close, not a rejection.
// The other sessions of a pool are not affected.
//
// Shutdown: `async_close` completes once TDLib reported authorizationStateClosed
// and after every callback of this session has run; no callback runs after it.
// The destructor of an open session closes it and waits, up to
// Options::close_timeout (it blocks the calling thread, but not on the
// io_context, so it is safe on an I/O thread); it then completes what still
// waits with errc::shut_down and runs no callback afterwards.
//
// Cancellation (the handler's cancellation slot: bind_cancellation_slot, `||`):
//   - async_wait_ready: any type ends the wait at once with errc::cancelled
//     (== std::errc::operation_canceled); the login goes on. (A login that
//     needs user action also ends a wait with errc::cancelled: state() tells.)
//   - async_send: TdjsonClient's rules: terminal or partial ends the wait at
//     once with errc::cancelled; the request was handed to TDLib and may still
//     be carried out, and its reply is dropped unread (an auth failure in it
//     then does not disable the session). `total` alone: it ends with its reply.
//   - async_close: terminal or partial ends the wait at once with
//     errc::cancelled, but the close goes on (it cannot be undone): callbacks
//     may run until state() is `closed`; another async_close waits for that.
// A cancelled operation leaves the session as it was otherwise.
//
// Needs TDLib 1.8.6 or newer (flat setTdlibParameters); tested with 1.8.65.
// Thread-safe; callbacks (prompt, state changes, updates) run on the session's strand.
#pragma once

#include <floodgate/core/secret.hpp>
#include <floodgate/telegram/tdjson_client.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace floodgate::telegram {

/// The credential of a session: an application's api_id and api_hash from my.telegram.org.
struct MtprotoCredentials {
  std::int32_t api_id = 0;
  Secret api_hash;
};

/// What a user login needs from a person.
enum class AuthStep { phone_number, code, password, email_address, email_code };

struct AuthPrompt {
  std::string session_id;
  AuthStep step;
  /// Why the question is asked again (e.g. "PHONE_CODE_INVALID"); empty the first time.
  std::string retry_reason;
  /// 1 the first time a step is asked, then 2, 3, ... up to Options::max_prompt_retries + 1.
  int attempt = 1;
};

/// Answers a prompt; may be called later and from any thread, once. An empty
/// answer cancels the login (the session then needs user action): answer
/// empty when the person closed the terminal (end of input).
using AuthReply = std::function<void(Secret answer)>;
using AuthPromptHandler = std::function<void(const AuthPrompt& prompt, AuthReply reply)>;

/// `~/.floodgate/sessions` ($HOME, else the password database's home folder).
std::filesystem::path default_sessions_root();

class MtprotoSession {
 public:
  enum class State {
    starting,           ///< TDLib is opening the database
    authorizing,        ///< logging in (waiting for Telegram or for a prompt's answer)
    waiting,            ///< a login request timed out or was told to wait; retrying (see reason())
    needs_user_action,  ///< the login stopped at a step only a person can take (see reason())
    ready,              ///< logged in: requests can be sent
    closing,            ///< async_close() was called
    closed,             ///< closed on request; the folder keeps the login
    disabled,           ///< cannot work; see disabled_reason()
  };

  struct Options {
    /// Parent of the session folders; empty: default_sessions_root().
    std::filesystem::path sessions_root;
    /// Log in as a bot with this token (checkAuthenticationBotToken).
    std::optional<Secret> bot_token;
    /// Asked for phone number, code and password when a user account logs in.
    AuthPromptHandler prompt;
    /// Told of every state change (with the reason when disabled, waiting or
    /// needing user action). Never called after async_close completed or the
    /// destructor returned.
    std::function<void(State state, const std::string& reason)> on_state_change;
    /// Receives every update of this account, in order.
    TdjsonClient::UpdateHandler on_update;

    bool use_test_dc = false;
    bool use_file_database = true;
    bool use_chat_info_database = true;
    bool use_message_database = false;
    std::string system_language_code = "en";
    std::string device_model = "floodgate";
    std::string application_version = "0.1";
    /// The key TDLib encrypts its database with (empty: TDLib's default). A
    /// folder opened with another key disables the session (store_corrupt).
    Secret database_encryption_key;

    /// A login request (parameters, bot token, an answer) with no reply
    /// within this is not a rejection: the session goes `waiting` and sends
    /// it again after a backoff (1 s, doubling, at most login_retry_max: core/backoff.hpp).
    std::chrono::milliseconds login_timeout{std::chrono::seconds(60)};
    std::chrono::milliseconds login_retry_max{std::chrono::seconds(60)};
    /// Rejected answers to one step (a wrong code) asked again before the
    /// session gives up and needs user action.
    int max_prompt_retries = 3;
    /// How long the destructor of an open session waits for TDLib to close it.
    std::chrono::milliseconds close_timeout{std::chrono::seconds(10)};
  };

  /// Creates (or reopens) the session folder and starts logging in. Throws
  /// floodgate::Error if `id` cannot be a folder name (it must be letters,
  /// digits, '.', '-' or '_' and not start with '.'); every other problem
  /// disables the session instead.
  MtprotoSession(TdjsonClient& tdjson, std::string id, MtprotoCredentials credentials, Options options);
  MtprotoSession(TdjsonClient& tdjson, std::string id, MtprotoCredentials credentials)
      : MtprotoSession(tdjson, std::move(id), std::move(credentials), Options{}) {}
  MtprotoSession(const MtprotoSession&) = delete;
  MtprotoSession& operator=(const MtprotoSession&) = delete;
  /// Closes the TDLib client if it is open and waits for it (up to
  /// Options::close_timeout); no callback of this session runs afterwards.
  ~MtprotoSession();

  const std::string& id() const noexcept;
  /// The TDLib client, or nullopt when the session was disabled before it made one.
  std::optional<TdjsonClient::ClientId> client_id() const;
  const std::filesystem::path& folder() const noexcept;
  State state() const;
  /// Empty unless disabled.
  std::string disabled_reason() const;
  /// Why the session is disabled, waiting or needs user action; else empty.
  std::string reason() const;

  /// Completes with no error once the session is ready, with the disabled
  /// code if it gets disabled, or with errc::shut_down if it closes first.
  /// While the login cannot go on by itself it completes at once: with
  /// errc::deadline_exceeded while `waiting` (the session keeps retrying: wait
  /// again) and errc::cancelled when it `needs_user_action`.
  template <class CompletionToken>
  auto async_wait_ready(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler) { wait_ready(WaitHandler(std::move(handler))); }, token);
  }

  /// Sends a request as this account; completes like TdjsonClient::async_send.
  /// A disabled session completes at once with its code. An auth failure in
  /// the reply of a ready session disables it (and still delivers the reply).
  template <class CompletionToken>
  auto async_send(nlohmann::json request, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, TdjsonClient::Signature>(
        [this](auto handler, nlohmann::json body) { send(std::move(body), SendHandler(std::move(handler))); },
        token, std::move(request));
  }

  /// Closes the TDLib client (its database stays, with the login) and
  /// completes when TDLib reports it closed, after the session's last
  /// callback. Requests still pending end with errc::shut_down.
  template <class CompletionToken>
  auto async_close(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::error_code)>(
        [this](auto handler) { close(WaitHandler(std::move(handler))); }, token);
  }

 private:
  using WaitHandler = boost::asio::any_completion_handler<void(std::error_code)>;
  using SendHandler = boost::asio::any_completion_handler<TdjsonClient::Signature>;
  struct Impl;

  void wait_ready(WaitHandler handler);
  void send(nlohmann::json request, SendHandler handler);
  void close(WaitHandler handler);

  std::shared_ptr<Impl> impl_;
};

std::string_view to_string(MtprotoSession::State state) noexcept;
/// "phone_number", "code", "password", "email_address", "email_code".
std::string_view to_string(AuthStep step) noexcept;

}  // namespace floodgate::telegram
