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
//   the call moves at once to another token; the caller sees one result.
//   Telegram does not say which limit a 429 is for: when one token gets 429s
//   on `FloodScope::chats` different chats within `FloodScope::window`, it is
//   its overall limit, and the latest 429 cools the whole token;
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
// (sendMessage, sendDocument, copyMessage) and reads (getMe) go to whichever
// token is usable. File ids belong to the bot that received them, so getFile
// and downloads are owner-bound too: `async_get_file(token_id, file_id)` and
// `async_download(token_id, file_path, destination)`; a getFile through
// `async_call` (no owner) ends at once with bad_request and no request. Media
// (`async_send_media`: every kind, from bytes or streamed from a file) may
// move; media sent again by `FileId` goes only through the bot that owns the
// id (`async_send_media_as`). Media groups likewise: `async_send_media_group`
// (uploads, may move) and `async_send_media_group_as` (with file ids). A message belongs to the bot that sent it, so
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
// modified") is a success, and so is a delete repeated after a lost answer
// that finds the message gone ("message to delete not found": the first
// request deleted it). An answer to a query (answerCallbackQuery, …) repeated
// after a lost answer and refused because the query is answered or expired
// ends with `errc::outcome_unknown`: the lost request may have answered it.
// A call to a group that became a supergroup (400
// with migrate_to_chat_id) is sent once more to the new chat by the same
// token, and `BotPoolResult::migrated_to_chat_id` tells the caller the new id
// (the new chat's local limits are not applied to that one follow-up).
//
// Chats (`BotPoolOptions::routing`, on by default). Movable calls addressed
// to a chat (`async_call`, `async_send_message`, …) go through that chat's
// queue:
// - order: a chat's calls are sent one after another in the order they were
//   submitted, across a move to another token too; different chats never wait
//   for each other. A call that fails ends the calls queued behind it with the
//   same error (so they can be sent again in order), except those submitted
//   with `CallOptions::may_overtake`;
// - affinity: a chat keeps the token that last delivered to it, so one chat's
//   messages come from one bot. The call is bound to that token while it is
//   usable (a cooldown within the policy's `max_wait` is waited out) and moves
//   to another token only when that token cools longer, is disabled, or
//   cannot reach the chat; the token that delivers becomes the chat's token.
//   `chat_token(chat)` tells which one it is. Chats idle for `ChatRouting::idle`
//   are forgotten, and at most `ChatRouting::max_chats` are remembered; a
//   `ChatAffinitySink` keeps affinity across restarts and processes;
// - reachability: a 403 that is about one bot ("bot was blocked by the user",
//   "bot can't initiate conversation with a user", "bot is not a member…",
//   "bot was kicked…") marks that (token, chat) pair unreachable for
//   `ChatRouting::unreachable_for`: a scoped cooldown of the pool, so it is
//   persisted and shared through the pool's CooldownSink like any cooldown,
//   and the call moves at once to a token that may reach the chat. When no
//   token can, the call ends with errc::bad_request and a description that
//   says so (no request is sent for that chat again until a mark expires).
//   `BotPoolResult::token_id` always names the token that delivered.
//
// Cancellation: every call honours its handler's cancellation slot (`||`,
// bind_cancellation_slot). A call not sent yet ends at once with
// errc::cancelled and is never sent; a call on the wire ends the caller's
// wait at once (terminal, partial) and is never sent again, while its answer
// still feeds the pool and holds its chat's next call (docs/telegram-bot-api.md).
//
// Every call completes exactly once with `void(std::error_code, BotPoolResult)`.
// Errors: floodgate::errc (bad_request, all_credentials_cooling,
// attempts_exhausted, …); `BotPoolResult::description` holds Telegram's words.
// Stats per token: `snapshot()` (requests, successes, flood waits, cooling until).
// Thread-safe. Calls outlive the pool object (a retry waiting on its backoff,
// a chat's next call, a request on the wire). ~BotPool waits for a request
// being started, a `shared_limits` ask, a ChatAffinitySink call and a write to
// the pool's CooldownSink in progress; after it nothing is sent (a call that
// would send ends with errc::shut_down instead), `shared_limits` is not asked,
// the ChatAffinitySink is not called and the CooldownSink given to
// `pool().persist_to` is not written (a 429 or 401 arriving later cools or
// disables the token in memory only). So the HTTPS client, the shared limits,
// the affinity sink and the cooldown sink need only outlive the pool object,
// not its calls. A request already on the wire completes as it will, and
// every call still completes exactly once. None of those callbacks may destroy
// the pool (the destructor would wait for itself).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

