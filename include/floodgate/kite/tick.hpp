// floodgate/kite/tick.hpp: one decoded Kite ticker quote, and the rules that
// give its raw integers a meaning.
//
// The Kite ticker sends prices as integers. What they are worth depends on the
// instrument's segment, which is the low byte of its instrument token:
//
//   segment 3 (NSE currency, "cds")  divide by 10,000,000
//   segment 6 (BSE currency, "bcd")  divide by 10,000
//   anything else                    divide by 100 (paise to rupees)
//
// Instruments of segment 9 are indices: they are not tradable and they arrive
// in their own, shorter packet layouts.
//
//   const floodgate::kite::Tick& t = ...;
//   if (t.mode() == floodgate::kite::Mode::full) show_depth(t.depth);
//
// A `Tick` is a plain value of fixed size (no heap memory), so decoding one per
// packet costs no allocation; fields the packet did not carry stay zero.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace floodgate::kite {

/// What a subscriber asks the ticker to stream for an instrument.
enum class Mode : std::uint8_t {
  ltp,    ///< last traded price only
  quote,  ///< prices, volumes and OHLC, no depth
  full,   ///< everything, including five levels of market depth
};

/// "ltp", "quote" or "full": the names used on the wire.
constexpr std::string_view to_string(Mode mode) noexcept {
  switch (mode) {
    case Mode::ltp: return "ltp";
    case Mode::quote: return "quote";
    case Mode::full: return "full";
  }
  return "?";
}

/// The inverse of to_string(Mode); nullopt for any other text.
constexpr std::optional<Mode> parse_mode(std::string_view name) noexcept {
  if (name == "ltp") return Mode::ltp;
  if (name == "quote") return Mode::quote;
  if (name == "full") return Mode::full;
  return std::nullopt;
}

/// Exchange segment codes, as carried in the low byte of an instrument token.
/// Values outside this list can occur; they are priced like NSE (divisor 100).
enum class Segment : std::uint8_t {
  nse = 1,
  nfo = 2,
  cds = 3,  ///< NSE currency derivatives: prices in 1e-7 rupee
  bse = 4,
  bfo = 5,
  bcd = 6,  ///< BSE currency derivatives: prices in 1e-4 rupee
  mcx = 7,
  mcxsx = 8,
  indices = 9,  ///< not tradable; index packet layouts
};

constexpr Segment segment_of(std::uint32_t instrument_token) noexcept {
  return static_cast<Segment>(instrument_token & 0xffu);
}

/// What one unit of a raw price field is worth, as a divisor.
constexpr double price_divisor(Segment segment) noexcept {
  switch (segment) {
    case Segment::cds: return 10'000'000.0;
    case Segment::bcd: return 10'000.0;
    default: return 100.0;
  }
}

constexpr bool is_index(std::uint32_t instrument_token) noexcept {
  return segment_of(instrument_token) == Segment::indices;
}

/// The five packet layouts of the binary protocol, named by what they carry.
/// Each has a fixed size, which is how a reader tells them apart.
enum class PacketKind : std::uint8_t {
  ltp,          ///< 8 bytes: token, last price
  index_quote,  ///< 28 bytes: token, last price, high, low, open, close, net change
  index_full,   ///< 32 bytes: index_quote + exchange timestamp
  quote,        ///< 44 bytes: token, prices, quantities, OHLC
  full,         ///< 184 bytes: quote + times, open interest, 10 depth entries
};

/// Packet body sizes in bytes (without the 2-byte length prefix).
inline constexpr std::size_t ltp_packet_size = 8;
inline constexpr std::size_t index_quote_packet_size = 28;
inline constexpr std::size_t index_full_packet_size = 32;
inline constexpr std::size_t quote_packet_size = 44;
inline constexpr std::size_t full_packet_size = 184;

constexpr std::size_t packet_size(PacketKind kind) noexcept {
  switch (kind) {
    case PacketKind::ltp: return ltp_packet_size;
    case PacketKind::index_quote: return index_quote_packet_size;
    case PacketKind::index_full: return index_full_packet_size;
    case PacketKind::quote: return quote_packet_size;
    case PacketKind::full: return full_packet_size;
  }
  return 0;
}

