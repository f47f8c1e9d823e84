// A Telegram user with C++20 coroutines: a BotPool of two tokens sends to
// three chats through the embedded Bot API simulator (real HTTPS on 127.0.0.1).
//
// Safe on g++ 12: no temporary in a `co_await` expression has a destructor
// that matters (g++ 12 destroys such temporaries at the wrong time). The
// message parameters and the completion token are named variables first.
#include <floodgate/net/tls.hpp>
#include <floodgate/sim/bot_api_server.hpp>
#include <floodgate/telegram/bot_pool.hpp>
#include <floodgate/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <set>
#include <string>

namespace asio = boost::asio;
namespace telegram = floodgate::telegram;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<int> send_to_three_chats(telegram::BotPool& bots) {
  std::set<std::string> senders;
  for (std::int64_t chat = 101; chat <= 103; ++chat) {
    const telegram::SendMessageParams message{.chat_id = chat, .text = "floodgate " FLOODGATE_VERSION};
    auto [ec, result] = co_await bots.async_send_message(message, use_tuple);
    if (ec) {
      fmt::print("telegram consumer: chat {}: {} ({})\n", chat, ec.message(), result.description);
      co_return 1;
    }
    const auto sent = result.sent();
    if (!sent || sent->chat_id != chat) co_return 2;
    senders.insert(sent->token_id);
    fmt::print("telegram consumer: message {} in chat {} sent by {}\n", sent->message_id, chat, sent->token_id);
  }
  co_return senders.empty() ? 3 : 0;
}

int main() {
  const floodgate::Secret token_a("100001:AAH-consumer-token-a");
  const floodgate::Secret token_b("100002:AAH-consumer-token-b");
  floodgate::sim::BotApiServer server({.tokens = {token_a, token_b}});
  server.start();

  asio::io_context io;
  floodgate::net::HttpsClient http(io.get_executor(),
                                   {.tls = floodgate::net::make_client_tls_context({.ca_pem = server.ca_pem()})});
  telegram::BotPool bots(io.get_executor(), http, {{"bot-a", {token_a}}, {"bot-b", {token_b}}},
                         {.endpoint = server.endpoint()});

  int status = -1;
  asio::co_spawn(io, send_to_three_chats(bots), [&](std::exception_ptr error, int result) {
    status = error ? 4 : result;
    io.stop();  // idle keep-alive connections would keep run() going
  });
  io.run();
  server.stop();
  fmt::print("telegram consumer: {}\n", status == 0 ? "ok" : "failed");
  return status;
}
