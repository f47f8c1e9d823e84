// floodgate/kite/ticker_message.hpp: what the ticker managers' channels carry.
//
// One message per binary frame received, with all the frame's ticks as a
// `TickBatch` (tick_batch.hpp), or one server text message (order updates,
// errors) as a `TextMessage`. Both say where they came from: the id you gave
// the API key ("API-1") and the index of the connection within that key.
//
//   auto [ec, msg] = co_await manager->channel().async_receive(asio::as_tuple(asio::use_awaitable));
//   if (const auto* ticks = msg.ticks()) {
//     for (const floodgate::kite::Tick& tick : *ticks) book.update(msg.api_key_id(), tick);
//   }
//
// Copying a message copies two reference-counted pointers, never the ticks.
#pragma once

#include <floodgate/kite/messages.hpp>
#include <floodgate/kite/tick_batch.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <variant>

namespace floodgate::kite {

using KiteMessage = std::variant<TickBatch, TextMessage>;

struct TickerMessage {
  /// Shared by every message of the connection (the key id is interned).
  std::shared_ptr<const MessageSource> source;
  KiteMessage message;

  const std::string& api_key_id() const noexcept { return source->api_key_id; }
  std::size_t connection() const noexcept { return source->connection; }
  /// The frame's ticks; null for a text message.
  const TickBatch* ticks() const noexcept { return std::get_if<TickBatch>(&message); }
  /// The server's text message; null for ticks.
  const TextMessage* text() const noexcept { return std::get_if<TextMessage>(&message); }
};

}  // namespace floodgate::kite
