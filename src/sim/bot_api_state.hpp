// Private to floodgate_sim: everything the Bot API simulator knows and
// decides (bots, the per-bot world of users and groups, flood control,
// messages, files, updates), with no I/O. The network layer
// (bot_api_server.cpp) turns HTTP requests into calls here and the replies
// back into HTTP. Time is passed in, so limits follow whatever clock the
// server was given.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "floodgate/sim/bot_api_server.hpp"
#include "form_params.hpp"

namespace floodgate::sim::detail {

using Time = std::chrono::nanoseconds;

/// A getUpdates call that found nothing and may wait for up to `timeout`.
struct UpdatesPoll {
  std::string token;
  std::int64_t offset = 0;
  std::size_t limit = 100;
  std::chrono::seconds timeout{0};
  /// This poll's number for its bot: a newer waiting getUpdates (or a
  /// setWebhook) ends it with 409, as Telegram does.
  std::uint64_t generation = 0;
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  /// For 429: the seconds of the Retry-After header.
  std::int64_t retry_after = 0;
  /// An injected fault the network layer must apply to the delivery
  /// (drop_connection, truncated_response, slow_reply).
  std::optional<Fault> delivery_fault;
  /// Set instead of a body when getUpdates should wait for updates.
  std::optional<UpdatesPoll> poll;
  /// A waiting getUpdates was ended (409): the network layer wakes the waiting polls.
  bool wake_polls = false;
};

/// Requests within `rate` over a sliding window.
class SlidingWindow {
 public:
  /// How long until one more request fits (zero: it fits now).
  Time wait_needed(const Rate& rate, Time now);
  void record(Time now) { accepted_.push_back(now); }

 private:
  std::deque<Time> accepted_;
};

/// A bucket of `burst` requests refilled at `rate`.
class TokenBucket {
 public:
  /// How long until the bucket holds one request (zero: it does now).
  Time wait_needed(const Rate& rate, int burst, Time now);
  /// Takes one request out (call wait_needed at the same `now` first).
  void take() { tokens_ -= 1; }

 private:
  double tokens_ = 0;
  Time refilled_at_{};
  bool started_ = false;
};

/// A Bot API error reply: {"ok":false,"error_code":code,"description":...}.
Reply api_error(int code, std::string_view description);

class BotApiState {
 public:
  /// `now` stamps pushed updates (Telegram keeps an update for 24 h).
  BotApiState(BotApiLimits default_limits, bool open_world, std::function<Time()> now)
      : default_limits_(default_limits), open_world_(open_world), now_(std::move(now)) {}

  /// Answers one method call. `params` is null when the request's parameters
  /// could not be decoded (the call is still counted, then refused).
  Reply handle_method(const std::string& token, std::string_view method, const FormParams* params, Time now);
  Reply handle_download(const std::string& token, std::string_view file_path, Time now);
  /// Answers a getUpdates that waited; `poll` stays set if there is still
  /// nothing. A poll a newer one replaced gets 409.
  Reply poll_updates(const UpdatesPoll& poll, Time now);

  void add_token(const std::string& token);
  void revoke_token(const std::string& token);
  void set_limits(const std::string& token, const BotApiLimits& limits);
  void set_default_limits(const BotApiLimits& limits);
  void set_open_world(bool open);
  void inject(const std::string& token, const Fault& fault, int times);
  void migrate_chat(std::int64_t from_chat_id, std::int64_t to_chat_id);

  void add_user(std::int64_t user_id, std::string first_name, std::string username);
  void start_bot(const std::string& token, std::int64_t user_id);
  void block_bot(const std::string& token, std::int64_t user_id);
  void add_group(std::int64_t chat_id, SimChatType type, std::string title);
  void add_member(const std::string& token, std::int64_t chat_id);
  void kick_bot(const std::string& token, std::int64_t chat_id);
  /// Sets the bot's username and name as getMe reports them.
  void name_bot(const std::string& token, std::string username, std::string first_name);

  /// Queues `update` (setting its update_id) unless the bot's allowed_updates
  /// exclude its kind, as Telegram does; returns the update_id, 0 when not queued.
  std::int64_t push_update(const std::string& token, nlohmann::json update);
  std::int64_t push_message(const std::string& token, std::int64_t chat_id, std::int64_t from_user_id,
                            std::string text);
  std::int64_t push_callback_query(const std::string& token, std::int64_t user_id, std::string data);
  /// `token` empty: a file every bot may use.
  std::string add_file(const std::string& token, std::string bytes, std::string file_name, std::string mime_type);

  TokenStats stats(const std::string& token) const;
  std::vector<SimMessage> messages(std::int64_t chat_id) const;
  std::vector<SimMessage> messages(const std::string& token, std::int64_t chat_id) const;

