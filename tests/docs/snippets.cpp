// The marked snippets of README.md and docs/*.md, compiled as written: each
// `<!-- snippet: NAME -->` block is extracted (extract_snippets.cmake) and
// included below, its #include lines at the top and its statements inside a
// function that declares the names the prose around it assumes. Compiled and
// linked only; what the snippets do is tested elsewhere.
#include <floodgate/telegram/bot_api_client.hpp>
#include <floodgate/telegram/bot_pool.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "readme_lease.head.inc"
#include "retry_outcome_unknown.head.inc"
#include "telegram_bot_api_client.head.inc"

namespace asio = boost::asio;
using boost::asio::use_awaitable;

namespace {

// README.md, "Use it": the caller's own Bot API call.
struct Reply {
  bool ok = false;
  std::optional<int> retry_after;
  std::string description;
};
Reply call_bot_api(const std::string& /*token*/, std::int64_t /*chat_id*/, const std::string& /*text*/) { return {}; }

void readme_lease(std::int64_t chat_id, const std::string& text) {
#include "readme_lease.body.inc"
}

// docs/retry.md, an unknown outcome.
void record_unconfirmed(std::int64_t, const std::string&, const std::string&) {}

asio::awaitable<void> retry_outcome_unknown(floodgate::telegram::BotPool& bots, std::int64_t chat, std::string text,
                                            bool a_duplicate_is_harmless) {
#include "retry_outcome_unknown.body.inc"
}

// docs/telegram-bot-api.md, one token.
asio::awaitable<void> telegram_bot_api_client(asio::io_context& io, std::string token, std::int64_t chat) {
#include "telegram_bot_api_client.body.inc"
}

}  // namespace

int main() {
  // Referenced, so that the compiler checks them fully, never run.
  volatile bool run = false;
  if (run) {
    readme_lease(0, "");
    asio::io_context io;
    (void)&retry_outcome_unknown;
    (void)telegram_bot_api_client(io, "", 0);
  }
}
