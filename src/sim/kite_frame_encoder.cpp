#include <floodgate/sim/kite_frame_encoder.hpp>

#include <floodgate/core/error.hpp>

#include <cmath>
#include <limits>

namespace floodgate::sim {

void KiteFrameEncoder::clear() {
  buffer_.assign(2, 0);  // the packet count, patched by add()
  count_ = 0;
}

std::span<const std::byte> KiteFrameEncoder::heartbeat() noexcept {
  static constexpr std::byte beat[1] = {std::byte{0}};
  return beat;
}

void KiteFrameEncoder::put_u16(std::uint16_t value) {
  out_[0] = static_cast<std::uint8_t>(value >> 8);
  out_[1] = static_cast<std::uint8_t>(value);
  out_ += 2;
}

void KiteFrameEncoder::put_u32(std::uint32_t value) {
  out_[0] = static_cast<std::uint8_t>(value >> 24);
  out_[1] = static_cast<std::uint8_t>(value >> 16);
  out_[2] = static_cast<std::uint8_t>(value >> 8);
  out_[3] = static_cast<std::uint8_t>(value);
  out_ += 4;
}

void KiteFrameEncoder::put_price(double price, double divisor) {
  // Signed on purpose: the index net change is negative when the index fell.
  put_u32(static_cast<std::uint32_t>(static_cast<std::int64_t>(std::llround(price * divisor))));
}

void KiteFrameEncoder::add(const kite::Tick& tick, kite::Mode mode) {
  if (count_ == std::numeric_limits<std::uint16_t>::max()) {
    throw Error("a Kite frame holds at most 65535 packets");
  }
  const kite::PacketKind kind = kite::packet_kind_for(tick.instrument_token, mode);
  const double divisor = kite::price_divisor(kite::segment_of(tick.instrument_token));
  const auto seconds = [](kite::Tick::seconds time) {
    return static_cast<std::uint32_t>(time.time_since_epoch().count());
  };

  // Grown once per packet, then written through out_: the simulator's send
  // path encodes millions of packets a second in benchmarks.
  const std::size_t size = kite::packet_size(kind);
  const std::size_t start = buffer_.size();
  buffer_.resize(start + 2 + size);
  out_ = buffer_.data() + start;
  put_u16(static_cast<std::uint16_t>(size));
  put_u32(tick.instrument_token);
  put_price(tick.last_price, divisor);
  switch (kind) {
    case kite::PacketKind::ltp:
      break;

    case kite::PacketKind::index_quote:
    case kite::PacketKind::index_full:
      put_price(tick.ohlc.high, divisor);
      put_price(tick.ohlc.low, divisor);
      put_price(tick.ohlc.open, divisor);
      put_price(tick.ohlc.close, divisor);
      put_price(tick.net_change, divisor);
      if (kind == kite::PacketKind::index_full) put_u32(seconds(tick.exchange_timestamp));
      break;

    case kite::PacketKind::quote:
    case kite::PacketKind::full:
      put_u32(tick.last_traded_quantity);
      put_price(tick.average_traded_price, divisor);
      put_u32(tick.volume_traded);
      put_u32(tick.total_buy_quantity);
      put_u32(tick.total_sell_quantity);
      put_price(tick.ohlc.open, divisor);
      put_price(tick.ohlc.high, divisor);
      put_price(tick.ohlc.low, divisor);
      put_price(tick.ohlc.close, divisor);
      if (kind == kite::PacketKind::quote) break;

      put_u32(seconds(tick.last_trade_time));
      put_u32(tick.oi);
      put_u32(tick.oi_day_high);
      put_u32(tick.oi_day_low);
      put_u32(seconds(tick.exchange_timestamp));
      for (const auto* side : {&tick.depth.buy, &tick.depth.sell}) {
        for (const kite::DepthEntry& entry : *side) {
          put_u32(entry.quantity);
          put_price(entry.price, divisor);
          put_u16(entry.orders);
          put_u16(0);  // padding
        }
      }
      break;
  }

  ++count_;
  buffer_[0] = static_cast<std::uint8_t>(count_ >> 8);
  buffer_[1] = static_cast<std::uint8_t>(count_);
}

}  // namespace floodgate::sim
