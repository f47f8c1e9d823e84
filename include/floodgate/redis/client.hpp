// floodgate/redis/client.hpp: one Redis connection driven by Asio.
//
//   floodgate::redis::RedisClient redis(io.get_executor(), parse_redis_url("redis://127.0.0.1:6379"));
//   redis.start();
//   redis.async_command({"SET", "k", "v"}, [](std::error_code ec, floodgate::redis::RedisReply r) { ... });
//
// hiredis is used for the protocol only (redisFormatCommandArgv encodes, a
// redisReader decodes); the socket is Asio's, plain TCP or TLS
// (`rediss://`, the peer's chain and name verified with net/tls.hpp). No
// call blocks: commands are queued, written in pipelines, and their replies
// matched in order. Every command completes exactly once with
// void(std::error_code, RedisReply):
//   {}                        a reply (which may be a Redis error reply: `reply.is_error()`)
//   redis::errc::unavailable  not connected (not sent); never waits for a reconnect
//   redis::errc::timeout      no reply within `command_timeout` (it may have run)
//   errc::auth_failed         Redis refused the URL's user/password
//   errc::shut_down           the client was closed
//   errc::cancelled           the caller cancelled it (below)
// Commands given while the first connection (or a reconnection) is being set
// up wait for it, at most `connect_timeout`.
//
// Cancellation (the handler's cancellation slot: bind_cancellation_slot, `||`):
// a command not written yet (waiting for the connection or behind others)
// ends at once with floodgate::errc::cancelled (== std::errc::operation_canceled)
// and is never sent, whatever the type. A command already written ends the
// caller's wait at once on `terminal` or `partial` with errc::cancelled, but
// it is not recalled: Redis may still run it, as after a timeout; its reply is
// read and dropped, and the connection stays in use. `total` alone cannot end
// a written command: it ends with its reply. An `async_eval` cancelled between
// its steps (NOSCRIPT, SCRIPT LOAD) sends nothing more. The client stays usable.
//
// Connection. After the (TLS) connect the client sends AUTH [user] password
// and SELECT db when the URL asks, then SUBSCRIBE for a subscriber client.
// A lost connection, a timeout or a failed attempt is dialled again after
// floodgate::Backoff's pause (core/backoff.hpp: full jitter above
// `reconnect.floor`, up to `reconnect.cap`); a refused password is logged (never the password) and
// retried the same way, since an operator may fix the ACL. `on_ready` runs on
// every (re)connection once the handshake and subscription are done, so the
// owner can reload what it may have missed; `on_down` when one is lost.
//
// Subscriber. A client given `subscribe(channel, handler)` before `start`
// is a pub/sub connection (RESP2 allows nothing else on it): every message
// published on the channel reaches the handler, on the client's strand.
//
// Scripts. `async_eval` calls a `Script` by its SHA1 (EVALSHA); after
// NOSCRIPT (a restarted or flushed Redis) it loads the script (SCRIPT LOAD)
// and calls it again: NOSCRIPT means it did not run.
//
// Shutdown. `close()` (also run by the destructor) ends queued commands with
// errc::shut_down; when it returns, no `on_ready`, `on_down` or message
// handler is running or will run. Thread-safe: any method from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "floodgate/async/detail/pending_op.hpp"
#include "floodgate/core/backoff.hpp"
#include "floodgate/net/tls.hpp"
#include "floodgate/redis/error.hpp"
#include "floodgate/redis/reply.hpp"
#include "floodgate/redis/url.hpp"

namespace floodgate::redis {

struct RedisClientOptions {
  /// CAs for `rediss://` (the system store unless named); verification stays on.
  net::TlsClientOptions tls;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{2000};
  /// Pauses between connection attempts; max_attempts 0: never give up.
  BackoffPolicy reconnect{std::chrono::milliseconds(100), std::chrono::seconds(5), std::chrono::seconds(5), 0};
  /// Commands queued or in flight at most; more fail with redis::errc::unavailable.
  std::size_t max_pending = 100000;
};

/// A Lua script called by SHA1 (computed here from the source).
class Script {
 public:
  explicit Script(std::string source);
  const std::string& source() const noexcept { return text_->source; }
  const std::string& sha1() const noexcept { return text_->sha1; }

 private:
  struct Text {
    std::string source;
    std::string sha1;
  };
  std::shared_ptr<const Text> text_;  // copies share it: a call keeps its script alive
};

class RedisClient {
 public:
  using Signature = void(std::error_code, RedisReply);

  RedisClient(boost::asio::any_io_executor executor, RedisUrl url, RedisClientOptions options = {});
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// Makes this a subscriber of `channel`; call before start().
  void subscribe(std::string channel, std::function<void(std::string_view message)> on_message);
  /// Runs after every successful (re)connection; set before start().
  void on_ready(std::function<void()> handler);
  /// Runs when a connection is lost or an attempt fails (with why); set before start().
  void on_down(std::function<void(std::error_code)> handler);

  /// Starts connecting (and reconnecting for as long as the client lives).
  void start();
  /// Ends every queued command with errc::shut_down and stops for good.
  void close();

  /// The client's strand, where its callbacks run.
  boost::asio::any_io_executor get_executor() const noexcept;

  /// True while a connection is up and its handshake done.
  bool connected() const noexcept;
  const RedisUrl& url() const noexcept;

  template <class CompletionToken>
  auto async_command(std::vector<std::string> args, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, const std::vector<std::string>& a) {
          start_command(a, async::detail::make_pending_op<std::error_code, RedisReply>(
                                          std::move(handler), get_executor()));
        },
        token, std::move(args));
  }

  /// EVALSHA script keys... args..., loading the script after NOSCRIPT.
  template <class CompletionToken>
  auto async_eval(const Script& script, std::vector<std::string> keys, std::vector<std::string> args,
                  CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, Script s, std::vector<std::string> k, std::vector<std::string> a) {
          // The completion is made first so that the call below does not depend on the handler's type.
          Completion completion =
              async::detail::make_pending_op<std::error_code, RedisReply>(std::move(handler), get_executor());
          start_eval(std::move(s), std::move(k), std::move(a), std::move(completion));
        },
        token, script, std::move(keys), std::move(args));
  }

 private:
  struct Impl;
  using Completion = std::unique_ptr<async::detail::PendingOp<std::error_code, RedisReply>>;
  void start_command(const std::vector<std::string>& args, Completion completion);
  void start_eval(Script script, std::vector<std::string> keys, std::vector<std::string> args,
                  Completion completion);

  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::redis
