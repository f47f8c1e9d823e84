// floodgate/kite/ticker_callbacks.hpp: the official Kite clients' events, as
// callbacks.
//
// pykiteconnect, kiteconnect-js and gokiteconnect let you react to the ticker
// through a handful of named events; the managers offer the same ones, with
// the same meanings, beside their channels. Each event says which key and
// connection it is about (`MessageSource`): one manager runs many
// connections where the official clients run one.
//
//   floodgate::kite::TickerCallbacks callbacks{
//       .on_ticks = [](const floodgate::kite::TickBatch& ticks) { for (const auto& t : ticks) use(t); },
//       .on_connect = [](const floodgate::kite::MessageSource& s) { log("{}#{} up", s.api_key_id, s.connection); },
//   };
//
// Callbacks run on the connection's strand (concurrently for different
// connections), no lock held: keep them short, and hand heavy work on. Like
// the connections' handlers they may still run briefly while stop() returns.
#pragma once

#include <floodgate/kite/tick_batch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>
#include <system_error>

namespace floodgate::kite {

struct TickerCallbacks {
  /// One received frame's ticks (pykiteconnect's on_ticks(ws, ticks)). The
  /// batch may be kept (it is a shared handle; see tick_batch.hpp).
  std::function<void(const TickBatch& ticks)> on_ticks;
  /// A connection is up: upgraded and data flowing (on_connect).
  std::function<void(const MessageSource&)> on_connect;
  /// A connection that was up is lost; `reason` says why (on_close). It
  /// reconnects unless stopped.
  std::function<void(const MessageSource&, std::error_code reason)> on_close;
  /// A connection will try again after `delay`; `attempt` counts the failures
  /// in a row so far (on_reconnect(ws, attempts_count)).
  std::function<void(const MessageSource&, std::size_t attempt, std::chrono::milliseconds delay)> on_reconnect;
  /// A connection stopped trying: its reconnect attempts are used up, or its
  /// access token was refused (until update_access_token) (on_noreconnect).
  std::function<void(const MessageSource&, std::error_code reason)> on_noreconnect;
  /// An order update pushed by the server; `order` is its `data` object
  /// (on_order_update).
  std::function<void(const MessageSource&, const nlohmann::json& order)> on_order_update;
  /// A connection attempt failed, or the server sent an error message
  /// (`reason` is then errc::bad_request and `message` its text) (on_error).
  std::function<void(const MessageSource&, std::error_code reason, std::string_view message)> on_error;
};

}  // namespace floodgate::kite
