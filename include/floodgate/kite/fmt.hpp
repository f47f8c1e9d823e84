// floodgate/kite/fmt.hpp: {fmt} formatters for the Kite ticker's values.
//
//   fmt::print("{}", tick);     // "408065 quote 1523.45" (token, packet kind, last price)
//   fmt::print("{}", Mode::full);                      // "full"
//   fmt::print("{}", Segment::nse);                    // "nse"
//   fmt::print("{}", PacketKind::index_quote);         // "index_quote"
//   fmt::print("{}", ConnectionState::waiting_to_reconnect);
//   fmt::print("{}", KeyHealth::degraded);             // "degraded"
//   fmt::print("{}", DistributionStrategy::round_robin);  // "round_robin"
//   fmt::print("{}", manager.stats());   // ManagerStats: "keys=2 keys_serving=2 connections_open=3 ..."
//   fmt::print("{}", key_stats);         // KeyStats: "API-1 live instruments=4500/9000 ticks=... connections=2"
//   fmt::print("{}", connection_stats);  // ConnectionStats: "connected subscriptions=1500 ticks=... uptime=5000ms"
//   fmt::print("{}", KiteKey{...});      // redacted: "api_key=abcd**** access_token=wxyz****"
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/kite/credentials.hpp"
#include "floodgate/kite/multi_api_manager.hpp"
#include "floodgate/kite/tick.hpp"
#include "floodgate/kite/ticker_connection.hpp"
#include "floodgate/kite/ticker_manager.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace floodgate::kite::detail {
inline std::string_view mode_text(const Mode& mode) { return to_string(mode); }
inline std::string segment_text(const Segment& segment) {
  switch (segment) {
    case Segment::nse: return "nse";
    case Segment::nfo: return "nfo";
    case Segment::cds: return "cds";
    case Segment::bse: return "bse";
    case Segment::bfo: return "bfo";
    case Segment::bcd: return "bcd";
    case Segment::mcx: return "mcx";
    case Segment::mcxsx: return "mcxsx";
    case Segment::indices: return "indices";
  }
  return fmt::format("segment {}", static_cast<int>(segment));  // codes outside the list occur
}
inline std::string_view packet_kind_text(const PacketKind& kind) {
  switch (kind) {
    case PacketKind::ltp: return "ltp";
    case PacketKind::index_quote: return "index_quote";
    case PacketKind::index_full: return "index_full";
    case PacketKind::quote: return "quote";
    case PacketKind::full: return "full";
  }
  return "?";
}
inline std::string_view connection_state_text(const ConnectionState& state) { return to_string(state); }
inline std::string_view key_health_text(const KeyHealth& health) { return to_string(health); }
inline std::string_view distribution_text(const DistributionStrategy& strategy) {
  return strategy == DistributionStrategy::round_robin ? "round_robin" : "manual";
}
inline std::string connection_stats_text(const ConnectionStats& s) {
  std::string text = fmt::format(
      "{} subscriptions={} ticks={} frames={} heartbeats={} text_messages={} malformed_frames={} unknown_packets={} "
      "connects={} reconnects={} failed_attempts={} watchdog_timeouts={} failures_in_a_row={} uptime={}ms",
      to_string(s.state), s.subscriptions, s.ticks, s.frames, s.heartbeats, s.text_messages, s.malformed_frames,
      s.unknown_packets, s.connects, s.reconnects, s.failed_attempts, s.watchdog_timeouts, s.failures_in_a_row,
      s.uptime.count());
  if (s.last_error) text += fmt::format(" last_error=\"{}\"", s.last_error.message());
  if (s.last_http_status != 0) text += fmt::format(" last_http_status={}", s.last_http_status);
  return text;
}
inline std::string key_stats_text(const KeyStats& s) {
  return fmt::format(
      "{} {} instruments={}/{} ticks={} reconnects={} malformed_frames={} unknown_packets={} failed_attempts={} "
      "watchdog_timeouts={} instruments_moved_out={} instruments_moved_in={} uptime={}ms connections={}",
      s.id, to_string(s.health), s.instruments, s.capacity, s.ticks, s.reconnects, s.malformed_frames,
      s.unknown_packets, s.failed_attempts, s.watchdog_timeouts, s.instruments_moved_out, s.instruments_moved_in,
      s.uptime.count(), s.connections.size());
}
inline std::string manager_stats_text(const ManagerStats& s) {
  return fmt::format(
      "keys={} keys_serving={} connections_open={} instruments={} unplaced_instruments={} ticks={} "
      "messages_delivered={} messages_dropped={} ticks_conflated={} unknown_packets={} reconnects={} failovers={} "
      "instruments_moved={} uptime={}ms",
      s.keys, s.keys_serving, s.connections_open, s.instruments, s.unplaced_instruments, s.ticks,
      s.messages_delivered, s.messages_dropped, s.ticks_conflated, s.unknown_packets, s.reconnects, s.failovers,
      s.instruments_moved, s.uptime.count());
}
inline std::string key_text(const KiteKey& key) {
  return fmt::format("api_key={} access_token={}", key.api_key.redacted(), key.access_token.redacted());
}
inline std::string tick_text(const Tick& tick) {
  return fmt::format("{} {} {}", tick.instrument_token, packet_kind_text(tick.kind), tick.last_price);
}
}  // namespace floodgate::kite::detail

template <>
struct fmt::formatter<floodgate::kite::Mode>
    : floodgate::detail::TextFormatter<floodgate::kite::Mode, floodgate::kite::detail::mode_text> {};
template <>
struct fmt::formatter<floodgate::kite::Segment>
    : floodgate::detail::TextFormatter<floodgate::kite::Segment, floodgate::kite::detail::segment_text> {};
template <>
struct fmt::formatter<floodgate::kite::PacketKind>
    : floodgate::detail::TextFormatter<floodgate::kite::PacketKind, floodgate::kite::detail::packet_kind_text> {};
template <>
struct fmt::formatter<floodgate::kite::ConnectionState>
    : floodgate::detail::TextFormatter<floodgate::kite::ConnectionState,
                                       floodgate::kite::detail::connection_state_text> {};
template <>
struct fmt::formatter<floodgate::kite::KeyHealth>
    : floodgate::detail::TextFormatter<floodgate::kite::KeyHealth, floodgate::kite::detail::key_health_text> {};
template <>
struct fmt::formatter<floodgate::kite::DistributionStrategy>
    : floodgate::detail::TextFormatter<floodgate::kite::DistributionStrategy,
                                       floodgate::kite::detail::distribution_text> {};
template <>
struct fmt::formatter<floodgate::kite::Tick>
    : floodgate::detail::TextFormatter<floodgate::kite::Tick, floodgate::kite::detail::tick_text> {};
template <>
struct fmt::formatter<floodgate::kite::ConnectionStats>
    : floodgate::detail::TextFormatter<floodgate::kite::ConnectionStats, floodgate::kite::detail::connection_stats_text> {};
template <>
struct fmt::formatter<floodgate::kite::KeyStats>
    : floodgate::detail::TextFormatter<floodgate::kite::KeyStats, floodgate::kite::detail::key_stats_text> {};
template <>
struct fmt::formatter<floodgate::kite::ManagerStats>
    : floodgate::detail::TextFormatter<floodgate::kite::ManagerStats, floodgate::kite::detail::manager_stats_text> {};
template <>
struct fmt::formatter<floodgate::KiteKey>
    : floodgate::detail::TextFormatter<floodgate::KiteKey, floodgate::kite::detail::key_text> {};