/// The packet kind of a body of `size` bytes; nullopt if no layout has that size.
constexpr std::optional<PacketKind> packet_kind_for_size(std::size_t size) noexcept {
  switch (size) {
    case ltp_packet_size: return PacketKind::ltp;
    case index_quote_packet_size: return PacketKind::index_quote;
    case index_full_packet_size: return PacketKind::index_full;
    case quote_packet_size: return PacketKind::quote;
    case full_packet_size: return PacketKind::full;
    default: return std::nullopt;
  }
}

/// The packet kind the ticker uses for `instrument_token` in `mode`: indices
/// have their own quote and full layouts, every instrument shares the ltp one.
constexpr PacketKind packet_kind_for(std::uint32_t instrument_token, Mode mode) noexcept {
  const bool index = is_index(instrument_token);
  switch (mode) {
    case Mode::ltp: return PacketKind::ltp;
    case Mode::quote: return index ? PacketKind::index_quote : PacketKind::quote;
    case Mode::full: return index ? PacketKind::index_full : PacketKind::full;
  }
  return PacketKind::ltp;
}

constexpr Mode mode_of(PacketKind kind) noexcept {
  switch (kind) {
    case PacketKind::ltp: return Mode::ltp;
    case PacketKind::index_quote:
    case PacketKind::quote: return Mode::quote;
    case PacketKind::index_full:
    case PacketKind::full: return Mode::full;
  }
  return Mode::ltp;
}

struct Ohlc {
  double open = 0;
  double high = 0;
  double low = 0;
  double close = 0;

  friend bool operator==(const Ohlc&, const Ohlc&) = default;
};

/// One level of the order book.
struct DepthEntry {
  std::uint32_t quantity = 0;
  double price = 0;
  std::uint16_t orders = 0;

  friend bool operator==(const DepthEntry&, const DepthEntry&) = default;
};

/// Five bid levels (best first) and five ask levels (best first).
struct Depth {
  std::array<DepthEntry, 5> buy{};
  std::array<DepthEntry, 5> sell{};

  friend bool operator==(const Depth&, const Depth&) = default;
};

/// One quote for one instrument, decoded from any of the five packet layouts.
/// Prices are in rupees (already divided by the segment's divisor); times are
/// Unix seconds as sent by the exchange. Fields that `kind` does not carry
/// are zero.
struct Tick {
  using seconds = std::chrono::sys_seconds;

  std::uint32_t instrument_token = 0;
  PacketKind kind = PacketKind::ltp;

  double last_price = 0;  ///< every kind

  // quote and full (non-index) packets
  std::uint32_t last_traded_quantity = 0;
  double average_traded_price = 0;
  std::uint32_t volume_traded = 0;
  std::uint32_t total_buy_quantity = 0;
  std::uint32_t total_sell_quantity = 0;

  Ohlc ohlc;  ///< every kind but ltp

  /// last_price - close: sent by the exchange in index packets, computed for
  /// quote and full packets; zero for ltp.
  double net_change = 0;

  // full packets (exchange_timestamp also in index_full)
  seconds last_trade_time{};
  std::uint32_t oi = 0;
  std::uint32_t oi_day_high = 0;
  std::uint32_t oi_day_low = 0;
  seconds exchange_timestamp{};
  Depth depth;  ///< full (non-index) packets only

  Mode mode() const noexcept { return mode_of(kind); }
  Segment segment() const noexcept { return segment_of(instrument_token); }
  bool is_index() const noexcept { return kite::is_index(instrument_token); }
  bool tradable() const noexcept { return !is_index(); }

  /// Percentage change from the previous close; 0 when close is unknown (0).
  double change_percent() const noexcept {
    return ohlc.close == 0 ? 0.0 : (last_price - ohlc.close) * 100.0 / ohlc.close;
  }

  friend bool operator==(const Tick&, const Tick&) = default;
};

}  // namespace floodgate::kite
