// libFuzzer target for the Kite ticker parsers: any byte string is offered as
// a binary frame and as a text message. The parsers must neither crash nor
// read out of bounds (ASan, UBSan), and the frame view must keep its promises.
// Built and run by scripts/fuzz-kite (clang only, not part of the CMake build).
#include <floodgate/kite/protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace kite = floodgate::kite;

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const kite::FrameView frame(data, size);
  require(frame.size() <= frame.declared_count() || frame.is_heartbeat());
  require(frame.ok() || frame.error()->offset <= size);

  std::size_t bytes_seen = frame.empty() ? 0 : 2;
  std::size_t packets = 0;
  for (const kite::PacketView packet : frame) {
    const auto body = packet.body();
    require(reinterpret_cast<const std::uint8_t*>(body.data()) >= data);
    require(reinterpret_cast<const std::uint8_t*>(body.data()) + body.size() <= data + size);
    const kite::Tick tick = packet.decode();
    require(tick.kind == packet.kind());
    require(tick.instrument_token == packet.instrument_token());
    bytes_seen += 2 + body.size();
    ++packets;
  }
  require(packets == frame.size());
  std::size_t unknown = 0;
  frame.for_each_unknown_length([&](std::size_t length) {
    require(!kite::packet_kind_for_size(length));
    bytes_seen += 2 + length;
    ++unknown;
  });
  require(unknown == frame.unknown_count());
  require(packets + unknown <= frame.declared_count() || frame.is_heartbeat());
  require(bytes_seen <= size);
  if (frame.ok() && !frame.is_heartbeat()) require(bytes_seen == size || frame.empty());

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
    require(again && again->tokens == request->tokens && again->action == request->action);
  }
  return 0;
}
