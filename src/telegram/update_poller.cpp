#include "floodgate/telegram/update_poller.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <utility>

#include "floodgate/async/detail/open_latch.hpp"
#include "floodgate/async/detail/post_completion.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

namespace floodgate::telegram {

namespace {
using Duration = SteadyClock::duration;

std::uint64_t random_seed() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}
}  // namespace

const char* to_string(PollState state) noexcept {
  switch (state) {
    case PollState::starting: return "starting";
    case PollState::polling: return "polling";
    case PollState::conflict: return "conflict";
    case PollState::cooling: return "cooling";
    case PollState::retrying: return "retrying";
    case PollState::disabled: return "disabled";
    case PollState::stalled: return "stalled";
    case PollState::closed: return "closed";
  }
  return "unknown";
}

std::optional<std::int64_t> Update::chat_id() const {
  if (!json.is_object()) return std::nullopt;
  auto chat_of = [](const nlohmann::json& holder) -> std::optional<std::int64_t> {
    if (!holder.is_object()) return std::nullopt;
    const auto chat = holder.find("chat");
    if (chat == holder.end() || !chat->is_object()) return std::nullopt;
    const auto id = chat->find("id");
    if (id == chat->end() || !id->is_number_integer()) return std::nullopt;
    return id->get<std::int64_t>();
  };
  for (const char* kind : {"message", "edited_message", "channel_post", "edited_channel_post", "business_message",
                           "my_chat_member", "chat_member", "chat_join_request"}) {
    if (const auto it = json.find(kind); it != json.end()) return chat_of(*it);
  }
  if (const auto query = json.find("callback_query"); query != json.end() && query->is_object()) {
    if (const auto message = query->find("message"); message != query->end()) return chat_of(*message);
  }
  return std::nullopt;
}

struct UpdatePoller::Impl : std::enable_shared_from_this<Impl> {
  /// One bot's polling. Touched on the strand only, except `status` (status_mutex).
  struct Bot {
    Bot(boost::asio::strand<boost::asio::any_io_executor>& strand, const UpdatePollerOptions& options)
        : backoff(options.backoff, random_seed()),
          conflict_backoff(options.conflict_backoff, random_seed()),
          timer(strand) {}

    BotPollStatus status;
    std::int64_t handled_next = 0;        // every update below is acknowledged
    std::int64_t saved_next = 0;          // ... and written to the sink
    std::int64_t delivered_through = 0;   // the last update handed out (saved before it was)
    std::int64_t redelivery_through = 0;  // from the sink at start: these may have been handled
    std::deque<std::pair<std::int64_t, bool>> outstanding;  // delivered, in order: (update_id, acknowledged)
    RetrySchedule backoff;
    RetrySchedule conflict_backoff;
    boost::asio::steady_timer timer;
  };

  Impl(BotPool& pool, UpdatePollerOptions poller_options, std::size_t channel_capacity)
      : bots(pool),
        io(pool.executor()),
        options(std::move(poller_options)),
        strand(boost::asio::make_strand(io)),
        channel(io, channel_capacity) {}

  // ---- polling ------------------------------------------------------------

  void poll(Bot& bot) {
    if (closed) return;
    nlohmann::json params{{"offset", bot.saved_next},
                          {"limit", options.limit},
                          {"timeout", options.timeout.count()}};
    if (options.allowed_updates) params["allowed_updates"] = *options.allowed_updates;
    // Destroyed (the BotPool may be gone too): no more getUpdates.
    open.run_if_open([&] {
      bots.async_call_as(bot.status.token_id, "getUpdates", std::move(params),
                         boost::asio::bind_executor(strand, [self = shared_from_this(), &bot](std::error_code ec,
                                                                                               BotPoolResult result) {
                           self->on_answer(bot, ec, std::move(result));
                         }));
    });
  }

  void on_answer(Bot& bot, std::error_code ec, BotPoolResult result) {
    if (closed) return;  // abandoned at close: its updates stay unconfirmed, so they come again
    update_status(bot, [](BotPollStatus& s) { ++s.requests; });
    if (!ec && !result.result.is_array()) {
      ec = make_error_code(errc::malformed_response);
      result.description = "getUpdates answered with something that is not an array of updates";
    }
    if (!ec) return on_updates(bot, std::move(result.result));
    if (ec == errc::bad_request && result.description.starts_with("Conflict")) {
      update_status(bot, [](BotPollStatus& s) { ++s.conflicts; });
      if (bot.status.state != PollState::conflict) {
        log(LogLevel::warning, "bot token {}: getUpdates conflict ({}); is another poller or a webhook active?",
            bot.status.token_id, result.description);
      }
      return wait(bot, PollState::conflict, result.description, bot.conflict_backoff.next_backoff());
    }
    if (ec == errc::all_credentials_cooling && result.earliest) {
      const auto description = result.description.empty() ? std::string("the token is cooling") : result.description;
      return wait(bot, PollState::cooling, description, *result.earliest - SteadyClock{}.now());
    }
    const auto description = result.description.empty() ? ec.message() : ec.message() + ": " + result.description;
    if (ec == errc::all_credentials_disabled || ec == errc::auth_failed || ec == errc::unknown_credential) {
      // Nothing is sent while the pool keeps the token disabled; look again now and then.
      return wait(bot, PollState::disabled, description, options.backoff.backoff_cap);
    }
    log(LogLevel::info, "bot token {}: getUpdates failed ({}); asking again", bot.status.token_id, description);
    wait(bot, PollState::retrying, description, bot.backoff.next_backoff());
  }

