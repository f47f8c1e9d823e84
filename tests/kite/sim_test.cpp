// sim::KiteTickerServer against a plain Beast WebSocket client on loopback:
// upgrade refusals (403, 429), subscribe / mode / unsubscribe, the instrument
// cap, heartbeats, and the injected faults (malformed frames, drops, silence).
// Every binary frame is read back with kite::FrameView.
#include <floodgate/core/error.hpp>
#include <floodgate/kite/protocol.hpp>
#include <floodgate/sim/test_certificates.hpp>
#include <floodgate/net/tls.hpp>
#include <floodgate/sim/kite_frame_encoder.hpp>
#include <floodgate/sim/kite_ticker_server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace kite = floodgate::kite;
using floodgate::Secret;
using floodgate::sim::KiteTickerServer;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t nse_token = 408065;    // segment 1
constexpr std::uint32_t cds_token = 0x0ABC03;  // segment 3: divisor 1e7
constexpr std::uint32_t index_token = 256265;  // segment 9

floodgate::sim::KiteTickerServerOptions test_options() {
  floodgate::sim::KiteTickerServerOptions options;
  options.keys = {{"key-a", Secret("access-token-a-123456")}, {"key-b", Secret("access-token-b-123456")}};
  options.ticks_per_second = 100;
  options.heartbeat_interval = 20ms;
  return options;
}

/// Polls `condition` (for state the server updates on its own thread).
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// A minimal client: synchronous connect, handshake and writes; reads with a
/// time limit (after a timed-out read the client is closed).
class Client {
 public:
  struct Message {
    bool text = false;
    std::string bytes;
    kite::FrameView frame() const { return kite::FrameView(bytes.data(), bytes.size()); }
  };

  /// Connects to `target` (path and query) and returns the upgrade's HTTP status.
  http::status connect(std::uint16_t port, const std::string& target) {
    beast::get_lowest_layer(ws_).connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    websocket::response_type response;
    beast::error_code ec;
    ws_.handshake(response, "127.0.0.1:" + std::to_string(port), target, ec);
    last_response_body_ = response.body();
    return response.result();
  }

  std::string target(const std::string& key, const std::string& token) const {
    return "/?api_key=" + key + "&access_token=" + token;
  }

  void send(const std::string& text) {
    ws_.text(true);
    ws_.write(asio::buffer(text));
  }

  /// The next message; nullopt when the read failed (see error(), which is
  /// beast::error::timeout when nothing came within `limit`).
  std::optional<Message> read(std::chrono::milliseconds limit = 3s) {
    beast::flat_buffer buffer;
    std::optional<Message> message;
    bool done = false;
    ws_.async_read(buffer, [&](beast::error_code ec, std::size_t) {
      done = true;
      error_ = ec;
      if (!ec) message = Message{ws_.got_text(), beast::buffers_to_string(buffer.data())};
    });
    io_.restart();
    io_.run_for(limit);
    if (!done) {
      beast::get_lowest_layer(ws_).close();
      io_.restart();
      io_.run();
      error_ = beast::error::timeout;
    }
    return message;
  }

  /// Reads until a binary frame satisfies `accept`; nullopt if none within 50 messages.
  std::optional<Message> read_until(const std::function<bool(const Message&)>& accept) {
    for (int i = 0; i < 50; ++i) {
      auto message = read();
      if (!message) return std::nullopt;
      if (accept(*message)) return message;
    }
    return std::nullopt;
  }

  void close() { ws_.close(websocket::close_code::normal); }

  beast::error_code error() const { return error_; }
  const std::string& last_response_body() const { return last_response_body_; }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_{io_};
  beast::error_code error_;
  std::string last_response_body_;
};

std::vector<kite::Tick> ticks_of(const Client::Message& message) {
  std::vector<kite::Tick> ticks;
  const auto frame = message.frame();
  for (const kite::PacketView packet : frame) ticks.push_back(packet.decode());
  return ticks;
}

bool is_tick_frame_with(const Client::Message& message, std::size_t packets) {
  return !message.text && message.frame().ok() && message.frame().size() == packets;
}

}  // namespace

