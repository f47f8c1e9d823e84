// floodgate/telegram/bot_pool.hpp: many bot tokens behind one Bot API caller.
//
// `BotPool` holds several bot tokens (from code, or from the environment with
// `bot_tokens_from(env)`: TELEGRAM_BOT_TOKEN, MULTITOKEN1..10) in a
// `CredentialPool`, and runs each call through a `RetryExecutor`:
//
// - before a token sends, its own `telegram_bot_limits()` LimitSet (30/s
//   overall, 1/s per private chat, 20/min per group) must admit the call;
//   a token whose bucket is empty is skipped until it refills;
// - a 429 cools that token for exactly `retry_after` seconds (plus the
//   policy's small upward jitter), for the chat only when the call was
//   addressed to one (see `classify` in bot_api_client.hpp for the rule), and
//   the call moves at once to another token; the caller sees one result;
// - a 401 disables the token (the pool's snapshot says why) and the call moves on;
// - a request that never reached the server (connect failed) is retried with
//   backoff; 400-class errors end the call;
// - a request whose answer was lost after it was sent (read timeout, reset
//   mid-reply, 5xx) is repeated only if the method is idempotent (get*, edit*,
//   delete*, set*, answer*, pin/unpin, sendChatAction) or the caller said so
//   (`CallOptions::repeat_if_maybe_applied`); a send ends instead with
//   `errc::outcome_unknown` and `BotPoolResult::token_id` names the token that
//   sent it, so the caller can look before sending again (docs/retry.md).
//
//   floodgate::telegram::BotPool bots(io.get_executor(), http,
//                                     floodgate::bot_tokens_from(floodgate::Environment::from_process()));
//   bots.async_send_message({.chat_id = chat, .text = "build passed"},
//                           [&](std::error_code ec, floodgate::telegram::BotPoolResult r) {
//     if (!ec) progress = *r.sent();        // remembers which token sent it
//     else if (ec == floodgate::errc::all_credentials_cooling) retry_at(*r.earliest);
//   });
//   bots.async_edit_message_text(progress, "50%", handler);   // always through progress.token_id
//
// Which calls may move between tokens: sends that create a new message
// (sendMessage, sendDocument, copyMessage) and reads (getMe, getFile) go to
// whichever token is usable. A message belongs to the bot that sent it, so
// edits and deletes are *owner-bound*: `async_call_as(token_id, …)` and
// `async_edit_message_text(sent, …)` use that token only, never another
// (leased with `CredentialPool::acquire_id`). They are counted in the pool's
// health records like every other call, and their 429s cool and their 401s
// disable the token for everyone. When the token is cooling (for the whole
// token, or for the call's chat), or its chat limit would be exceeded for
// longer than the policy's `max_wait`, they end without a request, with
// `errc::all_credentials_cooling` and `BotPoolResult::earliest`; a shorter
// wait is waited out, then the call is sent. When the token is disabled they
// end with `errc::all_credentials_disabled` (`errc::auth_failed` when their own
// request was the one rejected). They run on the same retry executor as every
// other call: one retry path. An edit that changes nothing ("message is not
// modified") is a success. A call to a group that became a supergroup (400
// with migrate_to_chat_id) is sent once more to the new chat by the same
// token, and `BotPoolResult::migrated_to_chat_id` tells the caller the new id
// (the new chat's local limits are not applied to that one follow-up).
//
// Every call completes exactly once with `void(std::error_code, BotPoolResult)`.
// Errors: floodgate::errc (bad_request, all_credentials_cooling,
// attempts_exhausted, …); `BotPoolResult::description` holds Telegram's words.
// Stats per token: `snapshot()` (requests, successes, flood waits, cooling until).
// The pool must outlive its calls' completion; thread-safe.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "floodgate/core/health.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/retry_policy.hpp"
#include "floodgate/net/http_client.hpp"
#include "floodgate/telegram/bot_api_client.hpp"
#include "floodgate/telegram/credentials.hpp"
#include "floodgate/telegram/limits.hpp"

