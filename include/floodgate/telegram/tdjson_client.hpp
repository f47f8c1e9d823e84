// floodgate/telegram/tdjson_client.hpp: asynchronous requests to many TDLib clients.
//
// TDLib answers every client through one queue that only one thread at a time
// may read. `TdjsonClient` owns that thread: it reads the queue and routes
// each message by its "@client_id" and "@extra" to the operation waiting for
// it, and each update (a message without "@extra") to its client's handler.
//
//   asio::io_context io;
//   telegram::TdjsonClient tdjson(io.get_executor(), telegram::TdjsonLibrary::open());
//   auto client = tdjson.create_client([](nlohmann::json update) { ... });
//
//   tdjson.async_send(client, {{"@type", "getMe"}},
//                     [](std::error_code ec, nlohmann::json reply) { ... });       // callback
//   auto f = tdjson.async_send(client, request, asio::use_future);                // std::future
//   auto [ec, reply] = co_await tdjson.async_send(client, request, asio::use_awaitable);
//
// Completion signature: `void(std::error_code, nlohmann::json)`. A reply from
// TDLib, including `{"@type":"error",...}`, completes with an empty error code
// and the reply (see flood_errors.hpp to classify it); the error code is set
// only when no reply will come:
//   - floodgate::errc::deadline_exceeded  the request timeout passed;
//   - floodgate::errc::shut_down          shutdown(), or the client closed first;
//   - std::errc::invalid_argument         unknown client, request not a JSON
//                                         object or not serialisable;
//   - floodgate::errc::cancelled          the caller cancelled it (below).
// Every request completes exactly once, on its handler's associated executor
// (by default this object's executor). async_send owns "@extra": a value the
// caller set is replaced.
//
// Cancellation (the handler's cancellation slot: bind_cancellation_slot, `||`):
// a request is handed to TDLib inside async_send, and TDLib cannot recall it.
// `terminal` or `partial` cancellation ends the caller's wait at once with
// errc::cancelled (== std::errc::operation_canceled); TDLib may still carry
// the request out, and its reply is dropped (counted in `Stats::unmatched`).
// `total` alone cannot be honoured: the request ends with its reply. The
// client and its other requests are not affected.
//
// Updates of one client are delivered in order, one at a time, on a strand of
// this object's executor (or on the executor given to create_client).
//
// TDLib's queue is per process, so there is one TdjsonClient per loaded
// libtdjson: a second one throws floodgate::Error. The io_context behind the
// executor must outlive this object. Malformed messages from the library are
// counted in stats() and dropped.
//
// The receive thread outlives every TDLib client: shutdown() (and so the
// destructor) first closes every client that is still open and waits, up to
// Options::close_timeout, for each to report authorizationStateClosed; only
// then does it stop reading. TDLib aborts the process at exit when a client
// is still open, so close sessions (or let this object close them) first.
#pragma once

#include <floodgate/core/error.hpp>
#include <floodgate/telegram/tdjson_library.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

namespace floodgate::telegram {

/// The "@type" of a TDLib object; empty when `object` is not an object or its
/// "@type" is missing or not a string. Never throws, whatever TDLib sent.
inline std::string_view td_type(const nlohmann::json& object) noexcept {
  if (!object.is_object()) return {};
  const auto type = object.find("@type");
  return type != object.end() && type->is_string() ? std::string_view(type->get_ref<const std::string&>())
                                                   : std::string_view{};
}

class TdjsonClient {
 public:
  using executor_type = boost::asio::any_io_executor;
  using ClientId = std::int32_t;
  using UpdateHandler = std::function<void(nlohmann::json update)>;
  using Signature = void(std::error_code, nlohmann::json);