 private:
  struct Bot {
    std::int64_t id = 0;
    std::string username;
    std::string first_name = "Sim Bot";
    bool revoked = false;
    std::optional<BotApiLimits> limits;
    TokenStats stats;
    std::deque<Fault> faults;
    SlidingWindow overall;
    std::map<std::int64_t, TokenBucket> per_chat;
    std::map<std::int64_t, SlidingWindow> per_group;
    Time cooldown_until{};  // the whole token was told to wait
    Time cooldown_told_at{};  // when it was told
    std::map<std::int64_t, Time> chat_cooldown_until;
    std::map<std::int64_t, Time> chat_cooldown_told_at;
    std::deque<std::pair<Time, nlohmann::json>> updates;  // (pushed at, update)
    std::int64_t next_update_id = 1;
    std::set<std::string, std::less<>> allowed_updates;  // empty: Telegram's default set
    std::uint64_t poll_generation = 0;
    std::uint64_t waiting_poll = 0;  // the generation of the getUpdates waiting now, 0: none
    std::map<std::uint64_t, std::string> ended_polls;  // waiting polls ended by a newer one: why
    std::string webhook_url;
    nlohmann::json commands = nlohmann::json::array();
    std::set<std::string, std::less<>> open_callback_queries;
  };
  struct User {
    std::string first_name = "Sim User";
    std::string username;
    std::set<std::int64_t> started;  // bot ids
    std::set<std::int64_t> blocked;
  };
  struct Group {
    SimChatType type = SimChatType::group;
    std::string title;
    std::set<std::int64_t> members;  // bot ids
    std::set<std::int64_t> kicked;
  };
  struct StoredFile {
    std::string file_id;
    std::string file_unique_id;
    std::string file_name;
    std::string mime_type;
    std::string file_path;
    std::string bytes;
    std::int64_t owner_bot_id = 0;  // 0: any bot may use it
  };
  struct Call;  // one method call being answered

  Bot* find_bot(std::string_view token);
  Bot& bot_or_throw(const std::string& token, std::string_view what);
  /// The group `chat_id`, declared with the type its id implies if it was not.
  Group& group_declared_if_new(std::int64_t chat_id);
  Reply admit(const std::string& token, std::string_view method, Bot*& bot);
  /// A 429 announcing `seconds` (an injected flood_wait), kept by the
  /// request's chat for that token, or by the token for a request without one.
  Reply announced_flood_wait(Bot& bot, std::optional<std::int64_t> chat_id, std::int64_t seconds, Time now);
  Reply execute(Bot& bot, std::string_view method, const FormParams& params, Time now);
  std::optional<Reply> check_reach(Bot& bot, std::int64_t chat_id);
  std::optional<Reply> check_flood_control(Bot& bot, std::int64_t chat_id, Time now);
  void record_send(Bot& bot, std::int64_t chat_id, Time now);
  Reply collect_updates(Bot& bot, const UpdatesPoll& poll, Time now);
  /// getUpdates' and setWebhook's `allowed_updates`, as Telegram reads it: a
  /// JSON array of update kinds; absent or unreadable changes nothing, and
  /// an array naming no known kind (such as []) restores the default.
  static void update_allowed_updates(Bot& bot, const FormParams& params);
  /// Whether the bot receives `update` (the default leaves out chat_member,
  /// message_reaction and message_reaction_count).
  static bool update_allowed(const Bot& bot, const nlohmann::json& update);
  /// Ends the bot's waiting getUpdates with 409 `why` (when it next looks).
  bool end_waiting_poll(Bot& bot, std::string why);

  Reply send_message(Call& call);
  Reply send_media(Call& call, std::string_view media);
  Reply send_media_group(Call& call, Time now);
  Reply copy_message(Call& call);
  Reply edit_message(Call& call, std::string_view method);
  Reply delete_message(Call& call);
  Reply get_chat(Call& call);
  Reply get_chat_member(Call& call);
  Reply get_file(Call& call);

  SimMessage& store_message(const Bot* bot, std::int64_t chat_id, std::int64_t sender_id, bool from_bot,
                            std::string text);
  SimMessage* find_message(const Bot& bot, std::int64_t chat_id, std::int64_t message_id);
  nlohmann::ordered_json message_json(const SimMessage& message, bool edited) const;
  nlohmann::ordered_json chat_json(std::int64_t chat_id) const;
  nlohmann::ordered_json user_json(std::int64_t user_id) const;
  nlohmann::ordered_json bot_json(const Bot& bot) const;
  const StoredFile* usable_file(const Bot& bot, std::string_view file_id) const;
  std::string store_file(std::int64_t owner_bot_id, std::string bytes, std::string file_name, std::string mime_type,
                         std::string_view media);

  mutable std::mutex mutex_;
  BotApiLimits default_limits_;
  bool open_world_;
  std::function<Time()> now_;
  std::map<std::string, Bot, std::less<>> bots_;
  std::map<std::int64_t, User> users_;
  std::map<std::int64_t, Group> groups_;
  std::map<std::int64_t, std::vector<SimMessage>> chats_;
  std::map<std::int64_t, std::int64_t> migrated_chats_;
  std::map<std::string, StoredFile, std::less<>> files_by_id_;
  std::map<std::string, std::string, std::less<>> file_id_by_path_;
  std::int64_t next_bot_id_ = 7000000001;
  std::int64_t next_file_number_ = 1;
  std::int64_t next_callback_query_ = 1;
};

}  // namespace floodgate::sim::detail