TEST_CASE("kite sim refuses bad credentials with 403 and never echoes the token", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();

  for (const auto& [key, token] : std::vector<std::pair<std::string, std::string>>{
           {"key-a", "wrong-token"}, {"key-z", "access-token-a-123456"}, {"key-a", ""}}) {
    Client client;
    INFO(key << " / " << token);
    CHECK(client.connect(server.port(), client.target(key, token)) == http::status::forbidden);
    CHECK(client.last_response_body().find("access-token") == std::string::npos);
  }
  Client no_query;
  CHECK(no_query.connect(server.port(), "/") == http::status::forbidden);

  server.set_key_enabled("key-b", false);
  Client disabled;
  CHECK(disabled.connect(server.port(), disabled.target("key-b", "access-token-b-123456")) == http::status::forbidden);
  server.set_key_enabled("key-b", true);
  Client enabled;
  CHECK(enabled.connect(server.port(), enabled.target("key-b", "access-token-b-123456")) ==
        http::status::switching_protocols);

  CHECK(server.stats().rejected_auth == 5);
  CHECK(server.key_stats("key-a").rejected_auth == 2);
  CHECK(server.key_stats("key-b").rejected_auth == 1);
  CHECK(server.key_stats("key-b").connections_accepted == 1);
}

TEST_CASE("kite sim refuses a 4th concurrent connection per key with 429", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  const std::string target = "/?api_key=key-a&access_token=access-token-a-123456";

  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>());
    REQUIRE(clients.back()->connect(server.port(), target) == http::status::switching_protocols);
  }
  Client fourth;
  CHECK(fourth.connect(server.port(), target) == http::status::too_many_requests);
  CHECK(server.key_stats("key-a").connections == 3);
  CHECK(server.key_stats("key-a").rejected_over_limit == 1);

  Client other_key;  // the limit is per key
  CHECK(other_key.connect(server.port(), "/?api_key=key-b&access_token=access-token-b-123456") ==
        http::status::switching_protocols);

  clients.front()->close();
  REQUIRE(eventually([&] { return server.key_stats("key-a").connections == 2; }));
  Client replacement;
  CHECK(replacement.connect(server.port(), target) == http::status::switching_protocols);
  CHECK(server.key_stats("key-a").connections_accepted == 4);
  CHECK(server.connections("key-a").size() == 3);
}

TEST_CASE("kite sim streams subscribed instruments in quote mode and then in the mode asked", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);

  // Before any subscription the connection only gets heartbeats.
  const auto beat = client.read();
  REQUIRE(beat);
  CHECK(beat->frame().is_heartbeat());

  const std::vector<std::uint32_t> tokens{nse_token, cds_token, index_token};
  client.send(kite::subscribe_message(tokens));
  const auto quotes = client.read_until([](const auto& m) { return is_tick_frame_with(m, 3); });
  REQUIRE(quotes);
  auto ticks = ticks_of(*quotes);
  std::sort(ticks.begin(), ticks.end(), [](auto& a, auto& b) { return a.instrument_token < b.instrument_token; });
  REQUIRE(ticks.size() == 3);  // by token: index 256265, NSE 408065, CDS 703491
  CHECK(ticks[0].instrument_token == index_token);
  CHECK(ticks[0].kind == kite::PacketKind::index_quote);
  CHECK_FALSE(ticks[0].tradable());
  CHECK(ticks[1].instrument_token == nse_token);
  CHECK(ticks[1].kind == kite::PacketKind::quote);
  CHECK(ticks[1].ohlc.high >= ticks[1].last_price);
  CHECK(ticks[2].instrument_token == cds_token);
  CHECK(ticks[2].kind == kite::PacketKind::quote);
  CHECK(ticks[2].last_price > 60);  // currency prices survive the 1e7 divisor both ways
  CHECK(ticks[2].last_price < 100);
  CHECK(server.key_stats("key-a").subscriptions == 3);

  client.send(kite::mode_message(kite::Mode::full, std::vector<std::uint32_t>{nse_token, index_token}));
  client.send(kite::mode_message(kite::Mode::ltp, std::vector<std::uint32_t>{cds_token}));
  const auto mixed = client.read_until([](const auto& m) {
    if (!is_tick_frame_with(m, 3)) return false;
    std::size_t full = 0, ltp = 0;  // both mode messages applied
    for (const auto& tick : ticks_of(m)) {
      full += tick.kind == kite::PacketKind::full;
      ltp += tick.kind == kite::PacketKind::ltp;
    }
    return full == 1 && ltp == 1;
  });
  REQUIRE(mixed);
  for (const kite::Tick& tick : ticks_of(*mixed)) {
    if (tick.instrument_token == nse_token) {
      CHECK(tick.kind == kite::PacketKind::full);
      CHECK(tick.depth.buy[0].price < tick.last_price);
      CHECK(tick.depth.sell[0].price > tick.last_price);
      CHECK(tick.exchange_timestamp.time_since_epoch().count() > 0);
    } else if (tick.instrument_token == index_token) {
      CHECK(tick.kind == kite::PacketKind::index_full);
    } else {
      CHECK(tick.kind == kite::PacketKind::ltp);
    }
  }
  const auto info = server.connections("key-a");
  REQUIRE(info.size() == 1);
  CHECK(info[0].subscriptions == std::vector<std::pair<std::uint32_t, kite::Mode>>{
                                     {index_token, kite::Mode::full},
                                     {nse_token, kite::Mode::full},
                                     {cds_token, kite::Mode::ltp}});
  CHECK(eventually([&] { return server.stats().ticks_sent >= 6; }));
}

