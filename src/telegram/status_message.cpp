#include "floodgate/telegram/status_message.hpp"

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>

#include <mutex>
#include <optional>
#include <utility>

#include "floodgate/core/error.hpp"
#include "floodgate/async/detail/post_completion.hpp"

namespace floodgate::telegram {

struct StatusMessage::State {
  // The pool's state, not the BotPool object: an edit that waits for its slot
  // after the pool is destroyed ends with shut_down (nothing is sent then).
  std::shared_ptr<BotPool::Impl> pool;
  SentMessage message;
  std::chrono::milliseconds interval;
  boost::asio::any_io_executor io;
  boost::asio::steady_timer timer;

  mutable std::mutex mutex;
  std::string shown;    // what the chat shows (the last text delivered)
  std::string wanted;   // the latest text asked for
  std::chrono::steady_clock::time_point next_slot{};  // the earliest moment the next edit may go
  bool timer_armed = false;
  bool in_flight = false;
  bool finishing = false;  // async_finish was called: updates are ignored from then on
  bool stopped = false;    // the finish was cancelled: no edit is sent any more
  bool cancel_after_edit = false;  // total cancellation with an edit in flight: decided by its answer
  std::uint64_t edits = 0;
  std::optional<boost::asio::any_completion_handler<FinishSignature>> finish;
};

std::shared_ptr<StatusMessage> StatusMessage::create(BotPool& bots, SentMessage message, std::string shown_text,
                                                     std::chrono::milliseconds interval) {
  auto io = bots.executor();
  auto state =
      std::unique_ptr<State>(new State{bots.impl_, std::move(message), interval, io, boost::asio::steady_timer(io)});
  state->shown = shown_text;
  state->wanted = std::move(shown_text);
  state->next_slot = std::chrono::steady_clock::now() + interval;
  return std::shared_ptr<StatusMessage>(new StatusMessage(std::move(state)));
}

StatusMessage::StatusMessage(std::unique_ptr<State> state) : state_(std::move(state)) {}
StatusMessage::~StatusMessage() = default;

std::uint64_t StatusMessage::edits_sent() const {
  std::lock_guard lock(state_->mutex);
  return state_->edits;
}

void StatusMessage::update(std::string text) {
  std::lock_guard lock(state_->mutex);
  if (state_->finishing) return;
  state_->wanted = std::move(text);
  schedule_locked(state_->next_slot);
}

void StatusMessage::start_finish(std::string text, boost::asio::any_completion_handler<FinishSignature> handler) {
  std::lock_guard lock(state_->mutex);
  if (state_->finishing) {  // finishing twice: the second caller is told at once
    return async::detail::post_completion(state_->io, std::move(handler),
                                                    make_error_code(errc::bad_request));
  }
  state_->finishing = true;
  state_->wanted = std::move(text);
  if (auto slot = boost::asio::get_associated_cancellation_slot(handler); slot.is_connected()) {
    slot.assign([weak = weak_from_this()](boost::asio::cancellation_type type) {
      if (auto self = weak.lock(); self && type != boost::asio::cancellation_type::none) self->cancel_finish(type);
    });
  }
  state_->finish = std::move(handler);
  if (state_->wanted == state_->shown && !state_->in_flight) {
    auto done = std::move(*state_->finish);
    state_->finish.reset();
    return async::detail::post_completion(state_->io, std::move(done), std::error_code{});
  }
  schedule_locked(state_->next_slot);
}

// Not sent yet: dropped, any type. In flight: terminal and partial end the
// wait now (the edit's answer still updates `shown`); total waits for it.
void StatusMessage::cancel_finish(boost::asio::cancellation_type type) {
  std::lock_guard lock(state_->mutex);
  if (!state_->finish) return;
  constexpr auto ends_now = boost::asio::cancellation_type::terminal | boost::asio::cancellation_type::partial;
  if (state_->in_flight && (type & ends_now) == boost::asio::cancellation_type::none) {
    state_->cancel_after_edit = true;
    return;
  }
  stop_locked(make_error_code(errc::cancelled));
}

void StatusMessage::stop_locked(std::error_code ec) {
  state_->stopped = true;
  state_->wanted = state_->shown;
  if (state_->timer_armed) state_->timer.cancel();  // flush() then finds nothing to send
  auto done = std::move(*state_->finish);
  state_->finish.reset();
  async::detail::post_completion(state_->io, std::move(done), ec);
}

// Arms the timer for `when` unless an edit is in flight (its completion schedules the next) or armed.
void StatusMessage::schedule_locked(std::chrono::steady_clock::time_point when) {
  if (state_->stopped || state_->in_flight || state_->timer_armed || state_->wanted == state_->shown) return;
  state_->timer_armed = true;
  state_->timer.expires_at(when);
  state_->timer.async_wait([self = shared_from_this()](boost::system::error_code) { self->flush(); });
}

void StatusMessage::flush() {
  std::string text;
  {
    std::lock_guard lock(state_->mutex);
    state_->timer_armed = false;
    if (state_->stopped || state_->wanted == state_->shown) return;
    state_->in_flight = true;
    ++state_->edits;
    text = state_->wanted;
  }
  BotPool::start(state_->pool, BotPool::edit_message_text_call(state_->message, text), state_->message.token_id,
                 boost::asio::any_completion_handler<BotPool::Signature>(
                     [self = shared_from_this(), text](std::error_code ec, const BotPoolResult& result) {
                       self->on_edited(text, ec, result);
                     }));
}

void StatusMessage::on_edited(const std::string& text, std::error_code ec, const BotPoolResult& result) {
  std::lock_guard lock(state_->mutex);
  state_->in_flight = false;
  const auto now = std::chrono::steady_clock::now();
  state_->next_slot = now + state_->interval;
  if (state_->stopped) {
    if (!ec) state_->shown = text;  // a cancelled finish's edit: what the chat shows now; nothing more is sent
    return;
  }
  if (!ec) {
    state_->shown = text;
  } else if (ec == errc::all_credentials_cooling && result.earliest) {
    state_->next_slot = std::max(state_->next_slot, *result.earliest);  // the owner's cooldown, then again
  } else if (state_->finish) {
    auto done = std::move(*state_->finish);  // a final text that cannot be delivered: say why
    state_->finish.reset();
    state_->wanted = state_->shown;
    return async::detail::post_completion(state_->io, std::move(done), ec);
  } else {
    state_->wanted = state_->shown;  // a rejected progress text is dropped; the next update tries again
  }
  if (state_->finish && state_->wanted == state_->shown) {
    auto done = std::move(*state_->finish);
    state_->finish.reset();
    return async::detail::post_completion(state_->io, std::move(done), std::error_code{});
  }
  if (state_->finish && state_->cancel_after_edit) return stop_locked(make_error_code(errc::cancelled));
  schedule_locked(state_->next_slot);
}

}  // namespace floodgate::telegram