namespace floodgate::telegram {

struct BotPoolOptions {
  /// The Bot API server; a local simulator's endpoint in tests.
  net::Endpoint endpoint{true, "api.telegram.org", 443};
  RetryPolicy retry;
  /// Each token's local limits, applied before it sends.
  TelegramBotLimits limits;
  PoolOptions pool;
  /// Limits shared with other processes, asked before the local ones for a
  /// call to a chat: how long (token id, chat) must wait, zero to send now.
  /// Must answer at once (redis/reserving_gate.hpp does, by reservation).
  std::function<std::chrono::nanoseconds(std::string_view token_id, std::int64_t chat_id)> shared_limits;
};

/// A message and the token that sent it: what an owner-bound call needs.
struct SentMessage {
  std::string token_id;
  std::int64_t chat_id = 0;
  std::int64_t message_id = 0;
};

struct BotPoolResult {
  nlohmann::json result;                                       ///< the Bot API result, on success
  std::string token_id;                                        ///< the token of the last attempt
  std::string description;                                     ///< Telegram's words for the last failure
  std::optional<SteadyClock::time_point> earliest;             ///< all_credentials_cooling: usable again then
  std::uint32_t attempts = 0;                                  ///< requests sent
  /// The group became a supergroup with this id: the call was sent there
  /// (followed once, by the same token); use this id from now on.
  std::optional<std::int64_t> migrated_to_chat_id;

  /// The sent message with its owner, when `result` is a Message.
  std::optional<SentMessage> sent() const;
};

class BotPool {
 public:
  using Pool = CredentialPool<BotToken>;
  using Signature = void(std::error_code, BotPoolResult);

  struct CallOptions {
    /// Repeat the call after a lost answer even though the method is not
    /// idempotent (the caller deduplicates, or a duplicate is harmless).
    bool repeat_if_maybe_applied = false;
  };

  /// `http` must outlive the pool. Throws floodgate::Error on duplicate ids.
  BotPool(boost::asio::any_io_executor executor, net::HttpsClient& http, std::vector<Credential<BotToken>> tokens,
          BotPoolOptions options = {});
  ~BotPool();
  BotPool(const BotPool&) = delete;
  BotPool& operator=(const BotPool&) = delete;

  // ---- calls that may move between tokens ---------------------------------

  /// Any method with JSON parameters; a "chat_id" parameter (integer) makes
  /// the call subject to that chat's limits and scoped cooldowns.
  template <class CompletionToken>
  auto async_call(std::string method, nlohmann::json params, CompletionToken&& token) {
    return async_call(std::move(method), std::move(params), CallOptions{}, std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_call(std::string method, nlohmann::json params, CallOptions options, CompletionToken&& token) {
    return initiate(Call{std::move(method), std::move(params), options.repeat_if_maybe_applied}, {},
                    std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_get_me(CompletionToken&& token) {
    return async_call("getMe", nlohmann::json::object(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_send_message(const SendMessageParams& params, CompletionToken&& token) {
    return async_call("sendMessage", params.to_json(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_copy_message(const CopyMessageParams& params, CompletionToken&& token) {
    return async_call("copyMessage", params.to_json(), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_send_document(SendDocumentParams params, CompletionToken&& token) {
    return initiate(Call{"sendDocument", std::move(params), false}, {}, std::forward<CompletionToken>(token));
  }

  // ---- owner-bound calls: only through `token_id` -------------------------

  template <class CompletionToken>
  auto async_call_as(std::string token_id, std::string method, nlohmann::json params, CompletionToken&& token) {
    return async_call_as(std::move(token_id), std::move(method), std::move(params), CallOptions{},
                         std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_call_as(std::string token_id, std::string method, nlohmann::json params, CallOptions options,
                     CompletionToken&& token) {
    return initiate(Call{std::move(method), std::move(params), options.repeat_if_maybe_applied}, std::move(token_id),
                    std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_edit_message_text(const SentMessage& message, std::string text, CompletionToken&& token) {
    return async_call_as(message.token_id, "editMessageText",
                         EditMessageTextParams{message.chat_id, message.message_id, std::move(text), {}}.to_json(),
                         std::forward<CompletionToken>(token));
  }

  // ---- observation --------------------------------------------------------

  Pool& pool() noexcept;
  std::vector<HealthSnapshot> snapshot() const;
  /// Where completions run when the handler names no executor of its own.
  boost::asio::any_io_executor executor() const noexcept;

  /// One call as the pool replays it on each attempt.
  struct Call {
    std::string method;
    std::variant<nlohmann::json, SendDocumentParams> body;
    bool repeat_if_maybe_applied = false;
  };

 private:
  template <class CompletionToken>
  auto initiate(Call call, std::optional<std::string> owner, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, Call c, std::optional<std::string> o) {
          start(std::move(c), std::move(o), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(call), std::move(owner));
  }
  void start(Call call, std::optional<std::string> owner, boost::asio::any_completion_handler<Signature> handler);

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::telegram
