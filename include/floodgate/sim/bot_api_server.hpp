// floodgate/sim/bot_api_server.hpp: a local Telegram Bot API server for tests and demos.
//
// `BotApiServer` listens on 127.0.0.1 over real HTTPS (a certificate generated
// at start, see sim::TestCertificates) or plain HTTP, and answers the Bot API
// the way api.telegram.org does, closely enough that python-telegram-bot's and
// grammY's long-polling loops run against it unmodified (tests/frameworks/):
// getMe, getUpdates (long polling fed by `push_update` / `push_message`),
// deleteWebhook, getWebhookInfo, setMyCommands, getMyCommands, sendMessage,
// sendPhoto/Document/Video/Audio/Voice/Animation/Sticker (multipart uploads,
// also named by `attach://<part>`), sendMediaGroup, copyMessage, editMessageText/Caption/
// ReplyMarkup, deleteMessage, sendChatAction, answerCallbackQuery, getChat,
// getChatMember, getFile and the download URL /file/bot<token>/<file_path>.
// Parameters are accepted as a query string, urlencoded form, JSON or
// multipart; paths are percent-decoded and method names case-insensitive.
//
// Per-bot worlds. A declared user has started some bots and blocked some; a
// declared group has some bots as members. A bot that writes to a user who
// never started it gets Telegram's 403 "Forbidden: bot can't initiate
// conversation with a user"; to one who blocked it, "Forbidden: bot was
// blocked by the user"; to a group it is not in, "Forbidden: bot is not a
// member of the group chat". Message ids of private chats count per bot, file
// ids belong to the bot that received them (another bot's file_id is "wrong
// file identifier"). Chats nobody declared are an open world by default: every
// user has started every bot and every group has every bot, which is what a
// test that just sends to chat 42 wants. `open_world = false` answers "chat
// not found" for them instead.
//
// Flood control follows Telegram's documented limits per token (all settable,
// see docs/bot-api-simulator.md for the sources): overall 30 messages per
// second, about 1 per second per chat with bursts of 3, 20 per minute per
// group. A request over a limit gets Telegram's exact answer: HTTP 429 with a
// `Retry-After: N` header and
//
//   {"ok":false,"error_code":429,"description":"Too Many Requests: retry after N",
//    "parameters":{"retry_after":N}}
//
// where N is the whole seconds until the limit admits a message again (at
// least 1, at most the limit's period). The token (overall limit) or the
// (token, chat) pair is then cooling for N seconds; a request sent into the
// cooldown is counted (`TokenStats::sent_during_cooldown`) and told the time
// that is left, never more. Limits read time from the clock given at
// construction: with a `ManualClock` a test moves time itself.
//
// Failures on demand: `revoke_token` (401 Unauthorized from then on) and
// `inject` (the next requests of a token, or of one of its methods, get a 5xx,
// a dropped connection, a response cut off after the request was applied, a
// slow answer, invalid JSON, or a 429 announcing a wait of any length, which
// the request's chat, or the token, must then keep). `apply_scenario` sets all of this up from the
// JSON scenario that `floodgate-sim botapi --scenario` reads.
//
//   floodgate::sim::BotApiServer server({.tokens = {token}});
//   server.start();                                   // 127.0.0.1, a free port
//   HttpsClient client(ex, {.tls = make_client_tls_context({.ca_pem = server.ca_pem()})});
//   ... requests to server.endpoint() ...
//   CHECK(server.stats(token).sent_during_cooldown == 0);
//
// The server runs on its own thread; every public member is thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "floodgate/core/clock.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/net/http_client.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/sim/test_certificates.hpp"

