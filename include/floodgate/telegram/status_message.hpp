// floodgate/telegram/status_message.hpp: a progress message edited often without flooding.
//
// A long job reports progress by editing one message. Editing on every step
// would earn 429s (an edit counts against the chat's limit), so
// `StatusMessage` debounces: at most one edit per `interval`, the latest text
// wins, a text equal to the one shown is not sent, and `async_finish` always
// delivers the final text. Every edit goes through the token that sent the
// message (BotPool's owner-bound path); when that token is cooling the edit is
// retried when the cooldown ends.
//
//   auto [ec, r] = co_await bots.async_send_message({.chat_id = chat, .text = "0%"}, use_awaitable);
//   auto status = floodgate::telegram::StatusMessage::create(bots, *r.sent(), std::chrono::seconds(1));
//   for (int i = 1; i <= 1000; ++i) status->update(fmt::format("{}%", i / 10));   // a few edits
//   co_await status->async_finish("done", use_awaitable);                          // always shown
//
// Thread-safe. Held by shared_ptr: pending edits keep it alive (and keep the
// BotPool's state, not the BotPool object, alive: see create()).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <system_error>

#include "floodgate/telegram/bot_pool.hpp"

namespace floodgate::telegram {

class StatusMessage : public std::enable_shared_from_this<StatusMessage> {
 public:
  using FinishSignature = void(std::error_code);

  /// `message.text` is taken as what is shown now. The status message may
  /// outlive `bots`: edits due after the BotPool is destroyed are not sent (a
  /// pending finish ends with errc::shut_down).
  static std::shared_ptr<StatusMessage> create(BotPool& bots, SentMessage message, std::string shown_text,
                                               std::chrono::milliseconds interval = std::chrono::seconds(1));

  /// Shows `text` soon: at the next free edit slot, unless a newer text replaces it first.
  void update(std::string text);

  /// Shows `text` and completes once it is on screen (or with the error that
  /// prevented it: bad_request, auth_failed, all_credentials_disabled…). Later updates are ignored.
  /// Cancellation (the handler's slot) ends it with errc::cancelled (==
  /// std::errc::operation_canceled) and stops the message for good: no edit is
  /// sent any more. Waiting for its edit slot: any type, the final text is
  /// never sent. With an edit on the wire: terminal and partial end the wait
  /// at once (that edit may still be applied once; it is not sent again);
  /// total waits for that edit's answer and then ends with success if it
  /// showed the final text, else with errc::cancelled.
  template <class CompletionToken>
  auto async_finish(std::string text, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, FinishSignature>(
        [self = shared_from_this()](auto handler, std::string final_text) {
          self->start_finish(std::move(final_text),
                             boost::asio::any_completion_handler<FinishSignature>(std::move(handler)));
        },
        token, std::move(text));
  }

  /// Edits sent to the server so far.
  std::uint64_t edits_sent() const;

  ~StatusMessage();

 private:
  struct State;
  explicit StatusMessage(std::unique_ptr<State> state);
  void start_finish(std::string text, boost::asio::any_completion_handler<FinishSignature> handler);
  void cancel_finish(boost::asio::cancellation_type type);
  void stop_locked(std::error_code ec);
  void schedule_locked(std::chrono::steady_clock::time_point when);
  void flush();
  void on_edited(const std::string& text, std::error_code ec, const BotPoolResult& result);

  std::unique_ptr<State> state_;
};

}  // namespace floodgate::telegram