TEST_CASE("kite sim stops streaming unsubscribed instruments", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);
  client.send(kite::subscribe_message(std::vector<std::uint32_t>{nse_token, cds_token}));
  REQUIRE(client.read_until([](const auto& m) { return is_tick_frame_with(m, 2); }));

  client.send(kite::unsubscribe_message(std::vector<std::uint32_t>{nse_token}));
  const auto one = client.read_until([](const auto& m) { return is_tick_frame_with(m, 1); });
  REQUIRE(one);
  CHECK(ticks_of(*one).at(0).instrument_token == cds_token);

  client.send(kite::unsubscribe_message(std::vector<std::uint32_t>{cds_token}));
  // Ticks come every 10 ms and heartbeats only after 20 ms without a frame, so
  // five heartbeats in a row mean the stream stopped. (Frames written before
  // the request was read may still be on their way.)
  int heartbeats_in_a_row = 0;
  for (int i = 0; i < 50 && heartbeats_in_a_row < 5; ++i) {
    const auto message = client.read();
    REQUIRE(message);
    heartbeats_in_a_row = message->frame().is_heartbeat() ? heartbeats_in_a_row + 1 : 0;
  }
  CHECK(heartbeats_in_a_row == 5);
  CHECK(server.key_stats("key-a").subscriptions == 0);
}

TEST_CASE("kite sim caps instruments per connection and says so", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);

  std::vector<std::uint32_t> tokens;
  for (std::uint32_t i = 0; i < 3001; ++i) tokens.push_back((1000 + i) << 8 | 1);
  client.send(kite::subscribe_message(tokens));
  client.send(kite::mode_message(kite::Mode::ltp, tokens));
  const auto error = client.read_until([](const auto& m) { return m.text; });
  REQUIRE(error);
  const auto parsed = kite::parse_text_message(error->bytes);
  REQUIRE(parsed);
  CHECK(parsed->type == kite::TextMessage::Type::error);
  CHECK_THAT(parsed->data.get<std::string>(), Catch::Contains("1 instruments") && Catch::Contains("3000"));
  CHECK(server.key_stats("key-a").subscriptions == 3000);
  CHECK(client.read_until([](const auto& m) { return is_tick_frame_with(m, 3000); }));

  client.send("{\"a\":\"subscribe\",\"v\":\"everything\"}");
  const auto invalid = client.read_until([](const auto& m) { return m.text; });
  REQUIRE(invalid);
  CHECK(kite::parse_text_message(invalid->bytes)->data == "invalid request");
}

