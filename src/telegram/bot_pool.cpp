#include "floodgate/telegram/bot_pool.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "floodgate/async/detail/associations.hpp"
#include "floodgate/async/detail/dispatch_completion.hpp"
#include "floodgate/async/detail/open_latch.hpp"
#include "floodgate/async/detail/post_completion.hpp"
#include "floodgate/async/retry_executor.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/log.hpp"

namespace floodgate::telegram {

namespace {

using TimePoint = SteadyClock::time_point;
using Duration = SteadyClock::duration;

/// The chat a call is addressed to: its limits and scoped cooldowns apply.
std::optional<std::int64_t> chat_of(const BotPool::Call& call) {
  if (const auto* params = std::get_if<nlohmann::json>(&call.body)) {
    const auto it = params->find("chat_id");
    if (it == params->end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
  }
  if (const auto* media = std::get_if<SendMediaParams>(&call.body)) return media->chat_id;
  return std::get<SendMediaGroupParams>(call.body).chat_id;
}

/// Bot API method names are case-insensitive.
bool method_starts_with(std::string_view method, std::string_view lowercase_prefix) {
  return method.size() >= lowercase_prefix.size() &&
         std::equal(lowercase_prefix.begin(), lowercase_prefix.end(), method.begin(),
                    [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
}

/// Whether repeating `method` after a lost answer is harmless: reads, edits,
/// deletes and settings are; anything that creates a message (send*, copy*,
/// forward*) or an unknown method is not.
bool is_idempotent(std::string_view method) {
  for (std::string_view prefix : {"get", "edit", "delete", "set", "answer", "pin", "unpin", "sendchataction"}) {
    if (method_starts_with(method, prefix)) return true;
  }
  return false;
}

/// A 400-class refusal whose description has `words` in it.
bool rejected_saying(const Outcome<nlohmann::json>& outcome, std::string_view words) {
  return outcome.kind() == OutcomeKind::rejected && outcome.description().find(words) != std::string::npos;
}

/// Telegram refuses an edit that changes nothing; for the caller (and for an
/// edit repeated after a lost answer) the message shows what was asked.
bool is_not_modified(const Outcome<nlohmann::json>& outcome) {
  return rejected_saying(outcome, "message is not modified");
}

/// A delete repeated after a lost answer finds the message gone: the lost
/// answer's request deleted it, which is what the caller asked for. (On a first
/// attempt the same words are a real error: there was no such message.)
bool is_already_deleted(const Outcome<nlohmann::json>& outcome) {
  return rejected_saying(outcome, "message to delete not found");
}

/// An answer to a query (answerCallbackQuery, answerInlineQuery, …) repeated
/// after a lost answer is refused alike whether the lost request answered the
/// query or the query expired meanwhile ("query is too old and response
/// timeout expired or query ID is invalid"): nobody can tell which, so the
/// call ends with outcome_unknown, not as a plain failure. (On a first attempt
/// the same words are a real error.)
bool is_query_gone(const Outcome<nlohmann::json>& outcome) {
  return rejected_saying(outcome, "query ID is invalid");
}

/// Telegram's 403s about one bot rather than the chat: another bot may still reach it.
bool is_unreachable_for_this_bot(const Outcome<nlohmann::json>& outcome) {
  for (std::string_view words : {"bot was blocked by the user", "bot can't initiate conversation",
                                 "bot is not a member", "bot was kicked"}) {
    if (rejected_saying(outcome, words)) return true;
  }
  return false;
}

/// The endings of a call bound to a chat's token after which it moves to another token.
bool moves_to_another_token(std::error_code ec) {
  return ec == errc::all_credentials_cooling || ec == errc::all_credentials_disabled || ec == errc::auth_failed ||
         ec == errc::unknown_credential;  // removed from pool() meanwhile
}

/// Points `call` at `chat` (a group that became a supergroup moved there).
void readdress(BotPool::Call& call, std::int64_t chat) {
  if (auto* params = std::get_if<nlohmann::json>(&call.body)) {
    (*params)["chat_id"] = chat;
  } else if (auto* media = std::get_if<SendMediaParams>(&call.body)) {
    media->chat_id = chat;
  } else {
    std::get<SendMediaGroupParams>(call.body).chat_id = chat;
  }
}

std::optional<std::int64_t> parse_chat(std::string_view destination) {
  std::int64_t chat = 0;
  const auto [end, ec] = std::from_chars(destination.data(), destination.data() + destination.size(), chat);
  if (ec != std::errc() || end != destination.data() + destination.size()) return std::nullopt;
  return chat;
}

}  // namespace

std::optional<SentMessage> BotPoolResult::sent() const {
  const auto message = Message::from_json(result);
  if (!message) return std::nullopt;
  return SentMessage{token_id, message->chat_id, message->message_id};
}

struct BotPool::Impl : std::enable_shared_from_this<Impl> {
  struct Token {
    BotApiClient client;
    std::mutex mutex;  // guards limits and recent_chat_floods
    LimitSet<std::int64_t> limits;
    /// Chat-scoped 429s of the last FloodScope::window: (when, chat).
    std::deque<std::pair<TimePoint, std::int64_t>> recent_chat_floods;
  };

  Impl(boost::asio::any_io_executor executor, net::HttpsClient& http, std::vector<Credential<BotToken>> credentials,
       BotPoolOptions pool_options)
      : io(std::move(executor)),
        options(std::move(pool_options)),
        pool(options.pool),
        retry(io, pool, options.retry) {
    for (auto& credential : credentials) {
      auto token = std::unique_ptr<Token>(new Token{BotApiClient(http, options.endpoint, credential.payload.token), {},
                                                    telegram_bot_limits(SteadyClock{}, options.limits)});
      const std::string id = credential.id;
      pool.add(std::move(credential));  // throws on a duplicate id before the token is kept
      tokens.emplace(id, std::move(token));
    }
  }

  /// The token's client and limits; null for a credential added to `pool()` directly, which has none.
  Token* token(std::string_view id) {
    const auto it = tokens.find(id);
    return it == tokens.end() ? nullptr : it->second.get();
  }

  /// How long the lease's token must wait before it may send (zero: it may
  /// send now, and the send is counted by its limits). Calls addressed to no
  /// chat pass freely. The retry executor's gate.
  ///
  /// The local limits are asked first and the shared ones only when the local
  /// ones admit: a shared answer of zero spends a reservation that other
  /// processes already count as sent, so nothing may hold the send back after
  /// it (a local refusal after it would send late, outside the window Redis
  /// accounted it in, and spend a second reservation on the retry).
  ///
  /// The shared limits are the program's (a Redis client behind them, say)
  /// and need not outlive the BotPool object: once ~BotPool has run the gate
  /// asks nothing and admits, and issue() then ends the call with shut_down.
  Duration gate(const Pool::Lease& lease) {
    Duration pause = Duration::zero();
    open.run_if_open([&] { pause = gate_open(lease); });
    return pause;
  }

  Duration gate_open(const Pool::Lease& lease) {
    const auto chat = parse_chat(lease.destination());
    Token* t = chat ? token(lease.id()) : nullptr;
    if (!t) return Duration::zero();  // no chat, or no client (issue() reports that)
    {
      std::lock_guard lock(t->mutex);
      const auto decision = t->limits.try_acquire(*chat);
      // A limit no waiting satisfies (a zero rate) parks the token for an hour rather than forever.
      if (!decision) return std::min<Duration>(decision.retry_after, std::chrono::hours(1));
    }
    if (!options.shared_limits) return Duration::zero();
    const auto shared = options.shared_limits(lease.id(), *chat);
    if (shared <= Duration::zero()) return Duration::zero();
    std::lock_guard lock(t->mutex);
    t->limits.refund(*chat);  // not sent now: the local limits get the message back
    return std::min<Duration>(shared, std::chrono::hours(1));
  }

  /// A chat-scoped 429 of token `id`, seen in the light of the token's other
  /// recent ones: 429s on `FloodScope::chats` different chats within the
  /// window are the token's overall limit, so this one cools the whole token.
  Outcome<nlohmann::json> widen_flood_scope(std::string_view id, std::int64_t chat, Outcome<nlohmann::json> outcome) {
    const auto& scope = options.flood_scope;
    Token* t = token(id);
    if (!t || scope.chats <= 0 || outcome.kind() != OutcomeKind::flood_wait ||
        outcome.scope() != CooldownScope::destination) {
      return outcome;
    }
    const auto now = SteadyClock{}.now();
    std::lock_guard lock(t->mutex);
    auto& recent = t->recent_chat_floods;
    while (!recent.empty() && now - recent.front().first > scope.window) recent.pop_front();
    recent.emplace_back(now, chat);
    std::vector<std::int64_t> chats;
    for (const auto& [when, flooded] : recent) {
      if (std::find(chats.begin(), chats.end(), flooded) == chats.end()) chats.push_back(flooded);
    }
    if (static_cast<int>(chats.size()) < scope.chats) return outcome;
    recent.clear();  // the token-wide cooldown covers them all
    log(LogLevel::debug, "bot token {}: 429s in {} chats within {} ms, taken as its overall limit", id, chats.size(),
        scope.window.count());
    return Outcome<nlohmann::json>::flood_wait(outcome.wait(), CooldownScope::credential, outcome.description());
  }

  /// Sends `call` with token `id`; `handler(BotApiResponse)` runs once.
  template <class Handler>
  void issue(std::string_view id, const Call& call, Handler handler) {
    Token* t = token(id);
    if (!t) {
      BotApiResponse unusable;
      unusable.error = BotApiError{401, "credential added to the pool without a BotPool client", {}, {}};
      return handler(std::move(unusable));
    }
    auto on_response = [handler = std::move(handler)](std::error_code, BotApiResponse response) mutable {
      handler(std::move(response));
    };
    // Calls outlive the BotPool object (a retry may be waiting on a timer),
    // but its HTTPS client need not: once ~BotPool has run, nothing more is
    // sent, and the call ends with shut_down (a rejection: no token blamed).
    const bool started = open.run_if_open([&] {
      if (const auto* params = std::get_if<nlohmann::json>(&call.body)) {
        t->client.async_call(call.method, *params, std::move(on_response));
      } else if (const auto* media = std::get_if<SendMediaParams>(&call.body)) {
        t->client.async_send_media(*media, std::move(on_response));
      } else {
        t->client.async_send_media_group(std::get<SendMediaGroupParams>(call.body), std::move(on_response));
      }
    });
    if (started) return;
    BotApiResponse gone;
    gone.transport = make_error_code(errc::shut_down);
    on_response({}, std::move(gone));
  }

  /// Sends `call` with token `id`, following a group's move to a supergroup
  /// once: a 400 with migrate_to_chat_id sends the call again to the new chat
  /// (same token, same attempt), and `migrated` keeps the new id for the
  /// call's later attempts and its result. `call` outlives the attempt (the
  /// retry executor holds it), so only the rare re-addressed call is copied.
  template <class Handler>
  void issue_following_migration(std::string id, const Call& call,
                                 const std::shared_ptr<std::atomic<std::int64_t>>& migrated,
                                 Handler handler) {
    if (const auto chat = migrated->load()) return issue_readdressed(id, call, chat, std::move(handler));
    issue(id, call, [this, self = shared_from_this(), id, &call, migrated,
                     handler = std::move(handler)](BotApiResponse response) mutable {
      const auto to = response.error ? response.error->migrate_to_chat_id : std::nullopt;
      if (!to || *to == 0) return handler(std::move(response));
      log(LogLevel::info, "chat moved to {}; sending there", *to);
      migrated->store(*to);
      issue_readdressed(id, call, *to, std::move(handler));
    });
  }

  template <class Handler>
  void issue_readdressed(std::string_view id, const Call& call, std::int64_t chat, Handler handler) {
    Call moved = call;
    readdress(moved, chat);
    issue(id, moved, std::move(handler));
  }

  /// Logs what an outcome does to the token (the pool's lease records it). A
  /// flood wait is the pool doing its job: debug. A token rejected for good
  /// needs its operator: warning.
  static void log_outcome(std::string_view id, std::optional<std::int64_t> chat, const Outcome<nlohmann::json>& outcome) {
    const auto traits = outcome.traits();
    if (traits.disables) {
      log(LogLevel::warning, "bot token {} rejected ({}); disabled", id, outcome.description());
    } else if (traits.cools) {
      const auto seconds = std::chrono::ceil<std::chrono::seconds>(outcome.wait()).count();
      if (outcome.scope() == CooldownScope::destination && chat) {
        log(LogLevel::debug, "bot token {} flood wait {}s in chat {}", id, seconds, *chat);
      } else {
        log(LogLevel::debug, "bot token {} flood wait {}s", id, seconds);
      }
    }
  }

  // ---- chats: queues, affinity, reachability (ChatRouting) ----------------

  using Handler = boost::asio::any_completion_handler<Signature>;
  struct Queued {
    Call call;
    Handler handler;
    std::uint64_t serial = 0;  // names it for a cancellation while it waits in its lane
  };

  /// Whether a chat's head call has a request on the wire. A head cancelled
  /// then ends for its caller at once, but the chat's next call waits for the
  /// answer: a call may not overtake one the server may still apply.
  struct Sending {
    std::mutex mutex;
    bool on_wire = false;
    std::function<void()> when_answered;

    void begin() {
      std::lock_guard lock(mutex);
      on_wire = true;
    }
    void end() {
      std::function<void()> next;
      {
        std::lock_guard lock(mutex);
        on_wire = false;
        next = std::move(when_answered);
        when_answered = nullptr;
      }
      if (next) next();
    }
    /// Runs `next` now, or once the request on the wire is answered (only then is it stored).
    template <class Next>
    void then(Next next) {
      {
        std::lock_guard lock(mutex);
        if (on_wire) {
          when_answered = std::move(next);
          return;
        }
      }
      next();
    }
  };
  /// A chat's call while it is the head: the call, its caller, and its request on the wire.
  struct Head {
    explicit Head(Queued head) : queued(std::move(head)) {}
    Queued queued;
    Sending sending;
  };
  /// One chat: its queue, its token, and the tokens that cannot reach it.
  struct Lane {
    std::deque<Queued> waiting;
    bool running = false;  // the head call is out; the next starts when it ends
    std::string token;     // affinity: the token that last delivered here
    std::map<std::string, TimePoint, std::less<>> unreachable;  // token -> until
    std::string unreachable_reason;                             // Telegram's words, for the caller
    TimePoint idle_since{};
    std::list<std::int64_t>::iterator recency;
  };

  void enqueue(std::int64_t chat, Queued queued) {
    bool start_now = false;
    auto slot = boost::asio::get_associated_cancellation_slot(queued.handler);
    {
      std::lock_guard lock(lanes_mutex);
      queued.serial = ++last_serial;
      if (slot.is_connected()) {
        // Waiting in the lane, nothing is sent yet: any cancellation type ends it
        // at once. Once it is the head, run() takes the slot over.
        slot.assign([weak = weak_from_this(), chat, serial = queued.serial](boost::asio::cancellation_type type) {
          if (type == boost::asio::cancellation_type::none) return;
          if (const auto self = weak.lock()) self->cancel_queued(chat, serial);
        });
      }
      Lane& lane = lane_locked(chat);
      lane.waiting.push_back(std::move(queued));
      start_now = !std::exchange(lane.running, true);
    }
    if (start_now) run_head(chat);
  }

  /// The caller cancelled a call still waiting in its chat's lane: it ends now, unsent.
  void cancel_queued(std::int64_t chat, std::uint64_t serial) {
    std::optional<Handler> cancelled;
    {
      std::lock_guard lock(lanes_mutex);
      const auto lane = lanes.find(chat);
      if (lane == lanes.end()) return;
      auto& waiting = lane->second.waiting;
      const auto it = std::find_if(waiting.begin(), waiting.end(), [&](const Queued& q) { return q.serial == serial; });
      if (it == waiting.end()) return;  // already the head: run() answers the slot now
      cancelled.emplace(std::move(it->handler));
      waiting.erase(it);
    }
    async::detail::post_completion(io, std::move(*cancelled), make_error_code(errc::cancelled), BotPoolResult{});
  }

  /// The chat's lane, created if needed and made the most recent; forgets idle chats.
  Lane& lane_locked(std::int64_t chat) {
    const auto now = SteadyClock{}.now();
    const auto& routing = options.routing;
    // Forget from the least recent end: chats idle too long, or beyond max_chats.
    // A lane still running is moved to the recent end; a few per call keep this cheap.
    for (int looked = 0; looked < 8 && !lane_recency.empty(); ++looked) {
      auto oldest = lanes.find(lane_recency.front());
      Lane& lane = oldest->second;
      if (lane.running || oldest->first == chat) {  // in use, or about to be
        lane_recency.splice(lane_recency.end(), lane_recency, lane.recency);
        continue;
      }
      if (now - lane.idle_since < routing.idle && lanes.size() < std::max<std::size_t>(routing.max_chats, 1)) break;
      lane_recency.pop_front();
      lanes.erase(oldest);
    }
    auto it = lanes.find(chat);
    if (it == lanes.end()) {
      lane_recency.push_back(chat);
      it = lanes.emplace(chat, Lane{}).first;
      it->second.recency = std::prev(lane_recency.end());
    } else {
      lane_recency.splice(lane_recency.end(), lane_recency, it->second.recency);
    }
    return it->second;
  }

  /// Sends the chat's next call: through the chat's token first, then through any token that may reach it.
  void run_head(std::int64_t chat) {
    std::optional<std::string> preferred;
    std::shared_ptr<Head> head;
    bool ask_sink = false;
    {
      std::lock_guard lock(lanes_mutex);
      Lane& lane = lanes.at(chat);  // a running lane is never forgotten
      head = std::make_shared<Head>(std::move(lane.waiting.front()));
      lane.waiting.pop_front();
      ask_sink = lane.token.empty();
      if (!lane.token.empty() && !unreachable_locked(lane, lane.token)) preferred = lane.token;
    }
    if (auto* sink = options.routing.affinity_sink; sink && ask_sink) {
      // A chat this pool does not remember may have a token from before a restart, or from another process.
      // The sink need not outlive the BotPool object: once ~BotPool has run it is not asked.
      std::optional<std::string> stored;
      open.run_if_open([&] { stored = sink->find(chat); });
      if (stored && tokens.contains(*stored)) {
        std::lock_guard lock(lanes_mutex);
        Lane& lane = lanes.at(chat);
        if (lane.token.empty()) lane.token = *stored;
        if (!unreachable_locked(lane, lane.token)) preferred = lane.token;
      }
    }
    auto self = shared_from_this();
    // The caller's cancellation slot goes with every step of the head call.
    const auto slot = boost::asio::get_associated_cancellation_slot(head->queued.handler);
    // The call and its Sending stay in `head`: each run shares them rather than copying them.
    auto anywhere = [self, chat, head, slot](std::uint32_t earlier_attempts) {
      self->run(std::shared_ptr<const Call>(head, &head->queued.call), std::nullopt, true,
                boost::asio::bind_cancellation_slot(
                    slot, [self, chat, head, earlier_attempts](std::error_code ec, BotPoolResult result) mutable {
                      result.attempts += earlier_attempts;
                      self->finish_head(chat, ec, std::move(result), std::move(head->queued.handler), head->sending);
                    }),
                std::shared_ptr<Sending>(head, &head->sending));
    };
    if (!preferred) return anywhere(0);
    auto through_chat_token = [self, chat, head, preferred, anywhere, slot] {
      self->run(std::shared_ptr<const Call>(head, &head->queued.call), preferred, true,
                boost::asio::bind_cancellation_slot(
                    slot, [self, chat, head, anywhere](std::error_code ec, BotPoolResult result) mutable {
                      if (moves_to_another_token(ec)) return anywhere(result.attempts);
                      self->finish_head(chat, ec, std::move(result), std::move(head->queued.handler), head->sending);
                    }),
                std::shared_ptr<Sending>(head, &head->sending));
    };
    // The chat's own limit on its token is waited out here, for this chat alone: the
    // retry executor's gate would pause the whole token, holding up its other chats.
    const auto pace = chat_pace(*preferred, chat);
    if (pace <= Duration::zero() || pace > options.retry.max_wait) return through_chat_token();
    auto timer = std::make_shared<boost::asio::steady_timer>(io, pace);
    if (auto waiting_slot = slot; waiting_slot.is_connected()) {
      // Nothing is sent while the chat's pace is waited out: any cancellation type ends the call.
      waiting_slot.assign([timer](boost::asio::cancellation_type type) {
        if (type != boost::asio::cancellation_type::none) timer->cancel();
      });
    }
    timer->async_wait([self, chat, head, timer, through_chat_token](boost::system::error_code ec) {
      if (ec == boost::asio::error::operation_aborted) {
        return self->finish_head(chat, make_error_code(errc::cancelled), BotPoolResult{},
                                 std::move(head->queued.handler), head->sending);
      }
      through_chat_token();
    });
  }

  /// How long token `id` must wait before its per-chat limit admits one more
  /// call to `chat` (zero: it would admit now, or only a token-wide limit refuses).
  Duration chat_pace(std::string_view id, std::int64_t chat) {
    Token* t = token(id);
    if (!t) return Duration::zero();
    std::lock_guard lock(t->mutex);
    const auto decision = t->limits.try_acquire(chat);
    if (decision) {
      t->limits.refund(chat);  // a look only: the gate takes it when the call is sent
      return Duration::zero();
    }
    return decision.per_key ? std::min<Duration>(decision.retry_after, std::chrono::hours(1)) : Duration::zero();
  }

  /// The head call of `chat` ended: end the calls that may not overtake a
  /// failure, start the next, and tell its caller. Called only from the
  /// completion of the head's run or pacing timer, never inside the caller's
  /// initiating call: the caller's handler may run at once, on its executor.
  void finish_head(std::int64_t chat, std::error_code ec, BotPoolResult result, Handler handler, Sending& sending) {
    std::vector<Queued> ended_behind;
    bool token_changed = false;
    {
      std::lock_guard lock(lanes_mutex);
      Lane& lane = lanes.at(chat);
      if (ec == errc::all_credentials_cooling && no_token_reaches_locked(lane)) {
        ec = make_error_code(errc::bad_request);
        result.description = fmt::format("no bot in the pool can reach chat {}: {}", chat, lane.unreachable_reason);
        result.earliest.reset();
      }
      if (!ec && lane.token != result.token_id) {
        lane.token = result.token_id;
        token_changed = true;
      }
      if (ec && ec != errc::cancelled) {  // the caller's cancellation is no failure for the calls behind
        std::deque<Queued> kept;
        for (auto& queued : lane.waiting) {
          if (queued.call.may_overtake) {
            kept.push_back(std::move(queued));
          } else {
            ended_behind.push_back(std::move(queued));
          }
        }
        lane.waiting = std::move(kept);
      }
    }
    if (auto* sink = options.routing.affinity_sink; sink && token_changed) {
      // A send on the wire may succeed after ~BotPool, when the sink may be gone: not told then.
      open.run_if_open([&] { sink->set(chat, result.token_id); });
    }
    std::string behind_description;  // formatted before `result` moves on, and only when needed
    if (!ended_behind.empty()) {
      behind_description = fmt::format("an earlier call to chat {} failed: {}", chat, result.description);
    }
    for (auto& queued : ended_behind) {
      BotPoolResult behind;
      behind.description = behind_description;
      async::detail::post_completion(io, std::move(queued.handler), ec, std::move(behind));
    }
    sending.then([self = shared_from_this(), chat] { self->next_in_lane(chat); });
    async::detail::dispatch_completion(io, std::move(handler), ec, std::move(result));
  }

  /// Starts the chat's next call, or leaves the lane idle.
  void next_in_lane(std::int64_t chat) {
    {
      std::lock_guard lock(lanes_mutex);
      Lane& lane = lanes.at(chat);
      if (lane.waiting.empty()) {
        lane.running = false;
        lane.idle_since = SteadyClock{}.now();
        return;
      }
    }
    run_head(chat);
  }

  /// A 403 about token `id` in `chat`: that pair is unreachable for a while.
  void mark_unreachable(std::string_view id, std::int64_t chat, const std::string& reason) {
    std::lock_guard lock(lanes_mutex);
    const auto it = lanes.find(chat);
    if (it == lanes.end()) return;
    it->second.unreachable.insert_or_assign(std::string(id), SteadyClock{}.now() + options.routing.unreachable_for);
    it->second.unreachable_reason = reason;
  }

  bool unreachable_locked(const Lane& lane, std::string_view id) const {
    const auto it = lane.unreachable.find(id);
    return it != lane.unreachable.end() && it->second > SteadyClock{}.now();
  }

  /// Every token of the pool is unreachable for this chat or disabled, and one at least is unreachable.
  bool no_token_reaches_locked(const Lane& lane) const {
    bool any_unreachable = false;
    for (const auto& [id, t] : tokens) {
      if (unreachable_locked(lane, id)) {
        any_unreachable = true;
        continue;
      }
      const auto record = pool.snapshot(id);
      if (!record || record->state != CredentialState::disabled) return false;
    }
    return any_unreachable;
  }

  /// What one call's attempts share: where its chat moved, and whether an
  /// earlier attempt's request may have been applied (its answer was lost).
  struct Attempts {
    std::atomic<std::int64_t> migrated{0};  // 0: the chat has not moved
    std::atomic<bool> maybe_applied{false};
  };

  /// The retry executor's operation for `call`: one attempt with the lease's token.
  auto attempt_op(std::shared_ptr<const Call> call, std::shared_ptr<Attempts> attempts, bool reroute_unreachable,
                  std::shared_ptr<Sending> sending);

  /// One call through the retry executor: bound to `owner`, or any usable token.
  /// `reroute_unreachable`: a 403 about this bot marks the pair unreachable and moves the call.
  /// `sending`: told when a request goes on the wire and when it is answered (a chat's head call).
  /// A template on the handler, so that a chat's head call needs no second type-erased handler.
  template <class RunHandler>
  void run(std::shared_ptr<const Call> call, std::optional<std::string> owner, bool reroute_unreachable,
           RunHandler handler, std::shared_ptr<Sending> sending = nullptr);

  boost::asio::any_io_executor io;
  BotPoolOptions options;
  Pool pool;
  async::RetryExecutor<Pool> retry;
  std::map<std::string, std::unique_ptr<Token>, std::less<>> tokens;  // fixed after construction

  async::detail::OpenLatch open;  // every request starts through it; ~BotPool closes it

  std::mutex lanes_mutex;  // guards lanes and lane_recency
  std::unordered_map<std::int64_t, Lane> lanes;
  std::list<std::int64_t> lane_recency;  // least recently used first
  std::uint64_t last_serial = 0;         // of Queued calls
};

BotPool::BotPool(boost::asio::any_io_executor executor, net::HttpsClient& http,
                 std::vector<Credential<BotToken>> tokens, BotPoolOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), http, std::move(tokens), std::move(options))) {
  impl_->retry.set_gate([impl = impl_.get()](const Pool::Lease& lease) { return impl->gate(lease); });
}

BotPool::~BotPool() {
  // Waits for a request being started, a shared-limits ask or a ChatAffinitySink
  // call in progress; none starts after this.
  impl_->open.close();
  // A reply still on the wire may report a cooldown or a disable later: the
  // program's CooldownSink (pool().persist_to) need not outlive this object.
  // Waits for a write in progress; none starts after this.
  impl_->pool.stop_persisting();
}

BotPool::Pool& BotPool::pool() noexcept { return impl_->pool; }

std::vector<HealthSnapshot> BotPool::snapshot() const { return impl_->pool.snapshot(); }

boost::asio::any_io_executor BotPool::executor() const noexcept { return impl_->io; }

std::optional<std::string> BotPool::chat_token(std::int64_t chat) const {
  std::lock_guard lock(impl_->lanes_mutex);
  const auto it = impl_->lanes.find(chat);
  if (it == impl_->lanes.end() || it->second.token.empty()) return std::nullopt;
  return it->second.token;
}

void BotPool::start(const std::shared_ptr<Impl>& impl, Call call, std::optional<std::string> owner,
                    boost::asio::any_completion_handler<Signature> handler) {
  if (owner && !impl->tokens.contains(*owner)) {
    return async::detail::post_completion(impl->io, std::move(handler),
                                                     make_error_code(errc::unknown_credential), BotPoolResult{});
  }
  if (!owner && method_starts_with(call.method, "getfile")) {
    BotPoolResult refused;
    refused.description =
        "getFile is bound to the bot that owns the file id: use async_get_file(token_id, file_id)";
    return async::detail::post_completion(impl->io, std::move(handler), make_error_code(errc::bad_request),
                                          std::move(refused));
  }
  if (const auto* media = std::get_if<SendMediaParams>(&call.body);
      !owner && media && std::holds_alternative<FileId>(media->content)) {
    BotPoolResult refused;
    refused.description =
        "a file id belongs to the bot that received the file: use async_send_media_as(token_id, params)";
    return async::detail::post_completion(impl->io, std::move(handler), make_error_code(errc::bad_request),
                                          std::move(refused));
  }
  if (const auto* group = std::get_if<SendMediaGroupParams>(&call.body)) {
    BotPoolResult refused;
    refused.description = group->problem();
    if (refused.description.empty() && !owner && group->uses_file_ids()) {
      refused.description =
          "a file id belongs to the bot that received the file: use async_send_media_group_as(token_id, params)";
    }
    if (!refused.description.empty()) {
      return async::detail::post_completion(impl->io, std::move(handler), make_error_code(errc::bad_request),
                                            std::move(refused));
    }
  }
  const auto chat = chat_of(call);
  if (!owner && chat && impl->options.routing.enabled) {
    return impl->enqueue(*chat, Impl::Queued{std::move(call), std::move(handler)});
  }
  impl->run(std::make_shared<const Call>(std::move(call)), std::move(owner), false, std::move(handler));
}

auto BotPool::Impl::attempt_op(std::shared_ptr<const Call> call, std::shared_ptr<Attempts> attempts,
                               bool reroute_unreachable, std::shared_ptr<Sending> sending) {
  const auto chat = chat_of(*call);
  const bool edit = method_starts_with(call->method, "edit");
  const bool deletion = method_starts_with(call->method, "delete");
  const bool answer = method_starts_with(call->method, "answer");
  return async::async_attempt<nlohmann::json>(
      [impl = shared_from_this(), call = std::move(call), chat, edit, deletion, answer, reroute_unreachable,
       attempts = std::move(attempts), sending = std::move(sending)](const Pool::Lease& lease, auto done) {
        if (sending) sending->begin();
        impl->issue_following_migration(
            lease.id(), *call, std::shared_ptr<std::atomic<std::int64_t>>(attempts, &attempts->migrated),
            [impl, chat, edit, deletion, answer, reroute_unreachable, attempts, id = lease.id(), sending,
             done = std::move(done)](BotApiResponse response) mutable {
              auto outcome = classify(std::move(response), chat.has_value());
              if (edit && is_not_modified(outcome)) outcome = Outcome<nlohmann::json>::success(true);
              if (deletion && attempts->maybe_applied.load() && is_already_deleted(outcome)) {
                outcome = Outcome<nlohmann::json>::success(true);
              }
              if (answer && attempts->maybe_applied.load() && is_query_gone(outcome)) {
                outcome = Outcome<nlohmann::json>::rejected(outcome.description(), make_error_code(errc::outcome_unknown));
              }
              if (outcome.traits().may_be_applied) attempts->maybe_applied.store(true);
              if (chat) outcome = impl->widen_flood_scope(id, *chat, std::move(outcome));
              if (chat && reroute_unreachable && is_unreachable_for_this_bot(outcome)) {
                // Kept from this chat like a cooldown (so the pool persists it), and the call moves.
                log(LogLevel::info, "bot token {} cannot reach chat {} ({})", id, *chat, outcome.description());
                impl->mark_unreachable(id, *chat, outcome.description());
                outcome = Outcome<nlohmann::json>::flood_wait(impl->options.routing.unreachable_for,
                                                              CooldownScope::destination, outcome.description());
              }
              Impl::log_outcome(id, chat, outcome);
              done(std::move(outcome));  // reported to the pool even when the caller cancelled meanwhile
              if (sending) sending->end();
            });
      });
}

template <class RunHandler>
void BotPool::Impl::run(std::shared_ptr<const Call> call, std::optional<std::string> owner, bool reroute_unreachable,
                        RunHandler handler, std::shared_ptr<Sending> sending) {
  const auto chat = chat_of(*call);
  const bool idempotent = call->repeat_if_maybe_applied || is_idempotent(call->method);
  auto attempts = std::make_shared<Attempts>();
  auto attempt = attempt_op(std::move(call), attempts, reroute_unreachable, std::move(sending));
  // The retry executor completes on the executor bound here, never inside
  // async_run, so the result can go straight to the handler, without a second
  // post; and it honours the caller's cancellation slot, bound here too.
  const auto associated = async::detail::associations_of(handler, io);
  auto finish = associated.wrap(
      [handler = std::move(handler), attempts](std::error_code ec,
                                               async::RunResult<nlohmann::json, TimePoint> run) mutable {
        BotPoolResult result;
        if (const auto moved_to = attempts->migrated.load()) result.migrated_to_chat_id = moved_to;
        if (run.value) result.result = std::move(*run.value);
        result.token_id = std::move(run.credential);
        result.description = std::move(run.description);
        result.earliest = run.earliest;
        result.attempts = run.attempts;
        std::move(handler)(ec, std::move(result));
      });
  async::RetryExecutor<Pool>::RunOptions run_options{.destination = chat ? std::to_string(*chat) : std::string(),
                                                     .idempotent = idempotent,
                                                     .credential = std::move(owner)};
  retry.async_run(std::move(attempt), std::move(run_options), std::move(finish));
}

}  // namespace floodgate::telegram

namespace floodgate::telegram {

void BotPool::start_download(const std::string& token_id, const std::string& file_path, std::filesystem::path destination,
                             boost::asio::any_completion_handler<DownloadSignature> handler) {
  Impl::Token* t = impl_->token(token_id);
  const auto record = impl_->pool.snapshot(token_id);
  if (!t || !record) {
    return async::detail::post_completion(impl_->io, std::move(handler), make_error_code(errc::unknown_credential),
                                          std::uint64_t{0});
  }
  if (record->state == CredentialState::disabled) {
    return async::detail::post_completion(impl_->io, std::move(handler),
                                          make_error_code(errc::all_credentials_disabled), std::uint64_t{0});
  }
  const auto handler_executor = boost::asio::get_associated_executor(handler, impl_->io);
  // The executor binder keeps the handler's cancellation slot: the client's request honours it.
  t->client.async_download(file_path, std::move(destination),
                           boost::asio::bind_executor(handler_executor, std::move(handler)));
}

}  // namespace floodgate::telegram
