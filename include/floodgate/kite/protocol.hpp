// floodgate/kite/protocol.hpp: the Kite Connect ticker protocol, with no I/O.
//
// Everything needed to speak to wss://ws.kite.trade once a WebSocket is open:
//
//   tick.hpp      `Tick` (a decoded quote), `Mode`, `Segment`, price divisors,
//                 the five packet layouts
//   frame.hpp     `FrameView` / `PacketView`: a checked, zero-copy reader for
//                 binary frames, heartbeats and malformed-frame errors
//   messages.hpp  JSON requests (subscribe, unsubscribe, mode) and the server's
//                 text messages (order, error, message)
//
// The layouts follow Zerodha's official clients (pykiteconnect, gokiteconnect).
// Parsing allocates nothing per tick and never reads outside the frame, so it
// can sit directly on a socket's receive buffer:
//
//   void on_binary(std::span<const std::byte> message) {
//     floodgate::kite::FrameView frame(message);
//     for (auto packet : frame) consumer.push(packet.decode());
//     if (!frame.ok()) floodgate::log(floodgate::LogLevel::warning, "{}", *frame.error());
//   }
#pragma once

#include <floodgate/kite/frame.hpp>
#include <floodgate/kite/messages.hpp>
#include <floodgate/kite/tick.hpp>
