// floodgate/sim/kite_frame_encoder.hpp: writes Kite ticker binary frames.
//
// The inverse of `kite::FrameView`: it lays `kite::Tick` values out in the
// ticker's big-endian packet layouts, so the simulator (and benchmarks, and
// anyone replaying recorded ticks) produces byte-for-byte what the real server
// sends. Which layout a tick gets depends on the mode asked and on the
// instrument: indices (segment 9) use the 28/32-byte index layouts.
//
//   floodgate::sim::KiteFrameEncoder encoder;
//   for (const auto& [tick, mode] : due) encoder.add(tick, mode);
//   ws.write(boost::asio::buffer(encoder.bytes()));
//   encoder.clear();  // keeps its memory for the next frame
//
// Prices are converted back to integers with the segment's divisor, rounded
// to the nearest unit, so a decoded tick re-encodes to the same bytes.
#pragma once

#include <floodgate/kite/tick.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace floodgate::sim {

class KiteFrameEncoder {
 public:
  KiteFrameEncoder() { clear(); }

  /// Appends one packet for `tick` in `mode`'s layout. Throws floodgate::Error
  /// when the frame already holds 65535 packets (the count field's limit).
  void add(const kite::Tick& tick, kite::Mode mode);

  /// Starts a new, empty frame; the buffer's capacity is kept.
  void clear();

  std::size_t packet_count() const noexcept { return count_; }

  /// The frame so far: count, then each length-prefixed packet.
  std::span<const std::byte> bytes() const noexcept { return std::as_bytes(std::span(buffer_)); }

  /// The one-byte message the ticker sends to keep a quiet connection alive.
  static std::span<const std::byte> heartbeat() noexcept;

 private:
  void put_u16(std::uint16_t value);
  void put_u32(std::uint32_t value);
  void put_price(double price, double divisor);

  std::vector<std::uint8_t> buffer_;
  std::uint8_t* out_ = nullptr;  // where add() writes next, inside buffer_
  std::size_t count_ = 0;
};

}  // namespace floodgate::sim
