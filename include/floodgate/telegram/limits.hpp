// floodgate/telegram/limits.hpp: Telegram's documented Bot API limits as
// a ready-made LimitSet.
//
//   auto limits = floodgate::telegram_bot_limits();   // one per bot token
//   if (auto d = limits.try_acquire(chat_id)) bot.send_message(chat_id, text);
//   else schedule_retry(d.retry_after);
//
// The Bot API FAQ ("My bot is hitting limits, how do I avoid this?") says:
// - about 30 messages per second overall for bulk notifications  -> "bot"
// - one message per second in a single chat; short bursts may pass but
//   eventually earn 429s                                          -> "private_chat"
// - 20 messages per minute in a group                             -> "group_chat"
// Chat ids of users are positive; groups, supergroups and channels have
// negative ids, so the per-chat rule applies to ids > 0 and the group rule to
// ids < 0.
//
// The default bursts are conservative on purpose: a burst of b at rate r lets
// b + r*t messages through in any window of length t, and Telegram answers an
// excess with a flood wait, which costs far more than a smooth pace. Only
// private chats get a short burst (3), as the FAQ allows.
#pragma once

#include <floodgate/core/clock.hpp>
#include <floodgate/core/keyed_limiter.hpp>
#include <floodgate/core/limit_set.hpp>
#include <floodgate/core/rate.hpp>

#include <cstdint>

namespace floodgate {

struct TelegramBotLimits {
  Rate bot = Rate::per_second(30);
  double bot_burst = 1;
  Rate private_chat = Rate::per_second(1);
  double private_chat_burst = 3;
  Rate group_chat = Rate::per_minute(20);
  double group_chat_burst = 1;
  KeyedLimiterOptions keys{};
};

/// The limits of one bot token, keyed by chat id.
template <Clock C = SteadyClock>
LimitSet<std::int64_t, C> telegram_bot_limits(C clock = C{}, const TelegramBotLimits& config = {}) {
  LimitSet<std::int64_t, C> limits(std::move(clock));
  limits.add("bot", config.bot, config.bot_burst)
      .add_per_key("private_chat", config.private_chat, config.private_chat_burst,
                   [](std::int64_t chat_id) { return chat_id > 0; }, config.keys)
      .add_per_key("group_chat", config.group_chat, config.group_chat_burst,
                   [](std::int64_t chat_id) { return chat_id < 0; }, config.keys);
  return limits;
}

}  // namespace floodgate