namespace floodgate::sim {

/// At most `tokens()` requests per `period()` (core/rate.hpp: `Rate::parse("30/s")`).
/// A sliding window counts whole requests: a fractional count rounds down.
using floodgate::Rate;

/// Flood control of one token. An empty optional means "no such limit".
struct BotApiLimits {
  /// Messages over all chats, in any window of `period`.
  std::optional<Rate> overall = Rate{30, std::chrono::seconds(1)};
  /// Messages per chat: a bucket of `per_chat_burst` refilled at this rate.
  std::optional<Rate> per_chat = Rate{1, std::chrono::seconds(1)};
  /// Messages per group (chats with a negative id), in any window of `period`.
  std::optional<Rate> per_group = Rate{20, std::chrono::minutes(1)};
  /// How many messages a quiet chat takes at once ("short bursts" in Telegram's FAQ).
  int per_chat_burst = 3;
  /// Telegram's limits are approximate: a message that would fit this much
  /// later is let through, so a client that paces itself at exactly the
  /// documented rate is not punished for network jitter. 0 in exact tests.
  std::chrono::milliseconds tolerance{50};
};

/// A misbehaviour to inject into the next requests of a token.
struct Fault {
  enum class Kind {
    server_error,        ///< HTTP `status` with a Bot API error body; the request is not applied
    drop_connection,     ///< the request is read, then the connection is closed without an answer (not applied)
    truncated_response,  ///< the request is applied, its answer cut in the middle, then the connection closes
    slow_reply,          ///< the request is applied, the answer is sent after `delay`
    invalid_json,        ///< HTTP 200 with a body that is not JSON (not applied)
    flood_wait,          ///< HTTP 429 with `retry_after` seconds, which the request's chat (or, without one, the token) then must wait (not applied)
  };
  Kind kind = Kind::server_error;
  int status = 500;
  std::chrono::milliseconds delay{0};
  /// For flood_wait: the seconds announced, any size (Telegram's own waits
  /// reach hours; a hostile or broken server may send far more).
  std::int64_t retry_after = 0;
  /// Only requests of this method (any case) use the fault up; empty: any request.
  std::string method;

  static Fault server_error(int status = 500) { return {Kind::server_error, status}; }
  static Fault drop_connection() { return {Kind::drop_connection}; }
  static Fault truncated_response() { return {Kind::truncated_response}; }
  static Fault slow_reply(std::chrono::milliseconds delay) { return {Kind::slow_reply, 200, delay}; }
  static Fault invalid_json() { return {Kind::invalid_json}; }
  static Fault flood_wait(std::int64_t seconds) {
    Fault fault{Kind::flood_wait, 429};
    fault.retry_after = seconds;
    return fault;
  }
  /// This fault, for requests of `method_name` only.
  Fault on(std::string method_name) const {
    Fault copy = *this;
    copy.method = std::move(method_name);
    return copy;
  }
};

/// What the server saw from one token.
struct TokenStats {
  std::uint64_t requests = 0;              ///< every request for this token, whatever the answer
  std::uint64_t succeeded = 0;             ///< answered ok:true
  std::uint64_t rate_limited = 0;          ///< answered 429
  std::uint64_t sent_during_cooldown = 0;  ///< arrived while told to wait (a subset of rate_limited)
  /// Of those, the ones that arrived more than 50 ms (server clock) after the
  /// 429 that announced the wait: the client had that answer and sent anyway.
  /// Requests that were already in flight when the 429 went out are not here.
  std::uint64_t sent_during_known_cooldown = 0;
  std::uint64_t unauthorized = 0;          ///< answered 401
  std::uint64_t forbidden = 0;             ///< answered 403 (blocked, never started, not a member)
  std::uint64_t faults = 0;                ///< answered with an injected fault
  std::map<std::string, std::uint64_t> by_method;  ///< method names in lower case
};

/// A message as the server stores it.
struct SimMessage {
  std::int64_t chat_id = 0;
  std::int64_t message_id = 0;  ///< counted per bot in private chats, per chat in groups
  std::int64_t sender_id = 0;   ///< the bot's id, or the user's for pushed messages
  /// The bot whose private chat this is (private chats), 0 in groups.
  std::int64_t dialog_bot_id = 0;
  bool from_bot = true;
  std::string text;             ///< text or caption
  std::string file_id;          ///< set for media
  std::string media;            ///< "document", "photo", "video", ... when file_id is set
  std::string reply_markup;     ///< as sent (JSON text), empty if none
  bool deleted = false;
  int edits = 0;
};

/// Kinds of group chats (a private chat is a user's id).
enum class SimChatType { group, supergroup, channel };

struct BotApiServerOptions {
  /// Tokens the server knows; others get 401. More with `add_token`.
  std::vector<Secret> tokens;
  BotApiLimits limits;  ///< for every token without its own `set_limits`
  bool tls = true;      ///< https with `certificates`; false: plain http
  /// The certificate to serve; generated for localhost/127.0.0.1/::1 when empty.
  std::optional<sim::TestCertificates> certificates;
  std::uint16_t port = 0;  ///< 0: any free port
  /// Chats that were never declared (add_user, add_group, start_bot ...):
  /// true: every user has started every bot and every group has every bot;
  /// false: "Bad Request: chat not found".
  bool open_world = true;
};

class BotApiServer {
 public:
  /// Limits run on std::chrono::steady_clock time.
  explicit BotApiServer(BotApiServerOptions options = {});
  /// Limits run on `clock` (e.g. a ManualClock shared with the test).
  template <Clock C>
  BotApiServer(BotApiServerOptions options, C clock)
      : BotApiServer(std::move(options), [clock] {
          return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.now().time_since_epoch());
        }) {}
  ~BotApiServer();
  BotApiServer(const BotApiServer&) = delete;
  BotApiServer& operator=(const BotApiServer&) = delete;

