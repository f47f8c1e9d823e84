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
// A session that cannot work is *disabled*, with a reason a person can act on
// (`disabled_reason()`) and an error code that requests then complete with:
//   - errc::io_error       its folder cannot be created, is not a folder, or is not ours;
//   - errc::store_corrupt  TDLib refused to open the database in the folder;
//   - errc::auth_failed    the login was rejected or revoked (401, SESSION_REVOKED, a
//                          bot token Telegram does not accept, a close nobody asked for).
// The other sessions of a pool are not affected.
//
// Needs TDLib 1.8.6 or newer (flat setTdlibParameters). Thread-safe; callbacks
// (prompt, state changes, updates) run on the session's strand.
#pragma once

#include <floodgate/core/secret.hpp>
#include <floodgate/telegram/tdjson_client.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <nlohmann/json.hpp>

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
};

/// Answers a prompt; may be called later and from any thread, once.
using AuthReply = std::function<void(Secret answer)>;
using AuthPromptHandler = std::function<void(const AuthPrompt& prompt, AuthReply reply)>;

/// `~/.floodgate/sessions` ($HOME, else the password database's home folder).
std::filesystem::path default_sessions_root();

class MtprotoSession {
 public:
  enum class State {
    starting,     ///< TDLib is opening the database
    authorizing,  ///< logging in (waiting for Telegram or for a prompt's answer)
    ready,        ///< logged in: requests can be sent
    closing,      ///< async_close() was called
    closed,       ///< closed on request; the folder keeps the login
    disabled,     ///< cannot work; see disabled_reason()
  };

  struct Options {
    /// Parent of the session folders; empty: default_sessions_root().
    std::filesystem::path sessions_root;
    /// Log in as a bot with this token (checkAuthenticationBotToken).
    std::optional<Secret> bot_token;
    /// Asked for phone number, code and password when a user account logs in.
    AuthPromptHandler prompt;
    /// Told of every state change (with the reason when disabled).
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
  /// Asks TDLib to close the client if it is open (without waiting).
  ~MtprotoSession();

  const std::string& id() const noexcept;
  /// The TDLib client, or nullopt when the session was disabled before it made one.
  std::optional<TdjsonClient::ClientId> client_id() const;
  const std::filesystem::path& folder() const noexcept;
  State state() const;
  /// Empty unless disabled.
  std::string disabled_reason() const;

  /// Completes with no error once the session is ready, with the disabled
  /// code if it gets disabled, or with errc::shut_down if it closes first.
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
  /// completes when TDLib reports it closed.
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

}  // namespace floodgate::telegram
