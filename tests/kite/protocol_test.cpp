// kite/protocol: hand-built frames for every packet layout and price divisor,
// heartbeats, malformed frames, and the JSON messages.
#include <floodgate/kite/protocol.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace kite = floodgate::kite;
using Kind = kite::FrameError::Kind;

namespace {

// Writes big-endian fields, the way the Kite server lays out a frame.
struct Bytes {
  std::vector<std::uint8_t> data;

  Bytes& u16(std::uint16_t v) {
    data.push_back(static_cast<std::uint8_t>(v >> 8));
    data.push_back(static_cast<std::uint8_t>(v));
    return *this;
  }
  Bytes& u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) data.push_back(static_cast<std::uint8_t>(v >> shift));
    return *this;
  }
  Bytes& raw(const Bytes& other) {
    data.insert(data.end(), other.data.begin(), other.data.end());
    return *this;
  }
  std::size_t size() const { return data.size(); }
};

// A frame holding the given packet bodies, each with its length prefix.
Bytes frame_of(std::initializer_list<Bytes> bodies) {
  Bytes frame;
  frame.u16(static_cast<std::uint16_t>(bodies.size()));
  for (const Bytes& body : bodies) frame.u16(static_cast<std::uint16_t>(body.size())).raw(body);
  return frame;
}

kite::FrameView view(const Bytes& bytes) { return kite::FrameView(bytes.data.data(), bytes.size()); }

std::vector<kite::Tick> decode_all(const kite::FrameView& frame) {
  std::vector<kite::Tick> ticks;
  for (kite::PacketView packet : frame) ticks.push_back(packet.decode());
  return ticks;
}

constexpr std::uint32_t nse_token = 408065;      // INFY, segment 1
constexpr std::uint32_t cds_token = 0x00ABCD03;  // segment 3
constexpr std::uint32_t bcd_token = 0x00ABCD06;  // segment 6
constexpr std::uint32_t mcx_token = 53253383;    // segment 7 (GOLDGUINEA)
constexpr std::uint32_t index_token = 256265;    // NIFTY 50, segment 9

Bytes ltp_body(std::uint32_t token, std::uint32_t price) { return Bytes{}.u32(token).u32(price); }

Bytes quote_body(std::uint32_t token) {
  return Bytes{}
      .u32(token)
      .u32(408400)   // last price 4084.00
      .u32(7)        // last traded quantity
      .u32(408655)   // average price 4086.55
      .u32(12510)    // volume
      .u32(2356)     // total buy quantity
      .u32(2440)     // total sell quantity
      .u32(408800)   // open 4088.00
      .u32(409300)   // high 4093.00
      .u32(408000)   // low 4080.00
      .u32(406500);  // close 4065.00
}

Bytes full_body(std::uint32_t token) {
  Bytes body = quote_body(token);
  body.u32(1516003014)  // last trade time
      .u32(21845)       // OI
      .u32(30000)       // OI day high
      .u32(20000)       // OI day low
      .u32(1516003016);  // exchange timestamp
  for (std::uint32_t level = 0; level < 5; ++level) {  // bids: 4084, 4083, ...
    body.u32(50 + level).u32(408400 - 100 * level).u16(static_cast<std::uint16_t>(level + 1)).u16(0);
  }
  for (std::uint32_t level = 0; level < 5; ++level) {  // asks: 4085, 4086, ...
    body.u32(40 + level).u32(408500 + 100 * level).u16(static_cast<std::uint16_t>(level + 10)).u16(0xFFFF);
  }
  return body;
}

Bytes index_quote_body(std::int32_t change) {
  return Bytes{}
      .u32(index_token)
      .u32(1950050)  // last price 19500.50
      .u32(1960000)  // high
      .u32(1940000)  // low
      .u32(1945000)  // open
      .u32(1953650)  // close
      .u32(static_cast<std::uint32_t>(change));
}

}  // namespace

