// floodgate/kite/fmt.hpp: {fmt} formatters for the Kite ticker's values.
//
//   fmt::print("{}", tick);     // "408065 quote 1523.45" (token, packet kind, last price)
//   fmt::print("{}", Mode::full);                      // "full"
//   fmt::print("{}", Segment::nse);                    // "nse"
//   fmt::print("{}", PacketKind::index_quote);         // "index_quote"
//   fmt::print("{}", ConnectionState::waiting_to_reconnect);
//   fmt::print("{}", KeyHealth::degraded);             // "degraded"
//   fmt::print("{}", DistributionStrategy::round_robin);  // "round_robin"
#pragma once

#include "floodgate/core/fmt.hpp"
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