  void on_updates(Bot& bot, nlohmann::json answer) {
    bot.backoff = RetrySchedule(options.backoff, random_seed());
    bot.conflict_backoff = RetrySchedule(options.conflict_backoff, random_seed());
    set_state(bot, PollState::polling, {});
    std::vector<Update> updates;
    std::int64_t last = bot.saved_next - 1;
    for (auto& item : answer) {
      const auto id = item.is_object() ? item.find("update_id") : item.end();
      if (!item.is_object() || id == item.end() || !id->is_number_integer()) {
        log(LogLevel::warning, "bot token {}: getUpdates returned an update without an update_id; skipped",
            bot.status.token_id);
        continue;
      }
      const auto update_id = id->get<std::int64_t>();
      if (update_id <= last) continue;  // below the offset asked for, or out of order: confirmed already
      last = update_id;
      updates.push_back(Update{bot.status.token_id, update_id, std::move(item), update_id <= bot.redelivery_through});
    }
    if (updates.empty()) return poll(bot);
    // Written before anything is handed out: after a crash these come again flagged.
    if (!save(bot, {bot.saved_next, last})) {
      return wait(bot, PollState::stalled, "cannot save update offsets", bot.backoff.next_backoff());
    }
    bot.delivered_through = last;
    for (const auto& update : updates) bot.outstanding.emplace_back(update.update_id, false);
    update_status(bot, [&](BotPollStatus& s) { s.delivered += updates.size(); });
    if (options.on_update) {
      for (const auto& update : updates) {
        {
          std::lock_guard lock(callback_mutex);
          if (closing) return;
          options.on_update(update);
        }
        acknowledged(bot, update.update_id);
      }
      return;
    }
    for (auto& update : updates) {
      if (!channel.try_send(std::error_code{}, std::move(update))) return;  // closed
    }
  }

  /// `update_id` of `bot` is handled: save the new offset, and ask for more once all are.
  void acknowledged(Bot& bot, std::int64_t update_id) {
    if (closed) return;
    const auto it = std::find_if(bot.outstanding.begin(), bot.outstanding.end(),
                                 [&](const auto& entry) { return entry.first == update_id; });
    if (it == bot.outstanding.end() || it->second) return;  // unknown, or acknowledged already
    it->second = true;
    while (!bot.outstanding.empty() && bot.outstanding.front().second) {
      bot.handled_next = bot.outstanding.front().first + 1;
      bot.outstanding.pop_front();
    }
    if (bot.handled_next != bot.saved_next) {
      // A failure here is retried before the next getUpdates (resume), which waits for it.
      save(bot, {bot.handled_next, bot.delivered_through});
    }
    if (bot.outstanding.empty()) resume(bot);
  }

  /// Next step of a bot with nothing outstanding: catch up on an unsaved offset, then poll.
  void resume(Bot& bot) {
    if (closed) return;
    if (bot.handled_next != bot.saved_next && !save(bot, {bot.handled_next, bot.delivered_through})) {
      return wait(bot, PollState::stalled, "cannot save update offsets", bot.backoff.next_backoff());
    }
    poll(bot);
  }

  /// False when the sink could not save, or the poller is destroyed (the sink may be gone too).
  bool save(Bot& bot, UpdateOffsets offsets) {
    if (options.offsets) {
      bool saved = false;
      if (!open.run_if_open([&] { saved = options.offsets->save(bot.status.token_id, offsets); }) || !saved) return false;
    }
    bot.saved_next = offsets.next_offset;
    update_status(bot, [&](BotPollStatus& s) { s.next_offset = offsets.next_offset; });
    return true;
  }

  void wait(Bot& bot, PollState state, const std::string& description, Duration pause) {
    if (pause < Duration::zero()) pause = Duration::zero();
    const auto at = SteadyClock{}.now() + pause;
    set_state(bot, state, description, at);
    bot.timer.expires_after(pause);
    bot.timer.async_wait(
        boost::asio::bind_executor(strand, [self = shared_from_this(), &bot](boost::system::error_code ec) {
          if (ec || self->closed) return;
          self->update_status(bot, [](BotPollStatus& s) { s.retry_at.reset(); });
          self->resume(bot);
        }));
  }

  // ---- status ---------------------------------------------------------------

  template <class Change>
  void update_status(Bot& bot, Change change) {
    std::lock_guard lock(status_mutex);
    change(bot.status);
  }