TEST_CASE("kite ltp packets are priced by the segment's divisor", "[kite][protocol]") {
  const Bytes bytes = frame_of({ltp_body(nse_token, 408400), ltp_body(cds_token, 835012345),
                                ltp_body(bcd_token, 835012), ltp_body(mcx_token, 2424000),
                                ltp_body(index_token, 1950050)});
  const auto frame = view(bytes);
  REQUIRE(frame.ok());
  REQUIRE(frame.size() == 5);
  const auto ticks = decode_all(frame);

  CHECK(ticks[0].instrument_token == nse_token);
  CHECK(ticks[0].kind == kite::PacketKind::ltp);
  CHECK(ticks[0].mode() == kite::Mode::ltp);
  CHECK(ticks[0].segment() == kite::Segment::nse);
  CHECK(ticks[0].last_price == 4084.0);
  CHECK(ticks[0].tradable());

  CHECK(ticks[1].segment() == kite::Segment::cds);
  CHECK(ticks[1].last_price == 835012345 / 10'000'000.0);  // 83.5012345
  CHECK(ticks[2].segment() == kite::Segment::bcd);
  CHECK(ticks[2].last_price == 835012 / 10'000.0);  // 83.5012
  CHECK(ticks[3].segment() == kite::Segment::mcx);
  CHECK(ticks[3].last_price == 24240.0);

  CHECK(ticks[4].is_index());
  CHECK_FALSE(ticks[4].tradable());
  CHECK(ticks[4].last_price == 19500.5);
  CHECK(ticks[4].ohlc == kite::Ohlc{});  // ltp carries nothing else
}

TEST_CASE("kite quote packets decode every field", "[kite][protocol]") {
  const Bytes bytes = frame_of({quote_body(nse_token)});
  const auto frame = view(bytes);
  REQUIRE(frame.ok());
  const auto tick = (*frame.begin()).decode();

  CHECK(tick.kind == kite::PacketKind::quote);
  CHECK(tick.mode() == kite::Mode::quote);
  CHECK(tick.last_price == 4084.0);
  CHECK(tick.last_traded_quantity == 7);
  CHECK(tick.average_traded_price == 4086.55);
  CHECK(tick.volume_traded == 12510);
  CHECK(tick.total_buy_quantity == 2356);
  CHECK(tick.total_sell_quantity == 2440);
  CHECK(tick.ohlc == kite::Ohlc{4088.0, 4093.0, 4080.0, 4065.0});
  CHECK(tick.net_change == Approx(19.0));
  CHECK(tick.change_percent() == Approx(19.0 * 100 / 4065.0));
  CHECK(tick.depth == kite::Depth{});
  CHECK(tick.exchange_timestamp == kite::Tick::seconds{});
}

TEST_CASE("kite full packets decode times, open interest and both depth sides", "[kite][protocol]") {
  const Bytes bytes = frame_of({full_body(nse_token)});
  REQUIRE(bytes.size() == 2 + 2 + 184);
  const auto frame = view(bytes);
  REQUIRE(frame.ok());
  const auto tick = (*frame.begin()).decode();

  CHECK(tick.kind == kite::PacketKind::full);
  CHECK(tick.mode() == kite::Mode::full);
  CHECK(tick.ohlc.close == 4065.0);
  CHECK(tick.last_trade_time.time_since_epoch().count() == 1516003014);
  CHECK(tick.oi == 21845);
  CHECK(tick.oi_day_high == 30000);
  CHECK(tick.oi_day_low == 20000);
  CHECK(tick.exchange_timestamp.time_since_epoch().count() == 1516003016);
  for (std::size_t level = 0; level < 5; ++level) {
    INFO("level " << level);
    CHECK(tick.depth.buy[level] ==
          kite::DepthEntry{static_cast<std::uint32_t>(50 + level), 4084.0 - static_cast<double>(level),
                           static_cast<std::uint16_t>(level + 1)});
    CHECK(tick.depth.sell[level] ==
          kite::DepthEntry{static_cast<std::uint32_t>(40 + level), 4085.0 + static_cast<double>(level),
                           static_cast<std::uint16_t>(level + 10)});
  }
}

TEST_CASE("kite full packets of currency segments scale depth prices too", "[kite][protocol]") {
  const Bytes bytes = frame_of({full_body(cds_token), full_body(bcd_token)});
  const auto ticks = decode_all(view(bytes));
  REQUIRE(ticks.size() == 2);
  CHECK(ticks[0].last_price == 408400 / 10'000'000.0);
  CHECK(ticks[0].depth.sell[0].price == 408500 / 10'000'000.0);
  CHECK(ticks[0].average_traded_price == 408655 / 10'000'000.0);
  CHECK(ticks[1].last_price == 408400 / 10'000.0);
  CHECK(ticks[1].depth.buy[4].price == 408000 / 10'000.0);
}

TEST_CASE("kite index packets use high/low/open/close order and a signed change", "[kite][protocol]") {
  Bytes full = index_quote_body(-36);
  full.u32(1700000000);  // exchange timestamp at 28..32
  const Bytes bytes = frame_of({index_quote_body(365), full});
  const auto frame = view(bytes);
  REQUIRE(frame.ok());
  const auto ticks = decode_all(frame);
  REQUIRE(ticks.size() == 2);

  CHECK(ticks[0].kind == kite::PacketKind::index_quote);
  CHECK(ticks[0].mode() == kite::Mode::quote);
  CHECK(ticks[0].is_index());
  CHECK_FALSE(ticks[0].tradable());
  CHECK(ticks[0].last_price == 19500.5);
  CHECK(ticks[0].ohlc == kite::Ohlc{19450.0, 19600.0, 19400.0, 19536.5});
  CHECK(ticks[0].net_change == 3.65);
  CHECK(ticks[0].exchange_timestamp == kite::Tick::seconds{});

  CHECK(ticks[1].kind == kite::PacketKind::index_full);
  CHECK(ticks[1].mode() == kite::Mode::full);
  CHECK(ticks[1].net_change == -0.36);
  CHECK(ticks[1].exchange_timestamp.time_since_epoch().count() == 1700000000);
  CHECK(ticks[1].volume_traded == 0);
}

TEST_CASE("kite packet views read in place without copying", "[kite][protocol]") {
  const Bytes bytes = frame_of({ltp_body(nse_token, 100), full_body(mcx_token), quote_body(cds_token)});
  const auto frame = view(bytes);
  REQUIRE(frame.ok());
  CHECK(frame.declared_count() == 3);

  std::vector<kite::PacketKind> kinds;
  std::size_t expected_offset = 4;  // count, then the first length prefix
  for (kite::PacketView packet : frame) {
    kinds.push_back(packet.kind());
    CHECK(reinterpret_cast<const std::uint8_t*>(packet.body().data()) == bytes.data.data() + expected_offset);
    expected_offset += packet.body().size() + 2;
  }
  CHECK(kinds == std::vector{kite::PacketKind::ltp, kite::PacketKind::full, kite::PacketKind::quote});

  auto it = frame.begin();
  CHECK((*it).last_price() == 1.0);
  ++it;
  CHECK((*it).instrument_token() == mcx_token);
  CHECK((*it).segment() == kite::Segment::mcx);
  CHECK(std::distance(frame.begin(), frame.end()) == 3);

  const Bytes body = quote_body(nse_token);
  const auto single = kite::PacketView::from_body(std::as_bytes(std::span(body.data)));
  REQUIRE(single);
  CHECK(single->decode().volume_traded == 12510);
  CHECK_FALSE(kite::PacketView::from_body(std::as_bytes(std::span(body.data).first(43))));
}

TEST_CASE("kite heartbeats and zero-packet frames carry no ticks and no error", "[kite][protocol]") {
  const std::uint8_t heartbeat[1] = {0};
  const kite::FrameView beat(heartbeat, 1);
  CHECK(beat.is_heartbeat());
  CHECK(beat.ok());
  CHECK(beat.empty());
  CHECK(beat.begin() == beat.end());

  const Bytes none = Bytes{}.u16(0);
  const auto frame = view(none);
  CHECK_FALSE(frame.is_heartbeat());
  CHECK(frame.ok());
  CHECK(frame.empty());
}

TEST_CASE("kite frames skip packets of unknown length and deliver the rest", "[kite][protocol]") {
  // Issue 13: ltp, a 20-byte packet, ltp gave 1 tick where pykiteconnect gives 2.
  const Bytes twenty = Bytes{}.u32(nse_token).u32(1).u32(2).u32(3).u32(4);
  Bytes bytes = Bytes{}.u16(3);
  bytes.u16(8).raw(ltp_body(nse_token, 1)).u16(20).raw(twenty).u16(8).raw(ltp_body(mcx_token, 2));
  const auto frame = view(bytes);
  CHECK(frame.ok());
  CHECK(frame.declared_count() == 3);
  CHECK(frame.size() == 2);
  CHECK(frame.unknown_count() == 1);
  const auto ticks = decode_all(frame);
  REQUIRE(ticks.size() == 2);
  CHECK(ticks[0].instrument_token == nse_token);
  CHECK(ticks[1].instrument_token == mcx_token);
  CHECK(std::distance(frame.begin(), frame.end()) == 2);

  // Unknown first and last, two different lengths, one of them zero.
  Bytes edges = Bytes{}.u16(4);
  edges.u16(0).u16(20).raw(twenty).u16(8).raw(ltp_body(nse_token, 3)).u16(3).raw(Bytes{{1, 2, 3}});
  const auto edge_frame = view(edges);
  CHECK(edge_frame.ok());
  CHECK(edge_frame.size() == 1);
  CHECK(edge_frame.unknown_count() == 3);
  std::vector<std::size_t> lengths;
  edge_frame.for_each_unknown_length([&](std::size_t length) { lengths.push_back(length); });
  CHECK(lengths == std::vector<std::size_t>{0, 20, 3});
  CHECK(decode_all(edge_frame).at(0).last_price == 0.03);

  // Nothing but unknown packets: no ticks, no error.
  const Bytes only = Bytes{}.u16(1).u16(20).raw(twenty);
  CHECK(view(only).ok());
  CHECK(view(only).empty());
  CHECK(view(only).begin() == view(only).end());

  // An unknown length that runs past the end is still a truncated packet.
  Bytes cut = Bytes{}.u16(2);
  cut.u16(8).raw(ltp_body(nse_token, 1)).u16(20).raw(Bytes{}.u32(1));
  const auto cut_frame = view(cut);
  REQUIRE(cut_frame.error());
  CHECK(cut_frame.error()->kind == Kind::truncated_packet);
  CHECK(cut_frame.size() == 1);
  CHECK(cut_frame.unknown_count() == 0);
}

TEST_CASE("kite malformed frames report the offset and keep the packets before it", "[kite][protocol]") {
  SECTION("empty message") {
    const kite::FrameView frame(nullptr, 0);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::empty_frame, 0, 0, 0});
    CHECK(frame.empty());
  }
  SECTION("packet truncated by the end of the frame") {
    Bytes bytes = frame_of({quote_body(nse_token), full_body(nse_token)});
    bytes.data.resize(bytes.size() - 1);
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::truncated_packet, 48, 1, 184});
    CHECK(frame.size() == 1);
    CHECK(decode_all(frame).at(0).kind == kite::PacketKind::quote);
  }
  SECTION("count promises more packets than the frame holds") {
    Bytes bytes = frame_of({ltp_body(nse_token, 1), ltp_body(nse_token, 2)});
    bytes.data[1] = 5;
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::count_overruns_frame, 22, 2, 5});
    CHECK(frame.declared_count() == 5);
    CHECK(frame.size() == 2);
  }
  SECTION("count with no packets at all") {
    const Bytes bytes = Bytes{}.u16(1);
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::count_overruns_frame, 2, 0, 1});
  }
  SECTION("half a length prefix") {
    Bytes bytes = Bytes{}.u16(1);
    bytes.data.push_back(0);
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(frame.error()->kind == Kind::count_overruns_frame);
  }
  SECTION("length larger than the frame") {
    const Bytes bytes = Bytes{}.u16(1).u16(184).u32(nse_token);
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::truncated_packet, 2, 0, 184});
    CHECK(frame.empty());
  }
  SECTION("bytes after the last counted packet") {
    Bytes bytes = frame_of({ltp_body(nse_token, 1)});
    bytes.u16(0xBEEF);
    const auto frame = view(bytes);
    REQUIRE(frame.error());
    CHECK(*frame.error() == kite::FrameError{Kind::trailing_bytes, 12, 1, 2});
    CHECK(frame.size() == 1);  // the packet itself was sound
  }
}

