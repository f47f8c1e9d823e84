// Reading Kite ticker binary frames: structure checks and packet decoding.
// Layouts: see tick.hpp; offsets below are byte offsets inside a packet body.
#include <floodgate/kite/frame.hpp>

#include <fmt/format.h>

namespace floodgate::kite {
namespace {

// Market depth in full packets: five bids from byte 64, then five asks.
// Each entry: quantity u32, price u32, orders u16, 2 bytes of padding.
constexpr std::size_t bids_offset = 64;
constexpr std::size_t asks_offset = 124;
constexpr std::size_t depth_entry_size = 12;
constexpr std::size_t depth_levels = 5;

std::size_t read_u16(const unsigned char* p) noexcept {
  return static_cast<std::size_t>(p[0]) << 8 | p[1];
}

}  // namespace

std::string_view to_string(FrameError::Kind kind) noexcept {
  switch (kind) {
    case FrameError::Kind::empty_frame: return "empty frame";
    case FrameError::Kind::count_overruns_frame: return "packet count overruns the frame";
    case FrameError::Kind::truncated_packet: return "packet runs past the end of the frame";
    case FrameError::Kind::trailing_bytes: return "bytes left after the last packet";
  }
  return "?";
}

std::string FrameError::message() const {
  switch (kind) {
    case Kind::empty_frame: return "malformed Kite frame: empty binary message";
    case Kind::count_overruns_frame:
      return fmt::format("malformed Kite frame at byte {}: {} packets announced, frame ends after {}",
                         offset, value, packet_index);
    case Kind::truncated_packet:
      return fmt::format("malformed Kite frame at byte {} (packet {}): {} ({})", offset,
                         packet_index, to_string(kind), value);
    case Kind::trailing_bytes:
      return fmt::format("malformed Kite frame at byte {}: {} bytes left after the last packet",
                         offset, value);
  }
  return "malformed Kite frame";
}

std::optional<PacketView> PacketView::from_body(std::span<const std::byte> body) noexcept {
  const auto kind = packet_kind_for_size(body.size());
  if (!kind) return std::nullopt;
  return PacketView(reinterpret_cast<const unsigned char*>(body.data()), *kind);
}

Tick PacketView::decode() const noexcept {
  Tick tick;
  tick.instrument_token = instrument_token();
  tick.kind = kind_;
  const double divisor = price_divisor(segment_of(tick.instrument_token));
  const auto price = [&](std::size_t offset) { return static_cast<double>(load_u32(offset)) / divisor; };
  const auto time = [&](std::size_t offset) {
    return Tick::seconds{std::chrono::seconds{load_u32(offset)}};
  };
  const auto depth_entry = [&](std::size_t offset) {
    return DepthEntry{load_u32(offset), price(offset + 4), load_u16(offset + 8)};
  };

  tick.last_price = price(4);
  switch (kind_) {
    case PacketKind::ltp:
      break;

    case PacketKind::index_quote:
    case PacketKind::index_full:
      // Index packets order their OHLC as high, low, open, close, and carry the
      // net change themselves, signed.
      tick.ohlc.high = price(8);
      tick.ohlc.low = price(12);
      tick.ohlc.open = price(16);
      tick.ohlc.close = price(20);
      tick.net_change = static_cast<double>(static_cast<std::int32_t>(load_u32(24))) / divisor;
      if (kind_ == PacketKind::index_full) tick.exchange_timestamp = time(28);
      break;

    case PacketKind::quote:
    case PacketKind::full:
      tick.last_traded_quantity = load_u32(8);
      tick.average_traded_price = price(12);
      tick.volume_traded = load_u32(16);
      tick.total_buy_quantity = load_u32(20);
      tick.total_sell_quantity = load_u32(24);
      tick.ohlc.open = price(28);
      tick.ohlc.high = price(32);
      tick.ohlc.low = price(36);
      tick.ohlc.close = price(40);
      tick.net_change = tick.last_price - tick.ohlc.close;
      if (kind_ == PacketKind::quote) break;

      tick.last_trade_time = time(44);
      tick.oi = load_u32(48);
      tick.oi_day_high = load_u32(52);
      tick.oi_day_low = load_u32(56);
      tick.exchange_timestamp = time(60);
      for (std::size_t level = 0; level < depth_levels; ++level) {
        tick.depth.buy[level] = depth_entry(bids_offset + level * depth_entry_size);
        tick.depth.sell[level] = depth_entry(asks_offset + level * depth_entry_size);
      }
      break;
  }
  return tick;
}

FrameView::FrameView(const void* data, std::size_t size) noexcept {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (size == 0) {
    error_ = FrameError{FrameError::Kind::empty_frame, 0, 0, 0};
    return;
  }
  if (size == 1) {
    heartbeat_ = true;
    return;
  }

  declared_count_ = read_u16(bytes);
  first_packet_ = bytes + 2;
  readable_end_ = first_packet_;
  std::size_t offset = 2;
  for (std::size_t index = 0; index < declared_count_; ++index) {
    // All comparisons are against what is left, so no sum can overflow.
    if (size - offset < 2) {
      error_ = FrameError{FrameError::Kind::count_overruns_frame, offset, index, declared_count_};
      return;
    }
    const std::size_t length = read_u16(bytes + offset);
    if (size - offset - 2 < length) {
      error_ = FrameError{FrameError::Kind::truncated_packet, offset, index, length};
      return;
    }
    offset += 2 + length;
    readable_end_ = bytes + offset;
    ++(packet_kind_for_size(length) ? readable_count_ : unknown_count_);
  }
  if (offset != size) {
    error_ = FrameError{FrameError::Kind::trailing_bytes, offset, declared_count_, size - offset};
  }
}

}  // namespace floodgate::kite