  void set_state(Bot& bot, PollState state, std::string description,
                 std::optional<SteadyClock::time_point> retry_at = std::nullopt) {
    BotPollStatus copy;
    bool changed = false;
    {
      std::lock_guard lock(status_mutex);
      changed = bot.status.state != state || bot.status.description != description;
      bot.status.state = state;
      bot.status.description = std::move(description);
      bot.status.retry_at = retry_at;
      copy = bot.status;
    }
    if (!changed || !options.on_state) return;
    std::lock_guard lock(callback_mutex);
    if (!closing) options.on_state(copy);
  }

  // ---- close ----------------------------------------------------------------

  /// On the strand: after this no callback starts.
  void close_on_strand() {
    open.close();
    closed = true;
    closing = true;
    for (auto& [id, bot] : by_id) {
      bot->timer.cancel();
      std::lock_guard lock(status_mutex);
      bot->status.state = PollState::closed;
      bot->status.retry_at.reset();
    }
    channel.close();
  }

  BotPool& bots;
  boost::asio::any_io_executor io;
  UpdatePollerOptions options;
  boost::asio::strand<boost::asio::any_io_executor> strand;
  Channel channel;
  std::map<std::string, std::unique_ptr<Bot>, std::less<>> by_id;
  bool started = false;  // under start_mutex
  std::mutex start_mutex;
  bool closed = false;               // strand only
  std::atomic<bool> closing{false};  // set by close and the destructor, read before every callback
  mutable std::mutex status_mutex;
  std::recursive_mutex callback_mutex;  // held while a user callback runs; the destructor waits on it
  // The BotPool and the sink are touched only through it: the destructor closes
  // it, so strand work queued before the close touches neither (they may be
  // destroyed right after the poller). User callbacks run outside it.
  async::detail::OpenLatch open;
};

UpdatePoller::UpdatePoller(BotPool& bots, UpdatePollerOptions options) {
  if (options.limit < 1 || options.limit > 100) throw Error(fmt::format("UpdatePoller: limit {} is not 1..100", options.limit));
  if (options.timeout < std::chrono::seconds(0) || options.timeout > std::chrono::seconds(50)) {
    throw Error(fmt::format("UpdatePoller: timeout {}s is not 0..50", options.timeout.count()));
  }
  std::vector<std::string> ids = options.token_ids;
  if (ids.empty()) {
    for (const auto& record : bots.snapshot()) ids.push_back(record.id);
  }
  if (ids.empty()) throw Error("UpdatePoller: no bots to poll");
  const auto capacity = ids.size() * static_cast<std::size_t>(options.limit);
  impl_ = std::make_shared<Impl>(bots, std::move(options), capacity);
  for (const auto& id : ids) {
    if (!bots.pool().snapshot(id)) throw Error(fmt::format("UpdatePoller: the pool has no token {}", id));
    auto bot = std::make_unique<Impl::Bot>(impl_->strand, impl_->options);
    bot->status.token_id = id;
    if (impl_->options.offsets) {
      if (const auto saved = impl_->options.offsets->find(id)) {
        bot->handled_next = bot->saved_next = saved->next_offset;
        bot->delivered_through = bot->redelivery_through = saved->delivered_through;
        bot->status.next_offset = saved->next_offset;
      }
    }
    if (!impl_->by_id.emplace(id, std::move(bot)).second) throw Error(fmt::format("UpdatePoller: token {} twice", id));
  }
}

UpdatePoller::~UpdatePoller() {
  {
    // Waits for a callback running on another thread; from inside one, returns at once.
    std::lock_guard lock(impl_->callback_mutex);
    impl_->closing = true;
  }
  // Waits for a save or a getUpdates being started on the strand right now; none starts after this.
  impl_->open.close();
  boost::asio::post(impl_->strand, [impl = impl_] { impl->close_on_strand(); });
}

void UpdatePoller::start() {
  {
    std::lock_guard lock(impl_->start_mutex);
    if (std::exchange(impl_->started, true)) throw Error("UpdatePoller: start() called twice");
  }
  boost::asio::post(impl_->strand, [impl = impl_] {
    for (auto& [id, bot] : impl->by_id) impl->poll(*bot);
  });
}

UpdatePoller::Channel& UpdatePoller::channel() noexcept { return impl_->channel; }

void UpdatePoller::acknowledge(const Update& update) {
  boost::asio::post(impl_->strand, [impl = impl_, token_id = update.token_id, update_id = update.update_id] {
    const auto it = impl->by_id.find(token_id);
    if (it != impl->by_id.end()) impl->acknowledged(*it->second, update_id);
  });
}

void UpdatePoller::start_close(boost::asio::any_completion_handler<CloseSignature> handler) {
  boost::asio::post(impl_->strand, [impl = impl_, handler = std::move(handler)]() mutable {
    impl->close_on_strand();
    async::detail::post_completion(impl->io, std::move(handler), std::error_code{});
  });
}

std::vector<BotPollStatus> UpdatePoller::status() const {
  std::lock_guard lock(impl_->status_mutex);
  std::vector<BotPollStatus> all;
  for (const auto& [id, bot] : impl_->by_id) all.push_back(bot->status);
  return all;
}

}  // namespace floodgate::telegram
