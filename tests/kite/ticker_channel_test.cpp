#include <floodgate/kite/ticker_channel.hpp>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace kite = floodgate::kite;

namespace {
std::vector<int> drain(floodgate::async::RecyclingRing<int>& ring) {
  std::vector<int> out;
  while (!ring.empty()) {
    out.push_back(ring.front());
    ring.pop_front();
  }
  return out;
}
}  // namespace

TEST_CASE("RecyclingRing keeps first-in order across wrap-around and growth", "[kite][channel]") {
  floodgate::async::RecyclingRing<int> ring;
  for (int i = 0; i < 6; ++i) ring.push_back(i);
  CHECK(drain(ring) == std::vector<int>{0, 1, 2, 3, 4, 5});
  REQUIRE(ring.capacity() == 8);
  // The head is at slot 6: these wrap around, then the ring grows while wrapped.
  for (int i = 10; i < 30; ++i) ring.push_back(i);
  CHECK(ring.size() == 20);
  CHECK(ring.capacity() == 32);
  std::vector<int> expected;
  for (int i = 10; i < 30; ++i) expected.push_back(i);
  CHECK(drain(ring) == expected);
}

TEST_CASE("RecyclingRing keeps its storage and frees elements when they leave", "[kite][channel]") {
  floodgate::async::RecyclingRing<std::shared_ptr<std::string>> ring;
  const auto value = std::make_shared<std::string>("tick");
  for (int i = 0; i < 20; ++i) ring.push_back(value);
  const auto grown = ring.capacity();
  CHECK(value.use_count() == 21);
  ring.pop_front();
  CHECK(value.use_count() == 20);  // a popped element is destroyed at once, not when its slot is reused
  ring.clear();
  CHECK(value.use_count() == 1);
  CHECK(ring.empty());
  CHECK(ring.capacity() == grown);  // nothing given back

  floodgate::async::RecyclingRing<std::shared_ptr<std::string>> moved_to;
  ring.push_back(value);
  moved_to = std::move(ring);
  CHECK(moved_to.size() == 1);
  CHECK(ring.size() == 0);  // NOLINT(bugprone-use-after-move): a moved-from ring is empty
  CHECK(*moved_to.front() == "tick");
}

TEST_CASE("TickerChannel completes with std::error_code: messages, cancel and close", "[kite][channel]") {
  boost::asio::io_context io;
  kite::TickerChannel channel(io.get_executor(), 4);

  REQUIRE(channel.try_send(std::error_code{}, kite::TickerMessage{}));
  std::optional<std::error_code> received;
  channel.async_receive([&](std::error_code ec, kite::TickerMessage) { received = ec; });
  io.run();
  REQUIRE(received.has_value());
  CHECK(!*received);

  std::optional<std::error_code> cancelled;
  channel.async_receive([&](std::error_code ec, kite::TickerMessage message) {
    cancelled = ec;
    CHECK(message.source == nullptr);
  });
  channel.cancel();
  io.restart();
  io.run();
  REQUIRE(cancelled.has_value());
  CHECK(*cancelled == floodgate::errc::cancelled);
  CHECK(*cancelled == std::errc::operation_canceled);

  // A fresh channel for close: after a cancelled receive, Asio 1.81's channel
  // refuses try_send until the next receive starts (its cancel() leaves the
  // send state at `block`, not `buffer`).
  kite::TickerChannel closing(io.get_executor(), 4);
  REQUIRE(closing.try_send(std::error_code{}, kite::TickerMessage{}));
  closing.close();  // discards what is buffered
  std::optional<std::error_code> closed;
  closing.async_receive([&](std::error_code ec, kite::TickerMessage message) {
    closed = ec;
    CHECK(message.source == nullptr);
  });
  io.restart();
  io.run();
  REQUIRE(closed.has_value());
  CHECK(*closed == floodgate::errc::shut_down);
  CHECK(!closing.try_send(std::error_code{}, kite::TickerMessage{}));
}