  /// Binds 127.0.0.1 and starts serving on a new thread. Throws floodgate::Error
  /// if the port cannot be bound or the server was already started.
  void start();
  /// Closes the listener and every connection and joins the thread. Stats and
  /// messages stay readable. Idempotent; the destructor calls it.
  void stop();

  std::uint16_t port() const;
  /// "https://127.0.0.1:<port>" (or http://): the base URL clients use.
  std::string url() const;
  net::Endpoint endpoint() const;
  /// The CA certificate a client must trust (empty in plain-HTTP mode).
  const std::string& ca_pem() const;

  void add_token(const Secret& token);
  /// Every later request with this token is answered 401 Unauthorized.
  void revoke_token(const Secret& token);
  void set_limits(const Secret& token, const BotApiLimits& limits);
  /// The next `times` requests of `token` (or of `fault.method`) fail with `fault`.
  void inject(const Secret& token, const Fault& fault, int times = 1);
  /// Sends to `from_chat_id` fail from now on with migrate_to_chat_id = `to_chat_id`.
  void migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id);

  /// Declares a user: from now on only the bots it started can write to it.
  void add_user(std::int64_t user_id, std::string first_name = "Sim User", std::string username = {});
  /// The user pressed Start in the bot (declaring the user if needed); unblocks it.
  void start_bot(const Secret& token, std::int64_t user_id);
  /// The user blocked the bot (declaring the user if needed).
  void block_bot(const Secret& token, std::int64_t user_id);
  /// Declares a group, supergroup or channel (`chat_id` < 0) with no bots in it.
  void add_group(std::int64_t chat_id, SimChatType type, std::string title);
  /// The bot joins the declared group (declaring it as a group if needed).
  void add_member(const Secret& token, std::int64_t chat_id);
  /// The bot was removed from the group: "bot was kicked from the ... chat".
  void kick_bot(const Secret& token, std::int64_t chat_id);

  /// Sets up the server from a scenario (the format of docs/bot-api-simulator.md:
  /// bots, limits, users, groups, migrations, updates, faults). Throws
  /// floodgate::Error naming the bad entry; nothing is applied then.
  void apply_scenario(const nlohmann::json& scenario);

  /// Queues an update for the token's getUpdates, setting its "update_id";
  /// wakes a waiting long poll. Returns the update_id, or 0 when the bot's
  /// allowed_updates exclude its kind (Telegram does not keep it then).
  std::int64_t push_update(const Secret& token, nlohmann::json update);
  /// Queues a "message" update: a user writes `text` in `chat_id` (a user
  /// writing to a bot has started it).
  std::int64_t push_message(const Secret& token, std::int64_t chat_id, std::string text);
  /// Queues a "callback_query" update: `user_id` pressed a button with
  /// `data`; answerCallbackQuery accepts its id once.
  std::int64_t push_callback_query(const Secret& token, std::int64_t user_id, std::string data);
  /// Stores a file as if it had been uploaded earlier; every bot may use its
  /// file_id (the legacy, shared form). Returns its file_id.
  std::string add_file(std::string bytes, std::string file_name);
  /// Stores a file received by one bot; only that bot may use the file_id.
  std::string add_file(const Secret& token, std::string bytes, std::string file_name);

  TokenStats stats(const Secret& token) const;
  /// The messages of a chat, oldest first, whichever bot sent them.
  std::vector<SimMessage> messages(std::int64_t chat_id) const;
  /// The messages of a chat as one bot sees it (its private chat with a user).
  std::vector<SimMessage> messages(const Secret& token, std::int64_t chat_id) const;
  /// TCP connections accepted so far (keep-alive tests compare it with requests).
  std::uint64_t connections_accepted() const;

 private:
  using TimeSource = std::function<std::chrono::nanoseconds()>;
  BotApiServer(BotApiServerOptions options, TimeSource now);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace floodgate::sim