  struct Options {
    /// Default limit for one request; zero waits as long as TDLib takes.
    /// A request TDLib never answers then ends with deadline_exceeded instead
    /// of waiting until shutdown. Long requests (a synchronous downloadFile of
    /// a large file) should pass their own limit to async_send.
    std::chrono::milliseconds request_timeout{std::chrono::minutes(5)};
    /// How long shutdown() waits for the clients it closes to report closed.
    std::chrono::milliseconds close_timeout{std::chrono::seconds(10)};
    /// How long one td_receive call may block. shutdown() wakes the receive
    /// thread with a request to a live client; when none answers, this bounds
    /// how long shutdown() takes.
    std::chrono::milliseconds receive_poll{100};
    /// TDLib's own log verbosity, set once at start (TDLib's default, 5,
    /// logs every request). Negative: leave it alone.
    int tdlib_log_verbosity = 1;
  };

  struct Stats {
    std::uint64_t received = 0;   ///< messages read from the library
    std::uint64_t malformed = 0;  ///< not JSON, not an object, or without a client id
    std::uint64_t unmatched = 0;  ///< replies nobody waits for (e.g. after a timeout)
    std::size_t pending = 0;      ///< requests waiting for their reply
  };

  TdjsonClient(executor_type executor, std::shared_ptr<TdjsonLibrary> library, Options options);
  TdjsonClient(executor_type executor, std::shared_ptr<TdjsonLibrary> library)
      : TdjsonClient(std::move(executor), std::move(library), Options{}) {}
  TdjsonClient(const TdjsonClient&) = delete;
  TdjsonClient& operator=(const TdjsonClient&) = delete;
  /// Calls shutdown().
  ~TdjsonClient();

  executor_type get_executor() const noexcept { return executor_; }
  const TdjsonLibrary& library() const noexcept;

  /// Creates a TDLib instance; its updates go to `on_update` (may be empty).
  ClientId create_client(UpdateHandler on_update = {});
  /// The same, delivering updates on `update_executor` (e.g. your strand).
  ClientId create_client(executor_type update_executor, UpdateHandler on_update);
  /// Stops delivering updates of `client` (replies still complete).
  void clear_update_handler(ClientId client);

  /// Sends `request` to `client`; completes with its reply. Uses Options::request_timeout.
  template <class CompletionToken>
  auto async_send(ClientId client, nlohmann::json request, CompletionToken&& token) {
    return async_send(client, std::move(request), options_.request_timeout,
                      std::forward<CompletionToken>(token));
  }

  /// The same with its own timeout (zero: none).
  template <class CompletionToken>
  auto async_send(ClientId client, nlohmann::json request, std::chrono::milliseconds timeout,
                  CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, Signature>(
        [this](auto handler, ClientId id, nlohmann::json body, std::chrono::milliseconds limit) {
          start_send(id, std::move(body), limit, PendingHandler(std::move(handler)));
        },
        token, client, std::move(request), timeout);
  }

  /// Runs a request TDLib can answer synchronously (setLogVerbosityLevel,
  /// getTextEntities, ...). A reply that is not JSON throws floodgate::Error.
  nlohmann::json execute(const nlohmann::json& request);

  /// Blocks until `client` has reported authorizationStateClosed, or
  /// `timeout` passed; true if it has. Signalled by the receive thread, not
  /// the executor, so it may be called from a thread that runs the
  /// io_context (a destructor) without deadlocking; it does not send `close`.
  /// An unknown client counts as closed.
  bool wait_closed(ClientId client, std::chrono::milliseconds timeout);

  /// Closes every TDLib client that is still open and waits for them (up to
  /// Options::close_timeout), then stops the receive thread and completes
  /// every pending request with errc::shut_down; later requests complete
  /// with it at once. Idempotent. Sessions should be closed before
  /// (MtprotoSession::async_close): this is the last line of defence.
  void shutdown();

  Stats stats() const;

 private:
  using PendingHandler = boost::asio::any_completion_handler<Signature>;
  struct State;

  void start_send(ClientId client, nlohmann::json request, std::chrono::milliseconds timeout,
                  PendingHandler handler);

  executor_type executor_;
  Options options_;
  std::shared_ptr<State> state_;
};

}  // namespace floodgate::telegram