TEST_CASE("kite request builders write the documented JSON", "[kite][protocol]") {
  const std::vector<std::uint32_t> tokens{408065, 884737};
  CHECK(kite::subscribe_message(tokens) == R"({"a":"subscribe","v":[408065,884737]})");
  CHECK(kite::unsubscribe_message(tokens) == R"({"a":"unsubscribe","v":[408065,884737]})");
  CHECK(kite::mode_message(kite::Mode::full, tokens) == R"({"a":"mode","v":["full",[408065,884737]]})");
  CHECK(kite::mode_message(kite::Mode::ltp, {}) == R"({"a":"mode","v":["ltp",[]]})");
  CHECK(kite::subscribe_message(std::vector<std::uint32_t>{4294967295u}) ==
        R"({"a":"subscribe","v":[4294967295]})");
}

TEST_CASE("kite requests parse back from the builders and reject anything else", "[kite][protocol]") {
  const std::vector<std::uint32_t> tokens{408065, 884737};
  const auto sub = kite::parse_request(kite::subscribe_message(tokens));
  REQUIRE(sub);
  CHECK(sub->action == kite::Request::Action::subscribe);
  CHECK(sub->tokens == tokens);

  const auto unsub = kite::parse_request(kite::unsubscribe_message(tokens));
  REQUIRE(unsub);
  CHECK(unsub->action == kite::Request::Action::unsubscribe);

  for (const kite::Mode mode : {kite::Mode::ltp, kite::Mode::quote, kite::Mode::full}) {
    const auto parsed = kite::parse_request(kite::mode_message(mode, tokens));
    REQUIRE(parsed);
    CHECK(parsed->action == kite::Request::Action::mode);
    CHECK(parsed->mode == mode);
    CHECK(parsed->tokens == tokens);
  }

  for (const char* bad : {"", "not json", "[]", R"({"a":"subscribe"})", R"({"a":"buy","v":[1]})",
                          R"({"a":"subscribe","v":[-1]})", R"({"a":"subscribe","v":[1.5]})",
                          R"({"a":"subscribe","v":["1"]})", R"({"a":"subscribe","v":[4294967296]})",
                          R"({"a":"mode","v":["depth",[1]]})", R"({"a":"mode","v":[[1]]})",
                          R"({"a":"mode","v":"full"})", R"({"a":1,"v":[1]})"}) {
    INFO(bad);
    CHECK_FALSE(kite::parse_request(bad));
  }
}