/// When chat-addressed 429s mean the token's overall limit (see the header comment).
struct FloodScope {
  /// 429s on this many different chats of one token within `window` cool the
  /// whole token; 0 never escalates (every chat 429 stays scoped to its chat).
  int chats = 2;
  std::chrono::milliseconds window{std::chrono::seconds(2)};
};

/// Where chat affinity lives beyond one BotPool (optional): which token
/// serves a chat, so a restarted process, or several processes sharing the
/// sink, keep each chat on its bot. Unreachable pairs need no sink of their
/// own: they are scoped cooldowns, kept by the pool's CooldownSink.
/// Called from any thread, outside BotPool's locks; calls should be quick and
/// must not call back into the pool (nor destroy it). Never called once
/// ~BotPool has returned. Records name tokens by id only.
class ChatAffinitySink {
 public:
  virtual ~ChatAffinitySink() = default;
  /// The token id that served `chat` last, if known.
  virtual std::optional<std::string> find(std::int64_t chat) const = 0;
  /// `token_id` delivered to `chat` and serves it from now on.
  virtual void set(std::int64_t chat, std::string_view token_id) = 0;
};

/// How calls addressed to a chat are routed (see the header comment).
struct ChatRouting {
  /// Per-chat queues and affinity; false: every call picks any usable token at once.
  bool enabled = true;
  /// Chats remembered at most; the least recently used idle one is forgotten first.
  std::size_t max_chats = 100000;
  /// A chat with nothing queued for this long is forgotten (its token too).
  std::chrono::seconds idle{std::chrono::minutes(30)};
  /// How long a (token, chat) pair stays unreachable after a 403 about that bot.
  std::chrono::seconds unreachable_for{std::chrono::hours(24)};
  /// Consulted for a chat the pool does not remember, told when a chat's token
  /// changes; none: affinity lives as long as the pool. Must outlive the
  /// BotPool object, not its calls: not called after ~BotPool.
  ChatAffinitySink* affinity_sink = nullptr;
};

struct BotPoolOptions {
  /// The Bot API server; a local simulator's endpoint in tests.
  net::Endpoint endpoint{true, "api.telegram.org", 443};
  RetryPolicy retry;
  /// Each token's local limits, applied before it sends.
  TelegramBotLimits limits;
  PoolOptions pool;
  FloodScope flood_scope;
  ChatRouting routing;
  /// Limits shared with other processes, asked after the local ones admit a
  /// call to a chat: how long (token id, chat) must wait, zero to send now (the
  /// call is then sent at once). Must answer at once
  /// (redis/reserving_gate.hpp does, by reservation). Must outlive the
  /// BotPool object, not its calls: not asked after ~BotPool (a call that
  /// would ask ends with errc::shut_down, unsent).
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

class StatusMessage;

class BotPool {
 public:
  using Pool = CredentialPool<BotToken>;
  using Signature = void(std::error_code, BotPoolResult);
  using DownloadSignature = BotApiClient::DownloadSignature;

  struct CallOptions {
    /// Repeat the call after a lost answer even though the method is not
    /// idempotent (the caller deduplicates, or a duplicate is harmless).
    bool repeat_if_maybe_applied = false;
    /// A failure of an earlier call to the same chat does not end this one.
    bool may_overtake = false;
  };

