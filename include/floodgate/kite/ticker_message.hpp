// floodgate/kite/ticker_message.hpp: what the ticker managers deliver.
//
// A manager turns every packet of every binary frame into a decoded `Tick` and
// passes the server's text messages (order updates, errors) on as
// `TextMessage`s. `TickerMessage` adds where it came from: the id you gave the
// API key ("API-1") and the index of the connection within that key.
//
//   auto [ec, msg] = co_await manager->channel().async_receive(asio::as_tuple(asio::use_awaitable));
//   if (const auto* tick = std::get_if<floodgate::kite::Tick>(&msg.message)) book.update(msg.api_key_id, *tick);
#pragma once

#include <floodgate/kite/messages.hpp>
#include <floodgate/kite/tick.hpp>

#include <cstddef>
#include <string>
#include <variant>

namespace floodgate::kite {

using KiteMessage = std::variant<Tick, TextMessage>;

struct TickerMessage {
  std::string api_key_id;  ///< the id given to add_api_key, never the key itself
  std::size_t connection = 0;
  KiteMessage message;
};

}  // namespace floodgate::kite