TEST_CASE("kite text messages are classified by type", "[kite][protocol]") {
  const auto order = kite::parse_text_message(R"({"type":"order","data":{"order_id":"151220000000000","status":"COMPLETE"}})");
  REQUIRE(order);
  CHECK(order->type == kite::TextMessage::Type::order);
  CHECK(order->data.at("status") == "COMPLETE");

  const auto error = kite::parse_text_message(R"({"type":"error","data":"Invalid mode"})");
  REQUIRE(error);
  CHECK(error->type == kite::TextMessage::Type::error);
  CHECK(error->data == "Invalid mode");

  const auto message = kite::parse_text_message(R"({"type":"message","data":"market closed"})");
  REQUIRE(message);
  CHECK(message->type == kite::TextMessage::Type::message);

  const auto other = kite::parse_text_message(R"({"type":"instruments_meta"})");
  REQUIRE(other);
  CHECK(other->type == kite::TextMessage::Type::other);
  CHECK(other->type_name == "instruments_meta");
  CHECK(other->data.is_null());

  for (const char* bad : {"", "{", "[1,2]", R"({"data":"x"})", R"({"type":3})", "\xff\xfe"}) {
    INFO(bad);
    CHECK_FALSE(kite::parse_text_message(bad));
  }
}

namespace {

/// `{"type":"error","data":[[[…0…]]]}` with `depth` arrays: issue 18's crasher
/// at depth 100,000 (its recursive dump() overflowed the stack).
std::string nested_error(std::size_t depth) {
  return R"({"type":"error","data":)" + std::string(depth, '[') + "0" + std::string(depth, ']') + "}";
}

}  // namespace

