// libFuzzer target for the Kite ticker parsers: any byte string is offered as
// a binary frame, as a text message and as a client request. The parsers must
// neither crash nor read out of bounds (ASan, UBSan), and the frame view must
// keep its promises. Built and run by scripts/fuzz.
#include <floodgate/kite/protocol.hpp>

#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kite = floodgate::kite;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kite::FrameView frame(data, size);
  FUZZ_REQUIRE(frame.size() <= frame.declared_count() || frame.is_heartbeat());
  FUZZ_REQUIRE(frame.ok() || frame.error()->offset <= size);

  std::size_t bytes_seen = frame.empty() ? 0 : 2;
  std::size_t packets = 0;
  for (const kite::PacketView packet : frame) {
    const auto body = packet.body();
    FUZZ_REQUIRE(reinterpret_cast<const std::uint8_t*>(body.data()) >= data);
    FUZZ_REQUIRE(reinterpret_cast<const std::uint8_t*>(body.data()) + body.size() <= data + size);
    const kite::Tick tick = packet.decode();
    FUZZ_REQUIRE(tick.kind == packet.kind());
    FUZZ_REQUIRE(tick.instrument_token == packet.instrument_token());
    bytes_seen += 2 + body.size();
    ++packets;
  }
  FUZZ_REQUIRE(packets == frame.size());
  std::size_t unknown = 0;
  frame.for_each_unknown_length([&](std::size_t length) {
    FUZZ_REQUIRE(!kite::packet_kind_for_size(length));
    bytes_seen += 2 + length;
    ++unknown;
  });
  FUZZ_REQUIRE(unknown == frame.unknown_count());
  FUZZ_REQUIRE(packets + unknown <= frame.declared_count() || frame.is_heartbeat());
  FUZZ_REQUIRE(bytes_seen <= size);
  if (frame.ok() && !frame.is_heartbeat()) FUZZ_REQUIRE(bytes_seen == size || frame.empty());

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)kite::parse_text_message(text);
  if (const auto request = kite::parse_request(text)) {
    // A parsed request must survive a round trip through the builders.
    const auto rebuilt = request->action == kite::Request::Action::mode
                             ? kite::mode_message(request->mode, request->tokens)
                         : request->action == kite::Request::Action::subscribe
                             ? kite::subscribe_message(request->tokens)
                             : kite::unsubscribe_message(request->tokens);
    const auto again = kite::parse_request(rebuilt);
    FUZZ_REQUIRE(again && again->tokens == request->tokens && again->action == request->action);
  }
  return 0;
}