TEST_CASE("kite sim sends malformed frames of each kind on command", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);
  client.send(kite::subscribe_message(std::vector<std::uint32_t>{nse_token}));
  REQUIRE(client.read_until([](const auto& m) { return is_tick_frame_with(m, 1); }));

  using Kind = kite::FrameError::Kind;
  for (const Kind kind : {Kind::empty_frame, Kind::count_overruns_frame, Kind::truncated_packet,
                          Kind::trailing_bytes}) {
    INFO(kite::to_string(kind));
    CHECK(server.send_malformed_frame("key-a", kind) == 1);
    const auto bad = client.read_until([](const auto& m) { return !m.text && !m.frame().ok(); });
    REQUIRE(bad);
    CHECK(bad->frame().error()->kind == kind);
  }
  CHECK(eventually([&] { return server.stats().malformed_frames_sent == 4; }));
  // The connection carries on streaming good frames.
  CHECK(client.read_until([](const auto& m) { return is_tick_frame_with(m, 1); }));
}

TEST_CASE("kite sim drops connections on command", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client first, second;
  const std::string target = "/?api_key=key-a&access_token=access-token-a-123456";
  REQUIRE(first.connect(server.port(), target) == http::status::switching_protocols);
  REQUIRE(second.connect(server.port(), target) == http::status::switching_protocols);
  REQUIRE(eventually([&] { return server.key_stats("key-a").connections == 2; }));

  CHECK(server.drop_connections("key-a", 1) == 1);  // the newest
  CHECK(server.key_stats("key-a").connections == 1);
  for (int i = 0; i < 50 && second.read(); ++i) {  // what was in flight, then the close
  }
  CHECK(second.error());  // closed under it, not a timeout
  CHECK(second.error() != beast::error::timeout);
  CHECK(first.read());  // the other one lives on

  CHECK(server.drop_connections("key-a") == 1);
  CHECK(server.key_stats("key-a").connections == 0);
  Client again;
  CHECK(again.connect(server.port(), target) == http::status::switching_protocols);
}

TEST_CASE("kite sim connections go silent without closing", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);
  client.send(kite::subscribe_message(std::vector<std::uint32_t>{nse_token}));
  REQUIRE(client.read_until([](const auto& m) { return is_tick_frame_with(m, 1); }));

  CHECK(server.silence_connections("key-a") == 1);
  CHECK(server.connections("key-a").at(0).silent);
  int drained = 0;  // frames already written before the command, still in the socket buffers
  while (drained < 50 && client.read(300ms)) ++drained;
  CHECK(drained < 10);
  // Nothing for 300 ms, yet no close or error either: the server kept the
  // socket open. (The test client closes it after the timed-out read.)
  CHECK(client.error() == beast::error::timeout);
}

TEST_CASE("kite sim stop closes every connection and is idempotent", "[kite][sim]") {
  KiteTickerServer server(test_options());
  server.start();
  Client client;
  REQUIRE(client.connect(server.port(), client.target("key-a", "access-token-a-123456")) ==
          http::status::switching_protocols);
  server.stop();
  CHECK(server.stats().connections == 0);
  for (int i = 0; i < 50 && client.read(); ++i) {
  }
  CHECK(client.error());
  CHECK(client.error() != beast::error::timeout);
  server.stop();
  CHECK_THROWS_AS(server.start(), floodgate::Error);
  CHECK_THROWS_AS(KiteTickerServer({.keys = {{"k", Secret("t")}, {"k", Secret("u")}}}), floodgate::Error);
}

