// floodgate/telegram/update_poller.hpp: many bots' updates as one stream.
//
// `UpdatePoller` long-polls getUpdates for several tokens of a `BotPool` at
// once (one request in flight per bot, `offset`, `limit`, `timeout`,
// `allowed_updates`) and delivers every update tagged with the token id of
// the bot that received it, so a reply goes through that bot:
//
//   floodgate::telegram::UpdateOffsetFile offsets(state_dir / "update-offsets.json");
//   floodgate::telegram::UpdatePoller poller(bots, {
//       .offsets = &offsets,
//       .on_update = [&](const floodgate::telegram::Update& update) {   // callback style
//         if (auto chat = update.chat_id())
//           bots.async_call_as(update.token_id, "sendMessage", {{"chat_id", *chat}, {"text", "got it"}}, log_error);
//       }});
//   poller.start();
//   ...
//   poller.async_close(asio::use_future).get();   // no callback runs after this
//
// Channel style (no `on_update`): `channel()` is an Asio concurrent channel
// (`async_receive` with a callback, a future or `co_await`, per-operation
// cancellation) completing with `std::error_code`: `errc::shut_down` once
// the poller is closed, `errc::cancelled` for a cancelled receive; the
// consumer calls `acknowledge(update)` once it has
// handled an update. It never overflows: a bot is asked for more only when
// every update it delivered is acknowledged, and the channel holds
// `limit` x bots.
//
// Commit point (per bot). An update counts as handled when the consumer
// acknowledges it (callback style: when `on_update` returns). The poller then
// saves `next_offset` = the update_id after the highest handled one with no
// gap below it to the `UpdateOffsetSink`, and only after that save succeeds
// does it send the getUpdates with that offset, which is what confirms the
// updates to Telegram (Telegram forgets everything below the offset it is
// asked for). Before it hands a batch to the consumer it saves
// `delivered_through`, the batch's last update_id. So:
// - nothing is lost: an update is confirmed to Telegram only after it was
//   handled and that was written down (a save that fails stalls that bot,
//   reported, and is retried with backoff; nothing is confirmed meanwhile);
// - after a crash the poller starts from the saved offset: the updates of
//   the batch being handled that were not yet saved as handled come again,
//   flagged `Update::redelivered`; of those, only one whose handler had run
//   and whose save had not (callback style: at most one per bot) was really
//   handled before. An update that is not flagged was never delivered. This is
//   at-least-once with every possible repeat marked: a handler that checks
//   flagged updates against its own records (or writes its effects and the
//   offset in one transaction, through its own `UpdateOffsetSink`) gets
//   exactly-once.
// Without a sink, offsets live in memory: a restart gets from Telegram every
// update not yet confirmed (unflagged).
//
// Failures, per bot (`status()`, `on_state`):
// - getUpdates goes through `BotPool::async_call_as(token_id, …)`: one retry
//   path. getUpdates is idempotent (the offset says what is confirmed, so
//   asking twice returns the same updates), so a lost answer, a timeout or a
//   5xx is simply asked again; after the pool's own attempts the poller waits
//   with the library's backoff (`RetryPolicy`, exponential with full jitter)
//   and asks again, for ever (state `retrying`).
// - 429: the pool cools the token for `retry_after` (its CooldownSink keeps
//   it) and waits within its policy's max_wait; past that the poller waits
//   until the pool's `earliest` (state `cooling`). No request goes into a
//   known cooldown.
// - 409 Conflict (another getUpdates for the bot, from another process or
//   poller, or a webhook is set): state `conflict` with Telegram's words,
//   logged once per episode, asked again after `conflict_backoff` (growing,
//   jittered): never a tight loop. It clears when a getUpdates succeeds.
// - 401 / a disabled token: state `disabled`; no request is sent while the
//   pool keeps it disabled, the poller looks again with the backoff's cap.
//
// Shutdown. `async_close` stops every bot (a getUpdates in flight is
// abandoned: its answer is dropped unseen, so its updates are not confirmed
// and come again next time), closes the channel and completes once no
// callback can run any more. The destructor closes too, without waiting for
// an `on_update` running on another thread to return only if called from it
// (it also waits for a sink `save` in progress: do not destroy the poller from
// inside one). The BotPool and the sink must outlive the poller; without
// `async_close` too: once the destructor returns the poller touches neither
// (work already queued on its strand, an acknowledge or a getUpdates answer,
// finds it closed), so destroying the poller, then the BotPool, then the sink
// while the io_context still runs is safe. Thread-safe.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "floodgate/async/channel.hpp"
#include "floodgate/core/clock.hpp"
#include "floodgate/core/retry_policy.hpp"
#include "floodgate/telegram/bot_pool.hpp"
#include "floodgate/telegram/update_offsets.hpp"