TEST_CASE("kite JSON from the other side is refused past max_json_depth", "[kite][protocol]") {
  // The message object itself is one level: data may nest max_json_depth - 1.
  const auto deepest = kite::parse_text_message(nested_error(kite::max_json_depth - 1));
  REQUIRE(deepest);
  CHECK(deepest->data.is_array());
  CHECK_FALSE(deepest->data.dump().empty());  // safe to walk
  CHECK_FALSE(kite::parse_text_message(nested_error(kite::max_json_depth)));
  CHECK_FALSE(kite::parse_text_message(nested_error(100'000)));
  CHECK_FALSE(kite::parse_text_message(R"({"type":"order","data":{"a":)" + std::string(40, '[') +
                                       std::string(40, ']') + "}}"));

  CHECK(kite::parse_request(R"({"a":"subscribe","v":[1,2]})"));
  CHECK_FALSE(kite::parse_request(R"({"a":"subscribe","v":[1],"x":)" + std::string(100'000, '[') +
                                  std::string(100'000, ']') + "}"));
}

TEST_CASE("kite modes, segments and packet kinds map consistently", "[kite][protocol]") {
  for (const kite::Mode mode : {kite::Mode::ltp, kite::Mode::quote, kite::Mode::full}) {
    CHECK(kite::parse_mode(kite::to_string(mode)) == mode);
    for (const std::uint32_t token : {nse_token, index_token}) {
      const auto kind = kite::packet_kind_for(token, mode);
      CHECK(kite::mode_of(kind) == mode);
      CHECK(kite::packet_kind_for_size(kite::packet_size(kind)) == kind);
    }
  }
  CHECK(kite::packet_kind_for(index_token, kite::Mode::quote) == kite::PacketKind::index_quote);
  CHECK(kite::packet_kind_for(index_token, kite::Mode::full) == kite::PacketKind::index_full);
  CHECK_FALSE(kite::parse_mode("FULL"));
  CHECK(kite::price_divisor(kite::segment_of(0x12345603)) == 10'000'000.0);
  CHECK(kite::price_divisor(kite::segment_of(0x12345606)) == 10'000.0);
  CHECK(kite::price_divisor(kite::segment_of(0x123456FF)) == 100.0);  // unknown segment
}
