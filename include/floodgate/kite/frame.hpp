// floodgate/kite/frame.hpp: a zero-copy reader for Kite ticker binary frames.
//
// A binary WebSocket message from the Kite ticker is big-endian:
//
//   uint16 packet count
//   count times: uint16 length, then `length` bytes of packet body
//
// and a message of exactly one byte is a heartbeat. The body's length says
// which layout it has (see `PacketKind` in tick.hpp).
//
// `FrameView` checks the whole frame once, when it is constructed, and then
// lets you walk its packets without copying or allocating:
//
//   floodgate::kite::FrameView frame(message.data(), message.size());
//   for (floodgate::kite::PacketView packet : frame) {
//     if (packet.instrument_token() == wanted) on_tick(packet.decode());
//   }
//   if (!frame.ok()) log_bad_frame(frame.error()->message());
//
// A packet whose length matches no known layout is skipped, not an error: the
// length prefix says where the next packet starts, so a layout Kite adds later
// costs only its own packets (pykiteconnect skips them the same way).
// `unknown_count()` counts them and `for_each_unknown_length` names them.
//
// Server data is never trusted: a packet that runs past the end of the frame,
// or a count that promises more packets than the frame holds, ends the frame at
// that packet. The packets before it are still iterated; `error()` says what
// was wrong and at which byte offset. No input, however broken, makes the
// reader touch memory outside the buffer.
//
// The view borrows the buffer: keep the message alive while you iterate.
#pragma once

#include <floodgate/kite/tick.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace floodgate::kite {

/// Why a frame could not be read to its end, and where.
struct FrameError {
  enum class Kind : std::uint8_t {
    empty_frame,            ///< a binary message of zero bytes
    count_overruns_frame,   ///< the frame ends where another length prefix should be
    truncated_packet,       ///< a packet's length runs past the end of the frame
    trailing_bytes,         ///< bytes left over after the last counted packet
  };

  Kind kind = Kind::empty_frame;
  std::size_t offset = 0;        ///< byte offset in the frame where the problem starts
  std::size_t packet_index = 0;  ///< zero-based index of the packet that failed
  std::size_t value = 0;         ///< the offending length (packet errors) or byte count

  /// One line for a log: "malformed Kite frame at byte 42 (packet 2): ...".
  std::string message() const;

  friend bool operator==(const FrameError&, const FrameError&) = default;
};

std::string_view to_string(FrameError::Kind kind) noexcept;

/// One packet inside a frame: a borrowed, already length-checked byte range.
class PacketView {
 public:
  /// Views `body` (a packet body without its length prefix) if its size is
  /// one of the five packet layouts; nullopt otherwise.
  static std::optional<PacketView> from_body(std::span<const std::byte> body) noexcept;

  PacketKind kind() const noexcept { return kind_; }
  Mode mode() const noexcept { return mode_of(kind_); }
  std::uint32_t instrument_token() const noexcept { return load_u32(0); }
  Segment segment() const noexcept { return segment_of(instrument_token()); }
  double last_price() const noexcept {
    return static_cast<double>(load_u32(4)) / price_divisor(segment());
  }
  std::span<const std::byte> body() const noexcept {
    return {reinterpret_cast<const std::byte*>(data_), packet_size(kind_)};
  }

  /// Every field of the packet, prices scaled by the segment's divisor.
  Tick decode() const noexcept;

 private:
  friend class FrameView;
  PacketView(const unsigned char* data, PacketKind kind) noexcept : data_(data), kind_(kind) {}

  std::uint32_t load_u32(std::size_t offset) const noexcept {
    const unsigned char* p = data_ + offset;
    return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 |
           std::uint32_t{p[3]};
  }
  std::uint16_t load_u16(std::size_t offset) const noexcept {
    const unsigned char* p = data_ + offset;
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
  }

  const unsigned char* data_;
  PacketKind kind_;
};

/// A checked, iterable view of one binary ticker message.
class FrameView {
 public:
  /// Forward iterator over the frame's well-formed packets of known layouts
  /// (packets of unknown length are stepped over).
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = PacketView;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = PacketView;

    iterator() = default;
    PacketView operator*() const noexcept {
      return PacketView(position_ + 2, *packet_kind_for_size(length(position_)));
    }
    iterator& operator++() noexcept {
      position_ = skip_unknown(position_ + 2 + length(position_), end_);
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.position_ == b.position_; }

   private:
    friend class FrameView;
    iterator(const unsigned char* position, const unsigned char* end) noexcept
        : position_(skip_unknown(position, end)), end_(end) {}
    static std::size_t length(const unsigned char* at) noexcept {
      return static_cast<std::size_t>(at[0] << 8 | at[1]);
    }
    // The frame was checked once: every prefix before `end` is in bounds.
    static const unsigned char* skip_unknown(const unsigned char* at, const unsigned char* end) noexcept {
      while (at != end && !packet_kind_for_size(length(at))) at += 2 + length(at);
      return at;
    }

    const unsigned char* position_ = nullptr;
    const unsigned char* end_ = nullptr;
  };

  /// Checks the frame's structure; never throws, never reads past `size`.
  FrameView(const void* data, std::size_t size) noexcept;
  explicit FrameView(std::span<const std::byte> frame) noexcept
      : FrameView(frame.data(), frame.size()) {}

  /// A one-byte message: the server's keep-alive, carrying no packets.
  bool is_heartbeat() const noexcept { return heartbeat_; }

  /// True when every counted packet is well formed and nothing is left over.
  bool ok() const noexcept { return !error_.has_value(); }
  const std::optional<FrameError>& error() const noexcept { return error_; }

  /// The packet count the frame announces (0 for heartbeats and empty frames).
  std::size_t declared_count() const noexcept { return declared_count_; }
  /// How many packets of known layouts can be read: all of them when ok(),
  /// those before the faulty one otherwise.
  std::size_t size() const noexcept { return readable_count_; }
  bool empty() const noexcept { return readable_count_ == 0; }
  /// Packets skipped because their length matches no known layout.
  std::size_t unknown_count() const noexcept { return unknown_count_; }

  /// Calls `f(length)` for each skipped packet of unknown length, in order.
  template <class F>
  void for_each_unknown_length(F&& f) const {
    for (const unsigned char* at = first_packet_; at != readable_end_;) {
      const std::size_t length = static_cast<std::size_t>(at[0] << 8 | at[1]);
      if (!packet_kind_for_size(length)) f(length);
      at += 2 + length;
    }
  }

  iterator begin() const noexcept { return {first_packet_, readable_end_}; }
  iterator end() const noexcept { return {readable_end_, readable_end_}; }

 private:
  const unsigned char* first_packet_ = nullptr;
  const unsigned char* readable_end_ = nullptr;  // just past the last readable packet
  std::size_t declared_count_ = 0;
  std::size_t readable_count_ = 0;
  std::size_t unknown_count_ = 0;
  bool heartbeat_ = false;
  std::optional<FrameError> error_;
};

}  // namespace floodgate::kite

template <>
struct fmt::formatter<floodgate::kite::FrameError> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const floodgate::kite::FrameError& error, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(error.message(), ctx);
  }
};