namespace floodgate::telegram {

/// One update and the bot that received it.
struct Update {
  std::string token_id;  ///< the receiving bot: reply with `bots.async_call_as(token_id, …)`
  std::int64_t update_id = 0;
  nlohmann::json json;  ///< the Update object as Telegram sent it
  /// It may have been delivered (and handled) before a restart: it was
  /// delivered and not yet saved as handled when the process stopped.
  bool redelivered = false;

  /// The chat of a message, edited message, channel post or a callback
  /// query's message; nothing for other kinds.
  std::optional<std::int64_t> chat_id() const;
};

enum class PollState {
  starting,  ///< no answer yet
  polling,   ///< the last getUpdates succeeded
  conflict,  ///< 409: another getUpdates or a webhook (see `description`)
  cooling,   ///< 429: waiting for the token's cooldown (`retry_at`)
  retrying,  ///< a failure (network, 5xx, a bad answer): backing off
  disabled,  ///< the pool disabled the token (401) or does not know it
  stalled,   ///< offsets could not be saved: nothing is delivered or confirmed
  closed,
};
const char* to_string(PollState state) noexcept;

/// One bot's polling, as `status()` and `on_state` report it.
struct BotPollStatus {
  std::string token_id;
  PollState state = PollState::starting;
  std::string description;  ///< Telegram's (or the error's) words for the last failure
  std::int64_t next_offset = 0;  ///< saved: every update below is handled
  std::uint64_t requests = 0;    ///< getUpdates calls that completed
  std::uint64_t delivered = 0;   ///< updates handed to the consumer
  std::uint64_t conflicts = 0;   ///< 409 answers
  std::optional<SteadyClock::time_point> retry_at;  ///< when the next getUpdates goes out, while waiting
};

struct UpdatePollerOptions {
  /// The bots to poll, by token id; empty: every token of the pool.
  std::vector<std::string> token_ids;
  /// getUpdates `timeout` (long poll, 0..50 s) and `limit` (1..100).
  std::chrono::seconds timeout{25};
  int limit = 100;
  /// getUpdates `allowed_updates` ("message", "callback_query", …); none:
  /// Telegram keeps what was set last. Telegram applies it to updates
  /// created after the call.
  std::optional<std::vector<std::string>> allowed_updates;
  /// Where offsets persist; none: in memory. Must outlive the poller.
  UpdateOffsetSink* offsets = nullptr;
  /// Pauses after failed getUpdates runs and unsaved offsets.
  RetryPolicy backoff{.backoff_base = std::chrono::milliseconds(500), .backoff_cap = std::chrono::seconds(30)};
  /// Pauses after 409 Conflict.
  RetryPolicy conflict_backoff{.backoff_base = std::chrono::seconds(2), .backoff_cap = std::chrono::seconds(60)};
  /// Callback style: runs on the poller's strand, one update at a time, in
  /// update_id order per bot; its return acknowledges the update. None: the channel.
  std::function<void(const Update&)> on_update;
  /// Told when a bot's state or description changes (on the poller's strand).
  std::function<void(const BotPollStatus&)> on_state;
};

class UpdatePoller {
 public:
  /// Completes with std::error_code: `errc::shut_down` once closed,
  /// `errc::cancelled` for a cancelled receive (floodgate/async/channel.hpp).
  using Channel = async::Channel<void(std::error_code, Update)>;
  using CloseSignature = void(std::error_code);

  /// Throws floodgate::Error for an unknown token id, limit or timeout out of
  /// range, or a sink that cannot be read (UpdateOffsetFile throws earlier).
  UpdatePoller(BotPool& bots, UpdatePollerOptions options);
  ~UpdatePoller();
  UpdatePoller(const UpdatePoller&) = delete;
  UpdatePoller& operator=(const UpdatePoller&) = delete;

  /// Starts polling every bot. Once only; not after close.
  void start();

  /// Channel style: every update, in update_id order per bot.
  Channel& channel() noexcept;
  /// Channel style: `update` is handled (see the header comment). Unknown or
  /// repeated acknowledgements are ignored. Any thread.
  void acknowledge(const Update& update);

  /// Stops; completes with `void(std::error_code)` once no callback can run.
  /// It completes as soon as the poller's strand runs it, so there is no wait
  /// to cancel: a cancellation signal is ignored.
  template <class CompletionToken>
  auto async_close(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, CloseSignature>(
        [this](auto handler) { start_close(boost::asio::any_completion_handler<CloseSignature>(std::move(handler))); },
        token);
  }

  std::vector<BotPollStatus> status() const;

  struct Impl;

 private:
  void start_close(boost::asio::any_completion_handler<CloseSignature> handler);
  std::shared_ptr<Impl> impl_;
};

}  // namespace floodgate::telegram
