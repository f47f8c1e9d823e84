// floodgate/kite/ticker_channel.hpp: the channel the ticker managers deliver on.
//
// `TickerChannel` is an Asio concurrent channel of `void(std::error_code,
// TickerMessage)` (floodgate/async/channel.hpp): `async_receive` with a
// callback, a future or `co_await`, `try_receive` to drain what is buffered
// without waiting.
//
//   auto [ec, msg] = co_await channel.async_receive(asio::as_tuple(asio::use_awaitable));
//   if (ec == floodgate::errc::shut_down) co_return;       // the manager stopped
//   use(msg);
//   while (channel.try_receive([&](std::error_code, floodgate::kite::TickerMessage next) { use(next); })) {}
//
// A receive on a closed channel completes with `floodgate::errc::shut_down`;
// one cancelled (`channel.cancel()`, or a cancellation slot) with
// `floodgate::errc::cancelled` (== std::errc::operation_canceled). Either way
// the message is empty. Cancel with care: in Asio 1.81 a channel whose
// waiting receive was cancelled buffers nothing until the next receive starts
// (its cancel leaves the send side blocked), so the managers drop (and count
// in messages_dropped) or, with conflation, hold what arrives in between.
// Start the next receive at once.
//
// The buffer is a `RecyclingRing`: the managers fill it to the channel's
// capacity when they build the channel, so delivering never allocates.
#pragma once

#include <floodgate/async/channel.hpp>
#include <floodgate/kite/ticker_message.hpp>

#include <system_error>

namespace floodgate::kite {

using TickerChannel = async::Channel<void(std::error_code, TickerMessage)>;

}  // namespace floodgate::kite