  /// `http` must outlive the pool object (not its calls: see the header
  /// comment). Throws floodgate::Error on duplicate ids.
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
    return initiate(Call{std::move(method), std::move(params), options.repeat_if_maybe_applied, options.may_overtake},
                    {}, std::forward<CompletionToken>(token));
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
  /// A photo, video, audio, voice, animation, sticker or document from bytes or
  /// streamed from a file. A `FileId` belongs to one bot: use `async_send_media_as`
  /// (here it ends at once with bad_request, unsent).
  template <class CompletionToken>
  auto async_send_media(SendMediaParams params, CompletionToken&& token) {
    std::string method = params.method();
    return initiate(Call{std::move(method), std::move(params), false, false}, {},
                    std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_send_document(SendDocumentParams params, CompletionToken&& token) {
    params.kind = MediaKind::document;
    return async_send_media(std::move(params), std::forward<CompletionToken>(token));
  }
  /// A media group (album) of uploads from bytes or files; `result` is the
  /// array of Messages. A group Telegram's rules refuse (see
  /// `SendMediaGroupParams::problem`) or one with a `FileId` (use
  /// `async_send_media_group_as`) ends at once with bad_request, unsent.
  template <class CompletionToken>
  auto async_send_media_group(SendMediaGroupParams params, CompletionToken&& token) {
    return initiate(Call{"sendMediaGroup", std::move(params), false, false}, {}, std::forward<CompletionToken>(token));
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
    return initiate(Call{std::move(method), std::move(params), options.repeat_if_maybe_applied, false},
                    std::move(token_id), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken>
  auto async_edit_message_text(const SentMessage& message, std::string text, CompletionToken&& token) {
    return initiate(edit_message_text_call(message, std::move(text)), message.token_id,
                    std::forward<CompletionToken>(token));
  }

  /// Media through token `token_id` only: how a `FileId` is sent again (by the bot that owns it).
  template <class CompletionToken>
  auto async_send_media_as(std::string token_id, SendMediaParams params, CompletionToken&& token) {
    std::string method = params.method();
    return initiate(Call{std::move(method), std::move(params), false, false}, std::move(token_id),
                    std::forward<CompletionToken>(token));
  }
  /// A media group through token `token_id` only: how groups with `FileId`s are sent (by the bot that owns them).
  template <class CompletionToken>
  auto async_send_media_group_as(std::string token_id, SendMediaGroupParams params, CompletionToken&& token) {
    return initiate(Call{"sendMediaGroup", std::move(params), false, false}, std::move(token_id),
                    std::forward<CompletionToken>(token));
  }
  /// getFile through the bot that owns `file_id` (the one that sent or received the file).
  template <class CompletionToken>
  auto async_get_file(std::string token_id, std::string file_id, CompletionToken&& token) {
    return async_call_as(std::move(token_id), "getFile", nlohmann::json{{"file_id", std::move(file_id)}},
                         std::forward<CompletionToken>(token));
  }
  /// Streams `file_path` (from that token's getFile) into `destination` with
  /// token `token_id`; completes with the bytes written. unknown_credential
  /// for an id the pool does not hold, all_credentials_disabled for a disabled one.
  template <class CompletionToken>
  auto async_download(std::string token_id, std::string file_path, std::filesystem::path destination,
                      CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, DownloadSignature>(
        [this](auto handler, const std::string& id, const std::string& path, std::filesystem::path to) {
          start_download(id, path, std::move(to),
                         boost::asio::any_completion_handler<DownloadSignature>(std::move(handler)));
        },
        token, std::move(token_id), std::move(file_path), std::move(destination));
  }

  // ---- observation --------------------------------------------------------

  /// The credential pool. A CooldownSink given to its `persist_to` must
  /// outlive the BotPool object, not its calls: ~BotPool stops persisting.
  Pool& pool() noexcept;
  /// The token that serves `chat` now (chat affinity), if the chat is remembered.
  std::optional<std::string> chat_token(std::int64_t chat) const;
  std::vector<HealthSnapshot> snapshot() const;
  /// Where completions run when the handler names no executor of its own.
  boost::asio::any_io_executor executor() const noexcept;

  /// One call as the pool replays it on each attempt.
  struct Call {
    std::string method;
    std::variant<nlohmann::json, SendMediaParams, SendMediaGroupParams> body;
    bool repeat_if_maybe_applied = false;
    bool may_overtake = false;
  };

 private:
  // StatusMessage edits through the pool's state, which outlives the BotPool
  // object (its edits may wait on a timer after the pool is destroyed; they
  // then end with shut_down instead of touching the destroyed object).
  friend class StatusMessage;
  struct Impl;

  template <class CompletionToken>
  auto initiate(Call call, std::optional<std::string> owner, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, Call c, std::optional<std::string> o) {
          start(impl_, std::move(c), std::move(o), boost::asio::any_completion_handler<Signature>(std::move(handler)));
        },
        token, std::move(call), std::move(owner));
  }
  static Call edit_message_text_call(const SentMessage& message, std::string text) {
    return Call{"editMessageText",
                EditMessageTextParams{message.chat_id, message.message_id, std::move(text), {}}.to_json(), false, false};
  }
  static void start(const std::shared_ptr<Impl>& impl, Call call, std::optional<std::string> owner,
                    boost::asio::any_completion_handler<Signature> handler);
  void start_download(const std::string& token_id, const std::string& file_path, std::filesystem::path destination,
                      boost::asio::any_completion_handler<DownloadSignature> handler);

  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::telegram
