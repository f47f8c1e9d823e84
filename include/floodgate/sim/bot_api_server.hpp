// floodgate/sim/bot_api_server.hpp: a local Telegram Bot API server for tests and demos.
//
// `BotApiServer` listens on 127.0.0.1 over real HTTPS (a certificate generated
// at start, see sim::TestCertificates) or plain HTTP, and answers enough of the
// Bot API to exercise a client for real: getMe, sendMessage, sendDocument
// (multipart upload), editMessageText, copyMessage, getFile with the file
// download URL (/file/bot<token>/<file_path>), and getUpdates with long polling
// fed by `push_update` / `push_message`. Parameters are accepted as a query
// string, urlencoded form, JSON or multipart, and method names are
// case-insensitive, as on api.telegram.org.
//
// Flood control follows Telegram's documented limits per token (all settable):
// overall 30 messages per second, 1 per second per chat, 20 per minute per
// group. A request over a limit gets Telegram's exact answer, HTTP 429 with
//
//   {"ok":false,"error_code":429,"description":"Too Many Requests: retry after N",
//    "parameters":{"retry_after":N}}
//
// and the token (for the overall limit) or the (token, chat) pair is cooling
// for N seconds. A client that sends into a cooldown is counted
// (`TokenStats::sent_during_cooldown`) and punished like Telegram does: the
// cooldown doubles, so N grows. Limits read time from the clock given at
// construction: with a `ManualClock` a test moves time itself.
//
// Failures on demand: `revoke_token` (401 Unauthorized from then on) and
// `inject` (the next requests of a token get a 5xx, a dropped connection, a
// response cut in the middle, a slow answer, or invalid JSON).
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
#include "floodgate/sim/test_certificates.hpp"

namespace floodgate::sim {

/// At most `count` requests per `period`.
struct Rate {
  int count = 1;
  std::chrono::milliseconds period{std::chrono::seconds(1)};

  /// Parses "30/s", "1/s", "20/min", "100/h", "5/250ms". Throws floodgate::Error.
  static Rate parse(std::string_view text);
  friend bool operator==(const Rate&, const Rate&) = default;
};

/// Flood control of one token. An empty optional means "no such limit".
struct BotApiLimits {
  std::optional<Rate> overall = Rate{30, std::chrono::seconds(1)};
  std::optional<Rate> per_chat = Rate{1, std::chrono::seconds(1)};
  std::optional<Rate> per_group = Rate{20, std::chrono::minutes(1)};  ///< chats with a negative id
  /// A request sent into a cooldown multiplies what is left of it by this.
  double ignored_cooldown_factor = 2.0;
};

/// A misbehaviour to inject into the next requests of a token.
struct Fault {
  enum class Kind {
    server_error,        ///< HTTP `status` with a Bot API error body
    drop_connection,     ///< the request is read, then the connection is closed without an answer
    truncated_response,  ///< the response is cut in the middle of its body, then the connection closes
    slow_reply,          ///< the request is handled, the answer is sent after `delay`
    invalid_json,        ///< HTTP 200 with a body that is not JSON
  };
  Kind kind = Kind::server_error;
  int status = 500;
  std::chrono::milliseconds delay{0};

  static Fault server_error(int status = 500) { return {Kind::server_error, status}; }
  static Fault drop_connection() { return {Kind::drop_connection}; }
  static Fault truncated_response() { return {Kind::truncated_response}; }
  static Fault slow_reply(std::chrono::milliseconds delay) { return {Kind::slow_reply, 200, delay}; }
  static Fault invalid_json() { return {Kind::invalid_json}; }
};

/// What the server saw from one token.
struct TokenStats {
  std::uint64_t requests = 0;              ///< every request for this token, whatever the answer
  std::uint64_t succeeded = 0;             ///< answered ok:true
  std::uint64_t rate_limited = 0;          ///< answered 429
  std::uint64_t sent_during_cooldown = 0;  ///< arrived while told to wait (a subset of rate_limited)
  std::uint64_t unauthorized = 0;          ///< answered 401
  std::uint64_t faults = 0;                ///< answered with an injected fault
  std::map<std::string, std::uint64_t> by_method;  ///< method names in lower case
};

/// A message as the server stores it.
struct SimMessage {
  std::int64_t chat_id = 0;
  std::int64_t message_id = 0;
  std::int64_t sender_id = 0;  ///< the bot's id, or the user's for pushed messages
  bool from_bot = true;
  std::string text;            ///< text or caption
  std::string file_id;         ///< set for documents
  int edits = 0;
};

struct BotApiServerOptions {
  /// Tokens the server knows; others get 401. More with `add_token`.
  std::vector<Secret> tokens;
  BotApiLimits limits;  ///< for every token without its own `set_limits`
  bool tls = true;      ///< https with `certificates`; false: plain http
  /// The certificate to serve; generated for localhost/127.0.0.1/::1 when empty.
  std::optional<sim::TestCertificates> certificates;
  std::uint16_t port = 0;  ///< 0: any free port
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
  /// The next `times` requests of `token` (any method) fail with `fault`.
  void inject(const Secret& token, const Fault& fault, int times = 1);
  /// Sends to `from_chat_id` fail from now on with migrate_to_chat_id = `to_chat_id`.
  void migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id);

  /// Queues an update for the token's getUpdates, setting its "update_id";
  /// wakes a waiting long poll. Returns the update_id.
  std::int64_t push_update(const Secret& token, nlohmann::json update);
  /// Queues a "message" update: a user writes `text` in `chat_id`.
  std::int64_t push_message(const Secret& token, std::int64_t chat_id, std::string text);
  /// Stores a file as if it had been uploaded earlier; returns its file_id.
  std::string add_file(std::string bytes, std::string file_name);

  TokenStats stats(const Secret& token) const;
  /// The messages of a chat, oldest first.
  std::vector<SimMessage> messages(std::int64_t chat_id) const;
  /// TCP connections accepted so far (keep-alive tests compare it with requests).
  std::uint64_t connections_accepted() const;

 private:
  using TimeSource = std::function<std::chrono::nanoseconds()>;
  BotApiServer(BotApiServerOptions options, TimeSource now);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace floodgate::sim