TEST_CASE("kite frame encoder is the inverse of the frame parser", "[kite][sim]") {
  kite::Tick full;
  full.instrument_token = nse_token;
  full.last_price = 4084.05;
  full.last_traded_quantity = 3;
  full.average_traded_price = 4080.5;
  full.volume_traded = 99;
  full.total_buy_quantity = 10;
  full.total_sell_quantity = 20;
  full.ohlc = {4000, 4100, 3990, 4050};
  full.last_trade_time = kite::Tick::seconds{1700000000s};
  full.exchange_timestamp = kite::Tick::seconds{1700000001s};
  full.oi = 7;
  full.oi_day_high = 8;
  full.oi_day_low = 6;
  for (std::size_t i = 0; i < 5; ++i) {
    full.depth.buy[i] = {static_cast<std::uint32_t>(i + 1), 4084.0 - static_cast<double>(i), 2};
    full.depth.sell[i] = {static_cast<std::uint32_t>(i + 9), 4085.0 + static_cast<double>(i), 3};
  }
  kite::Tick index = full;
  index.instrument_token = index_token;
  index.net_change = -12.25;
  kite::Tick currency = full;
  currency.instrument_token = cds_token;
  currency.last_price = 83.1234567;

  floodgate::sim::KiteFrameEncoder encoder;
  for (const kite::Mode mode : {kite::Mode::ltp, kite::Mode::quote, kite::Mode::full}) {
    for (const kite::Tick* tick : {&full, &index, &currency}) encoder.add(*tick, mode);
  }
  const kite::FrameView frame(encoder.bytes());
  REQUIRE(frame.ok());
  REQUIRE(frame.size() == 9);

  std::vector<kite::Tick> decoded;
  for (const kite::PacketView packet : frame) decoded.push_back(packet.decode());
  CHECK(decoded[0].kind == kite::PacketKind::ltp);
  CHECK(decoded[4].kind == kite::PacketKind::index_quote);
  CHECK(decoded[4].net_change == -12.25);
  CHECK(decoded[5].last_price == 83.1234567);
  CHECK(decoded[6].kind == kite::PacketKind::full);
  CHECK(decoded[6].depth == full.depth);
  CHECK(decoded[6].exchange_timestamp == full.exchange_timestamp);
  CHECK(decoded[7].kind == kite::PacketKind::index_full);
  CHECK(decoded[7].exchange_timestamp == full.exchange_timestamp);

  // Decoded ticks re-encode to the very same bytes.
  floodgate::sim::KiteFrameEncoder again;
  for (std::size_t i = 0; i < decoded.size(); ++i) again.add(decoded[i], decoded[i].mode());
  CHECK(std::equal(again.bytes().begin(), again.bytes().end(), encoder.bytes().begin(), encoder.bytes().end()));

  const kite::FrameView beat(floodgate::sim::KiteFrameEncoder::heartbeat());
  CHECK(beat.is_heartbeat());
}

TEST_CASE("kite sim serves wss with a certificate the client verifies", "[kite][sim]") {
  const auto certs = floodgate::sim::TestCertificates::generate();
  auto options = test_options();
  options.tls = floodgate::net::make_server_tls_context(certs.server_chain_pem, certs.server_key_pem);
  KiteTickerServer server(std::move(options));
  server.start();
  CHECK(server.url().rfind("wss://127.0.0.1:", 0) == 0);

  const auto client_tls = floodgate::net::make_client_tls_context({.ca_pem = certs.ca_pem});
  asio::io_context io;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(io, *client_tls);
  beast::get_lowest_layer(ws).connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  REQUIRE_FALSE(floodgate::net::set_tls_peer_name(ws.next_layer().native_handle(), "127.0.0.1"));
  ws.next_layer().handshake(asio::ssl::stream_base::client);  // throws if verification fails
  ws.handshake("127.0.0.1", "/?api_key=key-a&access_token=access-token-a-123456");
  ws.text(true);
  ws.write(asio::buffer(kite::subscribe_message(std::vector<std::uint32_t>{nse_token})));

  for (int i = 0; i < 50; ++i) {  // heartbeats until the subscription is applied
    beast::flat_buffer buffer;
    ws.read(buffer);
    const std::string bytes = beast::buffers_to_string(buffer.data());
    const kite::FrameView frame(bytes.data(), bytes.size());
    if (frame.is_heartbeat()) continue;
    REQUIRE(frame.ok());
    REQUIRE(frame.size() == 1);
    CHECK((*frame.begin()).decode().instrument_token == nse_token);
    break;
  }
  CHECK(eventually([&] { return server.stats().frames_sent >= 1; }));  // counted once the write completes
  CHECK(server.key_stats("key-a").connections == 1);
}
