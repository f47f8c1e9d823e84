// The Kite ticker client side against sim::KiteTickerServer over real sockets
// on 127.0.0.1: the reconnect backoff (pure, its schedule in virtual time, and
// against a server that accepts and drops), TickerConnection (subscribe /
// mode / unsubscribe, reconnect restoring every subscription and mode, the
// liveness watchdog, 403 and 429 on the upgrade, no HTTP status without a
// reply, malformed frames, packets of unknown length, hostile text messages,
// a new access token after expiry, stop, wss with the simulator's run-time
// CA), TickerManager (connections per key, spreading and batching,
// capacity errors, mode changes, release) and MultiKeyTickerManager
// (option checks, round-robin and manual placement, channels, failover of a
// refused, a down and an accept-and-drop key, token refresh with
// on_auth_failed, stop, slow consumers with and without conflation, and no
// secret in any log line, stat or error text), then batched delivery (pooled
// TickBatch storage, one batch per frame), the official clients' events, and
// keys in the status table and Prometheus text.
//
// Every timing is short (ticks every 20 ms, heartbeats every 100 ms, a
// watchdog of 300 ms where it is under test and 1 s elsewhere, reconnects
// after tens of ms) and every wait polls a condition with a deadline instead
// of sleeping a fixed time.
#include <floodgate/core/clock.hpp>
#include <floodgate/core/error.hpp>
#include <floodgate/core/format.hpp>
#include <floodgate/core/log.hpp>
#include <floodgate/core/secret.hpp>
#include <floodgate/kite/multi_api_manager.hpp>
#include <floodgate/kite/reconnect_backoff.hpp>
#include <floodgate/kite/ticker_connection.hpp>
#include <floodgate/kite/ticker_manager.hpp>
#include <floodgate/net/error.hpp>
#include <floodgate/sim/test_certificates.hpp>
#include <floodgate/net/tls.hpp>
#include <floodgate/sim/kite_ticker_server.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace kite = floodgate::kite;
using floodgate::Secret;
using floodgate::sim::KiteTickerServer;
using kite::ConnectionState;
using kite::Mode;
using namespace std::chrono_literals;

namespace {

constexpr const char* key_a = "kitekey-a";
constexpr const char* token_a = "tok-a-5d2f81c9e0";
constexpr const char* key_b = "kitekey-b";
constexpr const char* token_b = "tok-b-a17e44b3d6";

constexpr std::uint32_t nse_token = 408065;    // segment 1: divisor 100
constexpr std::uint32_t cds_token = 0x0ABC03;  // segment 3: divisor 1e7
constexpr std::uint32_t index_token = 256265;  // segment 9: index packets

using Subscriptions = std::vector<std::pair<std::uint32_t, Mode>>;

floodgate::sim::KiteTickerServerOptions server_options() {
  floodgate::sim::KiteTickerServerOptions options;
  options.keys = {{key_a, Secret(token_a)}, {key_b, Secret(token_b)}};
  options.ticks_per_second = 50;
  options.heartbeat_interval = 100ms;
  return options;
}

/// `count` NSE instrument tokens (segment 1) starting at instrument number `first`.
std::vector<std::uint32_t> nse_tokens(std::size_t count, std::uint32_t first = 1000) {
  std::vector<std::uint32_t> tokens;
  for (std::uint32_t i = 0; i < count; ++i) tokens.push_back((first + i) << 8 | 1);
  return tokens;
}

Subscriptions with_mode(const std::vector<std::uint32_t>& tokens, Mode mode) {
  Subscriptions out;
  for (const auto token : tokens) out.emplace_back(token, mode);
  return out;
}

Subscriptions sorted(Subscriptions subscriptions) {
  std::sort(subscriptions.begin(), subscriptions.end());
  return subscriptions;
}

/// Polls `condition` every millisecond; false if it did not hold within `limit`.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// True if `condition` holds for the whole of `period` (checked every millisecond).
bool holds_for(const std::function<bool()>& condition, std::chrono::milliseconds period) {
  return !eventually([&] { return !condition(); }, period);
}

/// Waits until `value()` stays the same for `quiet` (a counter once its
/// stream stopped); false if it still changed after `limit`.
bool settles(const std::function<std::uint64_t()>& value, std::chrono::milliseconds quiet,
             std::chrono::milliseconds limit = 5s) {
  auto last = value();
  return eventually(
      [&] {
        if (holds_for([&] { return value() == last; }, quiet)) return true;
        last = value();
        return false;
      },
      limit);
}

/// Everything the server streams to `api_key`, over all its connections, sorted.
Subscriptions server_subscriptions(const KiteTickerServer& server, std::string_view api_key) {
  Subscriptions all;
  for (const auto& connection : server.connections(api_key)) {
    all.insert(all.end(), connection.subscriptions.begin(), connection.subscriptions.end());
  }
  return sorted(std::move(all));
}

/// An io_context on two background threads for one test. When the test ends,
/// everything it started must have stopped: the threads are given a few
/// seconds to run out of work, and the test fails if they do not.
class IoThreads {
 public:
  IoThreads() {
    for (int i = 0; i < 2; ++i) {
      threads_.emplace_back([this] {
        io_.run();
        ++finished_;
      });
    }
  }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  ~IoThreads() {
    guard_.reset();
    const bool ran_out_of_work = eventually([&] { return finished_ == threads_.size(); }, 5s);
    if (!ran_out_of_work) io_.stop();
    for (auto& thread : threads_) thread.join();
    CHECK(ran_out_of_work);  // else an operation outlived stop(): a timer or socket still pending
  }

  asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> finished_{0};
};

/// What a connection's handlers saw, readable from the test thread.
class Recorder {
 public:
  kite::TickerConnection::Handlers handlers() {
    return {
        .on_frame =
            [this](const kite::FrameView& frame) {
              std::lock_guard lock(mutex_);
              for (const kite::PacketView packet : frame) {
                const kite::Tick tick = packet.decode();
                last_[tick.instrument_token] = tick;
                ++counts_[tick.instrument_token];
              }
            },
        .on_text = {},
        .on_state =
            [this](ConnectionState state, std::error_code) {
              std::lock_guard lock(mutex_);
              states_.push_back(state);
            },
    };
  }

  std::size_t count(std::uint32_t token) const {
    std::lock_guard lock(mutex_);
    const auto it = counts_.find(token);
    return it == counts_.end() ? 0 : it->second;
  }
  std::optional<kite::Tick> last(std::uint32_t token) const {
    std::lock_guard lock(mutex_);
    const auto it = last_.find(token);
    return it == last_.end() ? std::nullopt : std::optional(it->second);
  }
  std::size_t total() const {
    std::lock_guard lock(mutex_);
    std::size_t sum = 0;
    for (const auto& [token, n] : counts_) sum += n;
    return sum;
  }
  std::vector<ConnectionState> states() const {
    std::lock_guard lock(mutex_);
    return states_;
  }
  bool saw(ConnectionState state) const {
    const auto all = states();
    return std::find(all.begin(), all.end(), state) != all.end();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uint32_t, kite::Tick> last_;
  std::map<std::uint32_t, std::size_t> counts_;
  std::vector<ConnectionState> states_;
};

kite::ConnectionSettings settings_for(const KiteTickerServer& server) {
  kite::ConnectionSettings settings;
  settings.url = server.url();
  settings.allow_plain_ws = true;
  settings.connect_timeout = 2s;
  settings.watchdog_timeout = 1s;  // 10 heartbeats: no false alarm on a loaded CI machine
  settings.reconnect = {.floor = 20ms, .cap = 100ms, .max_attempts = 0};
  return settings;
}

floodgate::KiteKey kite_key(const char* api_key, const char* access_token) {
  return {Secret(api_key), Secret(access_token)};
}

bool is_connected(const kite::TickerConnection& connection) {
  return connection.stats().state == ConnectionState::connected;
}

}  // namespace

// ---- backoff_delay and ReconnectBackoff (pure, virtual time) --------------------------------

TEST_CASE("kite backoff_delay draws from floor to a doubling ceiling, capped", "[kite][ticker][backoff]") {
  const kite::ReconnectPolicy policy{.floor = 100ms, .cap = 1000ms};
  // unit_random 0: the floor, always; 1: the ceiling.
  for (const std::size_t failures : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{64}}) {
    CHECK(kite::backoff_delay(policy, failures, 0.0) == 100ms);
  }
  CHECK(kite::backoff_delay(policy, 1, 1.0) == 100ms);  // the first retry waits exactly the floor
  CHECK(kite::backoff_delay(policy, 2, 1.0) == 200ms);
  CHECK(kite::backoff_delay(policy, 3, 1.0) == 400ms);
  CHECK(kite::backoff_delay(policy, 4, 1.0) == 800ms);
  CHECK(kite::backoff_delay(policy, 5, 1.0) == 1000ms);  // 1600 capped
  CHECK(kite::backoff_delay(policy, 3, 0.5) == 250ms);
  // Far past the point where 2^(n-1) overflows any integer type.
  CHECK(kite::backoff_delay(policy, 1000, 1.0) == 1000ms);
  CHECK(kite::backoff_delay(policy, std::numeric_limits<std::size_t>::max(), 1.0) == 1000ms);
  // Out-of-range randoms are clamped; a cap below the floor is the floor.
  CHECK(kite::backoff_delay(policy, 3, 7.0) == 400ms);
  CHECK(kite::backoff_delay(policy, 3, -1.0) == 100ms);
  CHECK(kite::backoff_delay({.floor = 100ms, .cap = 10ms}, 9, 1.0) == 100ms);
}

TEST_CASE("kite backoff_delay spreads the pauses over the whole range (full jitter)", "[kite][ticker][backoff]") {
  const kite::ReconnectPolicy policy{.floor = 40ms, .cap = 5000ms};
  for (std::size_t failures = 2; failures <= 12; ++failures) {
    const auto ceiling = std::min<std::chrono::milliseconds>(5000ms, 40ms * (1LL << (failures - 1)));
    std::set<std::chrono::milliseconds::rep> distinct;
    for (int i = 0; i <= 100; ++i) {
      const auto delay = kite::backoff_delay(policy, failures, i / 100.0);
      INFO("failures " << failures << ", delay " << delay.count() << " ms");
      CHECK(delay >= 40ms);
      CHECK(delay <= ceiling);
      distinct.insert(delay.count());
    }
    CHECK(distinct.size() >= std::min<std::size_t>(50, static_cast<std::size_t>((ceiling - 40ms).count())));
  }
}

namespace {

/// Runs ReconnectBackoff against a server that accepts every upgrade and
/// drops it `lives_for` later (after `data_after`, if set, data arrives), in
/// virtual time: returns the pauses in order, until it gives up or `limit`.
struct Schedule {
  std::vector<std::chrono::milliseconds> pauses;
  bool gave_up = false;
};

Schedule accept_and_drop(floodgate::ManualClock& clock, kite::ReconnectBackoff<floodgate::ManualClock>& backoff,
                         std::chrono::milliseconds lives_for, std::optional<std::chrono::milliseconds> data_after,
                         double unit_random, std::size_t limit) {
  Schedule schedule;
  while (schedule.pauses.size() < limit) {
    backoff.opened();
    if (data_after) {
      clock.advance(*data_after);
      backoff.data(clock.now());
      clock.advance(lives_for - *data_after);
    } else {
      clock.advance(lives_for);
    }
    const auto next = backoff.failed(clock.now(), unit_random);
    if (next.give_up) {
      schedule.gave_up = true;
      break;
    }
    schedule.pauses.push_back(next.delay);
    clock.advance(next.delay);
  }
  return schedule;
}

}  // namespace

TEST_CASE("kite reconnect backoff: accept-then-drop backs off like a refusal and gives up", "[kite][ticker][backoff]") {
  floodgate::ManualClock clock;
  using P = std::vector<std::chrono::milliseconds>;

  SECTION("dropped 50 ms after every accept, no data: 1, 2, 4, 8 s ... 60 s, gives up at the 10th") {
    kite::ReconnectBackoff<floodgate::ManualClock> backoff({.floor = 1s, .cap = 60s, .max_attempts = 10});
    const auto schedule = accept_and_drop(clock, backoff, 50ms, std::nullopt, 1.0, 100);
    CHECK(schedule.pauses == P{1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s});
    CHECK(schedule.gave_up);
    CHECK(backoff.failures_in_a_row() == 10);
  }
  SECTION("the same with the smallest random draw never goes under the floor") {
    kite::ReconnectBackoff<floodgate::ManualClock> backoff({.floor = 1s, .cap = 60s, .max_attempts = 5});
    const auto schedule = accept_and_drop(clock, backoff, 50ms, std::nullopt, 0.0, 100);
    CHECK(schedule.pauses == P{1s, 1s, 1s, 1s});
    CHECK(schedule.gave_up);
  }
  SECTION("data that flowed for less than healthy_after does not reset the count") {
    kite::ReconnectBackoff<floodgate::ManualClock> backoff(
        {.floor = 1s, .cap = 60s, .healthy_after = 30s, .max_attempts = 0});
    const auto schedule = accept_and_drop(clock, backoff, 29s, 10ms, 1.0, 6);
    CHECK(schedule.pauses == P{1s, 2s, 4s, 8s, 16s, 32s});
    CHECK_FALSE(schedule.gave_up);
  }
  SECTION("a connection healthy for healthy_after starts the count over") {
    kite::ReconnectBackoff<floodgate::ManualClock> backoff(
        {.floor = 1s, .cap = 60s, .healthy_after = 30s, .max_attempts = 3});
    CHECK(accept_and_drop(clock, backoff, 50ms, std::nullopt, 1.0, 2).pauses == P{1s, 2s});
    // Data from 10 ms after the upgrade until 30.01 s: healthy, so its loss is failure 1 again.
    CHECK(accept_and_drop(clock, backoff, 30010ms, 10ms, 1.0, 2).pauses == P{1s, 1s});
    CHECK(backoff.failures_in_a_row() == 1);
    // Connected for an hour without data (upgraded, silent): not healthy.
    backoff.opened();
    clock.advance(1h);
    CHECK(backoff.failed(clock.now(), 1.0).delay == 2s);
  }
  SECTION("reset() forgets the failures") {
    kite::ReconnectBackoff<floodgate::ManualClock> backoff({.floor = 1s, .cap = 60s, .max_attempts = 3});
    CHECK(accept_and_drop(clock, backoff, 50ms, std::nullopt, 1.0, 2).pauses == P{1s, 2s});
    backoff.reset();
    CHECK(backoff.failed(clock.now(), 1.0).delay == 1s);
  }
}

// ---- TickerConnection ----------------------------------------------------------------------

TEST_CASE("kite connection subscribes, streams each mode and unsubscribes", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        recorder.handlers());
  // Subscribed before the start: sent once the connection is up.
  connection.subscribe({nse_token}, Mode::full);
  connection.start();
  REQUIRE(eventually([&] { return is_connected(connection); }));
  connection.subscribe({index_token}, Mode::full);
  connection.subscribe({cds_token}, Mode::ltp);

  const Subscriptions expected{{index_token, Mode::full}, {nse_token, Mode::full}, {cds_token, Mode::ltp}};
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == expected; }));
  CHECK(server.connections(key_a).size() == 1);
  CHECK(connection.stats().subscriptions == 3);

  // Ticks arrive decoded, in the layout of the mode asked for (the server
  // starts new subscriptions in quote, so wait for the mode to apply).
  const auto latest_kind_is = [&](std::uint32_t token, kite::PacketKind kind) {
    const auto tick = recorder.last(token);
    return tick && tick->kind == kind;
  };
  REQUIRE(eventually([&] {
    return latest_kind_is(nse_token, kite::PacketKind::full) && latest_kind_is(index_token, kite::PacketKind::index_full) &&
           latest_kind_is(cds_token, kite::PacketKind::ltp);
  }));
  const kite::Tick nse = *recorder.last(nse_token);
  CHECK(nse.last_price > 100);
  CHECK(nse.depth.buy[0].price < nse.last_price);
  CHECK(nse.depth.sell[0].price > nse.last_price);
  CHECK(recorder.last(index_token)->is_index());
  CHECK(recorder.last(cds_token)->last_price > 60);  // the 1e7 currency divisor was applied
  CHECK(recorder.last(cds_token)->last_price < 100);

  // set_mode changes subscribed tokens only.
  connection.set_mode({cds_token, 777 << 8 | 1}, Mode::quote);
  REQUIRE(eventually([&] {
    return server_subscriptions(server, key_a) ==
           Subscriptions{{index_token, Mode::full}, {nse_token, Mode::full}, {cds_token, Mode::quote}};
  }));
  REQUIRE(eventually([&] { return latest_kind_is(cds_token, kite::PacketKind::quote); }));

  connection.unsubscribe({nse_token});
  REQUIRE(eventually([&] {
    return server_subscriptions(server, key_a) == Subscriptions{{index_token, Mode::full}, {cds_token, Mode::quote}};
  }));
  CHECK(connection.stats().subscriptions == 2);
  // Frames already on the wire may still carry it; after a few more frames it is gone.
  const auto cds_now = recorder.count(cds_token);
  REQUIRE(eventually([&] { return recorder.count(cds_token) >= cds_now + 3; }));
  const auto nse_after = recorder.count(nse_token);
  const auto cds_later = recorder.count(cds_token);
  REQUIRE(eventually([&] { return recorder.count(cds_token) >= cds_later + 5; }));
  CHECK(recorder.count(nse_token) == nse_after);

  const auto stats = connection.stats();
  CHECK(stats.state == ConnectionState::connected);
  CHECK(stats.connects == 1);
  CHECK(stats.reconnects == 0);
  CHECK(stats.failed_attempts == 0);
  CHECK(stats.frames > 0);
  CHECK(stats.ticks >= stats.frames);
  CHECK(stats.malformed_frames == 0);
  CHECK(recorder.states().front() == ConnectionState::connecting);
  CHECK(recorder.saw(ConnectionState::connected));
}

TEST_CASE("kite connection reconnects after a drop and restores every subscription and mode", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        recorder.handlers());
  connection.start();
  const auto full = nse_tokens(40, 1000), quote = nse_tokens(40, 2000), ltp = nse_tokens(40, 3000);
  connection.subscribe(full, Mode::full);
  connection.subscribe(quote, Mode::quote);
  connection.subscribe(ltp, Mode::ltp);
  connection.set_mode({ltp.front()}, Mode::full);  // one token moves to another mode group
  Subscriptions expected = with_mode(full, Mode::full);
  for (const auto& s : with_mode(quote, Mode::quote)) expected.push_back(s);
  for (const auto& s : with_mode(ltp, Mode::ltp)) expected.push_back(s);
  expected[80].second = Mode::full;  // ltp.front()
  expected = sorted(expected);

  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == expected; }));
  const auto first_id = server.connections(key_a).at(0).id;
  const auto requests_before = server.stats().requests_received;

  for (int drop = 1; drop <= 2; ++drop) {
    INFO("drop " << drop);
    REQUIRE(server.drop_connections(key_a) == 1);
    REQUIRE(eventually([&] { return connection.stats().reconnects == static_cast<std::uint64_t>(drop); }));
    REQUIRE(eventually([&] {
      const auto connections = server.connections(key_a);
      return connections.size() == 1 && connections[0].id != first_id &&
             sorted(connections[0].subscriptions) == expected;
    }));
  }
  // Each reconnect restores the lot in one subscribe message plus one mode
  // message per mode group (full, quote, ltp), not one message per token.
  CHECK(eventually([&] { return server.stats().requests_received == requests_before + 2 * 4; }));
  CHECK(holds_for([&] { return server.stats().requests_received == requests_before + 2 * 4; }, 100ms));

  // Ticks flow again, in the restored modes.
  const auto before = recorder.count(full.front());
  CHECK(eventually([&] { return recorder.count(full.front()) > before + 3; }));
  CHECK(recorder.last(full.front())->kind == kite::PacketKind::full);
  CHECK(recorder.last(ltp.back())->kind == kite::PacketKind::ltp);
  CHECK(recorder.last(ltp.front())->kind == kite::PacketKind::full);

  const auto stats = connection.stats();
  CHECK(stats.connects == 3);
  CHECK(stats.reconnects == 2);
  CHECK(stats.subscriptions == 120);
  CHECK(stats.last_error == floodgate::net::errc::connection_closed);
  CHECK(recorder.saw(ConnectionState::waiting_to_reconnect));
  CHECK(server.key_stats(key_a).connections_accepted == 3);
}

TEST_CASE("kite connection watchdog replaces a silent connection and resubscribes", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  auto settings = settings_for(server);
  settings.watchdog_timeout = 300ms;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings,
                                        recorder.handlers());
  connection.start();
  REQUIRE(eventually([&] { return is_connected(connection); }));

  // Heartbeats alone (100 ms) keep a connection with no subscription alive.
  CHECK(holds_for([&] { return connection.stats().watchdog_timeouts == 0; }, 700ms));
  CHECK(connection.stats().heartbeats >= 3);

  const auto tokens = nse_tokens(5);
  connection.subscribe(tokens, Mode::ltp);
  REQUIRE(eventually([&] { return recorder.count(tokens.back()) > 0; }));
  CHECK(holds_for([&] { return connection.stats().watchdog_timeouts == 0; }, 400ms));

  const auto silenced_at = std::chrono::steady_clock::now();
  REQUIRE(server.silence_connections(key_a) == 1);
  REQUIRE(eventually([&] { return connection.stats().watchdog_timeouts >= 1; }, 3s));
  const auto detected_after = std::chrono::steady_clock::now() - silenced_at;
  CHECK(detected_after >= 250ms);  // not before the timeout (a frame may have been in flight)
  CHECK(detected_after < 2s);

  // The replacement connection gets the subscriptions back and ticks flow.
  REQUIRE(eventually([&] {
    const auto connections = server.connections(key_a);
    return connections.size() == 1 && !connections[0].silent &&
           sorted(connections[0].subscriptions) == with_mode(tokens, Mode::ltp);
  }));
  const auto before = recorder.count(tokens.front());
  CHECK(eventually([&] { return recorder.count(tokens.front()) > before + 3; }));
  const auto stats = connection.stats();
  CHECK(stats.reconnects == 1);
  CHECK(stats.watchdog_timeouts == 1);
  CHECK(stats.last_error == floodgate::net::errc::timeout);
  CHECK(stats.state == ConnectionState::connected);
}

TEST_CASE("kite connection stops for good on 403 instead of retrying", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, "wrong-token-0000"),
                                        settings_for(server), recorder.handlers());
  connection.subscribe(nse_tokens(3), Mode::quote);
  connection.start();
  REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::auth_failed; }));
  CHECK(recorder.saw(ConnectionState::auth_failed));

  // Many backoff periods (20 ms..100 ms) later: still one attempt in all.
  CHECK(holds_for([&] { return server.key_stats(key_a).rejected_auth == 1; }, 400ms));
  const auto stats = connection.stats();
  CHECK(stats.state == ConnectionState::auth_failed);
  CHECK(stats.failed_attempts == 1);
  CHECK(stats.connects == 0);
  CHECK(stats.last_http_status == 403);
  CHECK(stats.last_error == floodgate::errc::auth_failed);
  CHECK(server.key_stats(key_a).connections_accepted == 0);

  // A final state stays final: starting again does nothing.
  connection.start();
  CHECK(holds_for([&] { return server.key_stats(key_a).rejected_auth == 1; }, 100ms));
}

TEST_CASE("kite connection backs off a server that accepts and drops, and gives up", "[kite][ticker][backoff]") {
  KiteTickerServer server(server_options());
  server.start();
  server.set_drop_on_accept(key_a, true);
  std::mutex mutex;
  std::vector<std::pair<std::size_t, std::chrono::milliseconds>> announced;  // (failures, pause)
  std::vector<std::chrono::steady_clock::time_point> dials;
  std::vector<ConnectionState> states;
  kite::TickerConnection::Handlers handlers{
      .on_state =
          [&](ConnectionState state, std::error_code) {
            std::lock_guard lock(mutex);
            states.push_back(state);
            if (state == ConnectionState::connecting) dials.push_back(std::chrono::steady_clock::now());
          },
      .on_reconnect =
          [&](std::size_t failures, std::chrono::milliseconds pause) {
            std::lock_guard lock(mutex);
            announced.emplace_back(failures, pause);
          },
  };
  auto settings = settings_for(server);
  settings.reconnect = {.floor = 20ms, .cap = 160ms, .max_attempts = 6};
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings, handlers);
  connection.subscribe(nse_tokens(3), Mode::quote);
  connection.start();

  REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::gave_up; }));
  // Every upgrade was accepted and dropped: six connections, then no more.
  CHECK(holds_for([&] { return server.key_stats(key_a).connections_accepted == 6; }, 300ms));
  const auto stats = connection.stats();
  CHECK(stats.connects == 6);
  CHECK(stats.failed_attempts == 0);
  CHECK(stats.failures_in_a_row == 6);

  std::lock_guard lock(mutex);
  // Never "connected": no data ever flowed.
  CHECK(std::find(states.begin(), states.end(), ConnectionState::connected) == states.end());
  // The schedule: failure n waits within [floor, min(cap, floor * 2^(n-1))],
  // and the next dial came no sooner than that.
  REQUIRE(announced.size() == 5);
  REQUIRE(dials.size() == 6);
  for (std::size_t n = 1; n <= announced.size(); ++n) {
    const auto [failures, pause] = announced[n - 1];
    const auto ceiling = std::min<std::chrono::milliseconds>(160ms, 20ms * (1 << (n - 1)));
    INFO("failure " << n << ": pause " << pause.count() << " ms");
    CHECK(failures == n);
    CHECK(pause >= 20ms);
    CHECK(pause <= ceiling);
    CHECK(dials[n] - dials[n - 1] >= pause);
  }
}

TEST_CASE("kite connection reports no HTTP status for an attempt that got no HTTP reply", "[kite][ticker]") {
  // A TCP server that accepts and closes without a byte of reply.
  asio::io_context server_io;
  asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
  std::atomic<int> accepted{0};
  std::function<void()> accept_next = [&] {
    acceptor.async_accept([&](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      ++accepted;
      boost::system::error_code ignored;
      socket.close(ignored);
      accept_next();
    });
  };
  accept_next();
  std::thread server_thread([&] { server_io.run(); });

  kite::ConnectionSettings settings;
  settings.url = fmt::format("ws://127.0.0.1:{}", acceptor.local_endpoint().port());
  settings.allow_plain_ws = true;
  settings.connect_timeout = 2s;
  settings.reconnect = {.floor = 10ms, .cap = 10ms, .max_attempts = 2};
  {
    IoThreads io;
    kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings, {});
    connection.start();
    REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::gave_up; }));
    const auto stats = connection.stats();
    CHECK(stats.failed_attempts == 2);
    CHECK(stats.last_http_status == 0);
    CHECK(stats.last_error == floodgate::net::errc::connection_closed);
  }
  CHECK(accepted == 2);
  asio::post(server_io, [&] { acceptor.close(); });
  server_thread.join();
}

TEST_CASE("kite connection refused after its token expired comes back with a new token, in every mode",
          "[kite][ticker][token]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        recorder.handlers());
  const auto full = nse_tokens(5, 1000), ltp = nse_tokens(5, 2000);
  connection.subscribe(full, Mode::full);
  connection.subscribe(ltp, Mode::ltp);
  connection.start();
  Subscriptions expected = with_mode(full, Mode::full);
  for (const auto& s : with_mode(ltp, Mode::ltp)) expected.push_back(s);
  expected = sorted(expected);
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == expected; }));

  // The daily expiry: the session ends, the old token gets 403.
  server.set_access_token(key_a, Secret("tok-a-next-day-77"));
  REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::auth_failed; }));
  CHECK(holds_for([&] { return server.key_stats(key_a).rejected_auth == 1; }, 200ms));  // no hammering

  // A subscription made while refused is kept for later too.
  const auto quote = nse_tokens(3, 3000);
  connection.subscribe(quote, Mode::quote);
  for (const auto& s : with_mode(quote, Mode::quote)) expected.push_back(s);
  expected = sorted(expected);

  CHECK_THROWS_AS(connection.update_access_token(Secret("not a token")), floodgate::Error);
  connection.update_access_token(Secret("tok-a-next-day-77"));
  REQUIRE(eventually([&] { return is_connected(connection); }));
  CHECK(eventually([&] { return server_subscriptions(server, key_a) == expected; }));
  const auto before = recorder.count(full.front());
  CHECK(eventually([&] { return recorder.count(full.front()) > before + 3; }));
  CHECK(recorder.last(full.front())->kind == kite::PacketKind::full);
  CHECK(recorder.last(ltp.front())->kind == kite::PacketKind::ltp);
  CHECK(connection.stats().failures_in_a_row == 0);

  // An open connection keeps streaming through a token update: no reconnect.
  const auto connects = connection.stats().connects;
  connection.update_access_token(Secret("tok-a-third-day-88"));
  CHECK(holds_for([&] { return connection.stats().connects == connects && is_connected(connection); }, 200ms));
}

TEST_CASE("kite connection reports 429 as too many connections and gets in once a place frees", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  std::vector<std::unique_ptr<kite::TickerConnection>> holders;
  for (int i = 0; i < 3; ++i) {
    holders.push_back(std::make_unique<kite::TickerConnection>(
        io.executor(), "holder", kite_key(key_a, token_a), settings_for(server), kite::TickerConnection::Handlers{}));
    holders.back()->start();
  }
  REQUIRE(eventually([&] { return server.key_stats(key_a).connections == 3; }));

  kite::TickerConnection fourth(io.executor(), "A#3", kite_key(key_a, token_a), settings_for(server),
                                    recorder.handlers());
  fourth.subscribe({nse_token}, Mode::ltp);
  fourth.start();
  REQUIRE(eventually([&] { return fourth.stats().failed_attempts >= 2; }));
  auto stats = fourth.stats();
  CHECK(stats.last_error == floodgate::errc::too_many_connections);
  CHECK(stats.last_http_status == 429);
  CHECK_FALSE(kite::is_final(stats.state));  // 429 is retried, unlike 403
  CHECK(server.key_stats(key_a).rejected_over_limit >= 2);
  CHECK(server.key_stats(key_a).connections == 3);

  holders.back()->stop();
  REQUIRE(eventually([&] { return is_connected(fourth); }));
  CHECK(eventually([&] { return recorder.count(nse_token) > 0; }));
  stats = fourth.stats();
  CHECK(stats.connects == 1);
  CHECK(stats.reconnects == 0);  // the first successful upgrade is not a reconnect
  CHECK(server.key_stats(key_a).connections == 3);
}

TEST_CASE("kite connection counts malformed frames and keeps streaming", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        recorder.handlers());
  connection.start();
  const auto tokens = nse_tokens(3);
  connection.subscribe(tokens, Mode::quote);
  REQUIRE(eventually([&] { return recorder.count(tokens.front()) > 0; }));

  using Kind = kite::FrameError::Kind;
  const std::vector<Kind> kinds{Kind::empty_frame, Kind::count_overruns_frame, Kind::truncated_packet,
                                Kind::trailing_bytes};
  for (const Kind kind : kinds) REQUIRE(server.send_malformed_frame(key_a, kind) == 1);
  REQUIRE(eventually([&] { return connection.stats().malformed_frames == kinds.size(); }));

  // Good packets before a fault are still delivered: the count-overrun and
  // trailing-bytes frames each carry one valid ltp packet for 408065.
  CHECK(eventually([&] { return recorder.count(nse_token) == 2; }));
  const auto before = recorder.count(tokens.front());
  CHECK(eventually([&] { return recorder.count(tokens.front()) > before + 3; }));
  const auto stats = connection.stats();
  CHECK(stats.state == ConnectionState::connected);
  CHECK(stats.connects == 1);  // a bad frame is no reason to reconnect
  CHECK(stats.malformed_frames == kinds.size());
  CHECK(server.stats().malformed_frames_sent == kinds.size());
}

TEST_CASE("kite connection skips packets of unknown length, delivers the rest, warns once per length",
          "[kite][ticker]") {
  std::mutex lines_mutex;
  std::vector<std::string> lines;
  const auto previous = floodgate::set_log_sink([&](floodgate::LogLevel, std::string_view line) {
    std::lock_guard lock(lines_mutex);
    lines.emplace_back(line);
  });
  struct RestoreSink {
    floodgate::LogSink sink;
    ~RestoreSink() { floodgate::set_log_sink(sink); }
  } restore{previous};

  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        recorder.handlers());
  connection.start();
  REQUIRE(eventually([&] { return is_connected(connection); }));

  // ltp 408065, a 20-byte packet, ltp of a CDS token; then a 36-byte one; three times.
  const auto frame = [](std::size_t unknown_length) {
    std::vector<std::byte> out;
    const auto u16 = [&](unsigned v) {
      out.push_back(static_cast<std::byte>(v >> 8));
      out.push_back(static_cast<std::byte>(v & 0xff));
    };
    const auto u32 = [&](std::uint32_t v) {
      u16(v >> 16);
      u16(v & 0xffff);
    };
    u16(3);
    u16(8), u32(nse_token), u32(12345);
    u16(static_cast<unsigned>(unknown_length));
    for (std::size_t i = 0; i < unknown_length; ++i) out.push_back(std::byte{0x5a});
    u16(8), u32(cds_token), u32(700000000);
    return out;
  };
  for (int round = 0; round < 3; ++round) {
    REQUIRE(server.send_binary_frame(key_a, frame(20)) == 1);
    REQUIRE(server.send_binary_frame(key_a, frame(36)) == 1);
  }
  REQUIRE(eventually([&] { return recorder.count(cds_token) == 6; }));
  CHECK(recorder.count(nse_token) == 6);
  CHECK(recorder.last(nse_token)->last_price == 123.45);
  CHECK(recorder.last(cds_token)->last_price == 70.0);
  const auto stats = connection.stats();
  CHECK(stats.unknown_packets == 6);
  CHECK(stats.malformed_frames == 0);
  CHECK(stats.ticks == 12);

  std::lock_guard lock(lines_mutex);
  std::map<std::string, int> warnings;
  for (const auto& line : lines) {
    if (line.find("unknown length") != std::string::npos) ++warnings[line];
  }
  CHECK(warnings.size() == 2);
  for (const auto& [line, count] : warnings) {
    INFO(line);
    CHECK(count == 1);
    CHECK((line.find("length 20 ") != std::string::npos || line.find("length 36 ") != std::string::npos));
  }
}

TEST_CASE("kite connection survives hostile text messages and logs only an excerpt", "[kite][ticker]") {
  std::mutex lines_mutex;
  std::vector<std::string> lines;
  const auto previous = floodgate::set_log_sink([&](floodgate::LogLevel, std::string_view line) {
    std::lock_guard lock(lines_mutex);
    lines.emplace_back(line);
  });
  struct RestoreSink {
    floodgate::LogSink sink;
    ~RestoreSink() { floodgate::set_log_sink(sink); }
  } restore{previous};

  KiteTickerServer server(server_options());
  server.start();
  std::atomic<int> texts{0};
  Recorder recorder;
  auto handlers = recorder.handlers();
  handlers.on_text = [&](kite::TextMessage&&) { ++texts; };
  IoThreads io;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                        handlers);
  connection.subscribe({nse_token}, Mode::ltp);
  connection.start();
  REQUIRE(eventually([&] { return recorder.count(nse_token) > 0; }));

  // Issue 18: ~200 KB of [[[…]]] nested 100,000 deep once crashed the process.
  const std::size_t depth = 100'000;
  REQUIRE(server.send_text_message(key_a, R"({"type":"error","data":)" + std::string(depth, '[') +
                                              std::string(depth, ']') + "}") == 1);
  // A 100 KB error string: logged, but not whole.
  const std::string long_error(100'000, 'x');
  REQUIRE(server.send_text_message(key_a, R"({"type":"error","data":")" + long_error + R"("})") == 1);
  REQUIRE(eventually([&] { return connection.stats().text_messages == 2; }));

  const auto stats = connection.stats();
  CHECK(stats.malformed_frames == 1);  // the deep one, refused
  CHECK(eventually([&] { return texts == 1; }));  // the long one, delivered
  CHECK(stats.connects == 1);
  const auto before = recorder.count(nse_token);
  CHECK(eventually([&] { return recorder.count(nse_token) > before + 3; }));  // still streaming

  std::lock_guard lock(lines_mutex);
  bool logged_excerpt = false;
  for (const auto& line : lines) {
    CHECK(line.size() < 1000);
    if (line.find("reports an error: xxxx") != std::string::npos) {
      logged_excerpt = true;
      CHECK(line.find("(100000 bytes)") != std::string::npos);
    }
  }
  CHECK(logged_excerpt);
}

TEST_CASE("kite connection stop means stop", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;

  SECTION("while connected, even when the server drops at the same moment") {
    kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                          recorder.handlers());
    connection.start();
    connection.subscribe(nse_tokens(3), Mode::quote);
    REQUIRE(eventually([&] { return recorder.total() > 0; }));
    connection.stop();
    server.drop_connections(key_a);
    REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::stopped; }));
    REQUIRE(eventually([&] { return server.key_stats(key_a).connections == 0; }));
    const auto ticks = recorder.total();
    CHECK(holds_for(
        [&] {
          return server.key_stats(key_a).connections_accepted == 1 && server.key_stats(key_a).connections == 0 &&
                 connection.stats().state == ConnectionState::stopped;
        },
        400ms));
    CHECK(recorder.total() == ticks);  // no handler call after the stop
    CHECK(recorder.states().back() == ConnectionState::stopped);
    connection.start();  // a stopped connection does not start again
    CHECK(holds_for([&] { return server.key_stats(key_a).connections_accepted == 1; }, 100ms));
  }

  SECTION("while waiting to reconnect") {
    auto settings = settings_for(server);
    settings.reconnect.floor = 300ms;
    settings.reconnect.cap = 300ms;
    kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings,
                                          recorder.handlers());
    connection.start();
    REQUIRE(eventually([&] { return is_connected(connection); }));
    server.drop_connections(key_a);
    REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::waiting_to_reconnect; }));
    connection.stop();
    REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::stopped; }));
    CHECK(holds_for([&] { return server.key_stats(key_a).connections_accepted == 1; }, 600ms));
    CHECK(server.key_stats(key_a).connections == 0);
  }

  SECTION("by destroying the connection") {
    {
      kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings_for(server),
                                            recorder.handlers());
      connection.start();
      REQUIRE(eventually([&] { return server.key_stats(key_a).connections == 1; }));
    }
    CHECK(eventually([&] { return server.key_stats(key_a).connections == 0; }));
    CHECK(holds_for([&] { return server.key_stats(key_a).connections_accepted == 1; }, 300ms));
  }
}

TEST_CASE("kite connection over wss verifies the simulator's certificate", "[kite][ticker]") {
  const auto certs = floodgate::sim::TestCertificates::generate();
  auto options = server_options();
  options.tls = floodgate::net::make_server_tls_context(certs.server_chain_pem, certs.server_key_pem);
  KiteTickerServer server(std::move(options));
  server.start();
  REQUIRE(server.url().rfind("wss://", 0) == 0);
  Recorder recorder;
  IoThreads io;

  SECTION("trusted CA: streams") {
    auto settings = settings_for(server);
    settings.allow_plain_ws = false;
    settings.tls = floodgate::net::make_client_tls_context({.ca_pem = certs.ca_pem});
    kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings,
                                          recorder.handlers());
    connection.start();
    connection.subscribe({nse_token}, Mode::full);
    REQUIRE(eventually([&] {
      const auto tick = recorder.last(nse_token);
      return tick && tick->kind == kite::PacketKind::full;
    }));
    CHECK(server_subscriptions(server, key_a) == Subscriptions{{nse_token, Mode::full}});
    CHECK(connection.stats().connects == 1);
  }

  SECTION("another CA: refused, and given up after max_attempts") {
    const auto other = floodgate::sim::TestCertificates::generate();
    auto settings = settings_for(server);
    settings.tls = floodgate::net::make_client_tls_context({.ca_pem = other.ca_pem});
    settings.reconnect.max_attempts = 3;
    kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings,
                                          recorder.handlers());
    connection.start();
    REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::gave_up; }));
    const auto stats = connection.stats();
    CHECK(stats.failed_attempts == 3);
    CHECK(stats.connects == 0);
    CHECK(stats.last_error == floodgate::net::errc::certificate_rejected);
    CHECK(server.key_stats(key_a).connections_accepted == 0);
    CHECK(recorder.saw(ConnectionState::gave_up));
  }
}

TEST_CASE("kite connection refuses plain ws unless allowed, and unusable keys", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  Recorder recorder;
  IoThreads io;

  auto settings = settings_for(server);
  settings.allow_plain_ws = false;
  settings.reconnect.max_attempts = 1;
  kite::TickerConnection connection(io.executor(), "A#0", kite_key(key_a, token_a), settings, recorder.handlers());
  connection.start();
  REQUIRE(eventually([&] { return connection.stats().state == ConnectionState::gave_up; }));
  CHECK(connection.stats().last_error == floodgate::net::errc::insecure_scheme);
  CHECK(server.key_stats(key_a).connections_accepted == 0);

  // A token that cannot go into a URL query is refused up front, without showing it.
  try {
    kite::TickerConnection bad(io.executor(), "A#1", kite_key(key_a, "secret token&x=1"), settings_for(server),
                                   {});
    FAIL("expected floodgate::Error");
  } catch (const floodgate::Error& e) {
    CHECK_THAT(e.what(), !Catch::Contains("secret token"));
  }
  CHECK_THROWS_AS(kite::TickerConnection(io.executor(), "A#2", kite_key(key_a, token_a),
                                             {.url = "ftp://example.com"}, {}),
                  floodgate::Error);
}

// ---- TickerManager -------------------------------------------------------------------------

namespace {

kite::TickerManagerOptions manager_options(const KiteTickerServer& server, std::size_t connections,
                                               std::size_t per_connection) {
  return {.max_connections = connections, .max_instruments_per_connection = per_connection,
          .connection = settings_for(server)};
}

/// Counts the manager's messages per connection index, and ticks per token.
class ManagerRecorder {
 public:
  kite::TickerManager::MessageHandler handler() {
    return [this](kite::TickerMessage&& message) {
      std::lock_guard lock(mutex_);
      ++per_connection_[message.connection()];
      if (const auto* ticks = message.ticks()) {
        for (const auto& tick : *ticks) last_[tick.instrument_token] = tick;
      }
    };
  }
  std::set<std::size_t> connections_seen() const {
    std::lock_guard lock(mutex_);
    std::set<std::size_t> out;
    for (const auto& [connection, n] : per_connection_) out.insert(connection);
    return out;
  }
  std::optional<kite::Tick> last(std::uint32_t token) const {
    std::lock_guard lock(mutex_);
    const auto it = last_.find(token);
    return it == last_.end() ? std::nullopt : std::optional(it->second);
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::size_t, std::size_t> per_connection_;
  std::map<std::uint32_t, kite::Tick> last_;
};

}  // namespace

TEST_CASE("kite manager opens 3 connections per key and spreads batches evenly", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  ManagerRecorder recorder;
  std::vector<kite::KeyHealth> healths;
  std::mutex healths_mutex;
  IoThreads io;
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), manager_options(server, 3, 100),
                                  recorder.handler(), [&](kite::KeyHealth health) {
                                    std::lock_guard lock(healths_mutex);
                                    healths.push_back(health);
                                  });
  CHECK(manager.health() == kite::KeyHealth::idle);
  CHECK(manager.capacity() == 300);
  manager.start();
  REQUIRE(eventually([&] { return manager.health() == kite::KeyHealth::live; }));
  CHECK(server.key_stats(key_a).connections == 3);
  {
    std::lock_guard lock(healths_mutex);
    CHECK(std::find(healths.begin(), healths.end(), kite::KeyHealth::live) != healths.end());
  }

  const auto requests_before = server.stats().requests_received;
  const auto first = nse_tokens(150, 1000);
  manager.subscribe(first, Mode::ltp);
  CHECK(manager.instrument_count() == 150);
  auto distribution = manager.distribution();
  REQUIRE(distribution.size() == 3);
  for (const auto& tokens : distribution) CHECK(tokens.size() == 50);

  // The server sees the same split, one subscribe (+ one mode) message per
  // connection: batched, not one message per instrument.
  const auto server_split_matches = [&] {
    const auto connections = server.connections(key_a);
    if (connections.size() != 3) return false;
    std::vector<std::vector<std::uint32_t>> seen;
    for (const auto& connection : connections) {
      std::vector<std::uint32_t> tokens;
      for (const auto& [token, mode] : connection.subscriptions) {
        if (mode != Mode::ltp) return false;
        tokens.push_back(token);
      }
      seen.push_back(tokens);
    }
    auto expected = manager.distribution();
    std::sort(seen.begin(), seen.end());
    std::sort(expected.begin(), expected.end());
    return seen == expected;
  };
  REQUIRE(eventually(server_split_matches));
  CHECK(eventually([&] { return server.stats().requests_received == requests_before + 3 * 2; }));

  // The next batch goes to the least loaded connections: still even.
  manager.subscribe(nse_tokens(60, 2000), Mode::ltp);
  distribution = manager.distribution();
  for (const auto& tokens : distribution) CHECK(tokens.size() == 70);
  REQUIRE(eventually(server_split_matches));
  CHECK(eventually([&] { return server.stats().requests_received == requests_before + 2 * 3 * 2; }));
  CHECK(eventually([&] { return recorder.connections_seen() == std::set<std::size_t>{0, 1, 2}; }));

  const auto stats = manager.stats();
  CHECK(stats.id == "API-1");
  CHECK(stats.health == kite::KeyHealth::live);
  CHECK(stats.instruments == 210);
  CHECK(stats.capacity == 300);
  CHECK(stats.connections.size() == 3);
  CHECK(stats.ticks > 0);
}

TEST_CASE("kite manager refuses a batch that does not fit, whole, naming the numbers", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  ManagerRecorder recorder;
  IoThreads io;
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), manager_options(server, 3, 100),
                                  recorder.handler());
  manager.start();
  const auto held = nse_tokens(210, 1000);
  manager.subscribe(held, Mode::quote);
  REQUIRE(eventually([&] { return server.key_stats(key_a).subscriptions == 210; }));
  REQUIRE(eventually([&] { return server.stats().requests_received == 3 * 2; }));  // subscribe + mode each
  const auto requests = server.stats().requests_received;

  const auto refused = nse_tokens(91, 5000);
  try {
    manager.subscribe(refused, Mode::quote);
    FAIL("expected CapacityError");
  } catch (const kite::CapacityError& e) {
    CHECK(e.requested() == 91);
    CHECK(e.available() == 90);
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Catch::Contains("API-1") && Catch::Contains("91") && Catch::Contains("300") &&
                         Catch::Contains("210") && Catch::Contains("90"));
    CHECK_THAT(what, !Catch::Contains(token_a) && !Catch::Contains(key_a));
  }
  // Nothing of the refused batch was placed or sent.
  CHECK(manager.instrument_count() == 210);
  for (const auto token : refused) CHECK_FALSE(manager.is_subscribed(token));
  CHECK(holds_for([&] { return server.stats().requests_received == requests; }, 100ms));
  CHECK(server.key_stats(key_a).subscriptions == 210);

  // Tokens already held do not count against the room: 90 new + 10 held fit.
  std::vector<std::uint32_t> mixed(refused.begin(), refused.begin() + 90);
  mixed.insert(mixed.end(), held.begin(), held.begin() + 10);
  manager.subscribe(mixed, Mode::quote);
  CHECK(manager.instrument_count() == 300);
  CHECK(manager.spare_capacity() == 0);
  CHECK(eventually([&] { return server.key_stats(key_a).subscriptions == 300; }));
  CHECK_THROWS_AS(manager.subscribe(std::vector<std::uint32_t>{refused.back()}, Mode::quote), kite::CapacityError);
  CHECK_NOTHROW(manager.subscribe(held, Mode::quote));  // nothing new: fits in a full manager

  // Limits outside Kite's are refused when the manager is built.
  CHECK_THROWS_AS(kite::TickerManager(io.executor(), "X", kite_key(key_a, token_a),
                                          manager_options(server, 4, 100), {}),
                  floodgate::Error);
  CHECK_THROWS_AS(kite::TickerManager(io.executor(), "X", kite_key(key_a, token_a),
                                          manager_options(server, 0, 100), {}),
                  floodgate::Error);
  CHECK_THROWS_AS(kite::TickerManager(io.executor(), "X", kite_key(key_a, token_a),
                                          manager_options(server, 1, 3001), {}),
                  floodgate::Error);
}

TEST_CASE("kite manager changes modes, unsubscribes and releases everything", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  ManagerRecorder recorder;
  IoThreads io;
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), manager_options(server, 3, 100),
                                  recorder.handler());
  manager.start();
  const auto tokens = nse_tokens(30);
  manager.subscribe(tokens, Mode::quote);
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == with_mode(tokens, Mode::quote); }));

  const std::vector<std::uint32_t> to_full(tokens.begin(), tokens.begin() + 10);
  std::vector<std::uint32_t> asked = to_full;
  asked.push_back(9999 << 8 | 1);  // never subscribed
  CHECK(manager.change_mode(asked, Mode::full) == 10);
  Subscriptions expected = with_mode(to_full, Mode::full);
  for (std::size_t i = 10; i < tokens.size(); ++i) expected.emplace_back(tokens[i], Mode::quote);
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == sorted(expected); }));
  CHECK(eventually([&] {
    const auto tick = recorder.last(to_full.front());
    return tick && tick->kind == kite::PacketKind::full;
  }));
  // Subscribing a held token in another mode moves it, without a new subscription.
  manager.subscribe(std::vector<std::uint32_t>{tokens.back()}, Mode::ltp);
  expected.back().second = Mode::ltp;
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == sorted(expected); }));
  CHECK(manager.instrument_count() == 30);

  const std::vector<std::uint32_t> dropped{tokens[0], tokens[15], tokens[16], 9999 << 8 | 1};
  CHECK(manager.unsubscribe(dropped) == 3);
  CHECK(manager.instrument_count() == 27);
  CHECK_FALSE(manager.is_subscribed(tokens[15]));
  std::erase_if(expected, [&](const auto& s) { return s.first == tokens[0] || s.first == tokens[15] || s.first == tokens[16]; });
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a) == sorted(expected); }));

  const auto released = manager.release_all();
  CHECK(released == sorted(expected));  // every token with its mode
  CHECK(manager.instrument_count() == 0);
  CHECK(manager.spare_capacity() == 300);
  CHECK(eventually([&] { return server.key_stats(key_a).subscriptions == 0; }));
  CHECK(server.key_stats(key_a).connections == 3);  // the connections stay open

  manager.stop();
  CHECK(manager.health() == kite::KeyHealth::stopped);
  CHECK_THROWS_AS(manager.subscribe(tokens, Mode::quote), floodgate::Error);
  CHECK(eventually([&] { return server.key_stats(key_a).connections == 0; }));
  CHECK(holds_for([&] { return server.key_stats(key_a).connections_accepted == 3; }, 300ms));
}

TEST_CASE("kite manager health follows its connections", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  ManagerRecorder recorder;
  IoThreads io;
  auto options = manager_options(server, 2, 100);
  options.connection.reconnect = {.floor = 300ms, .cap = 300ms, .max_attempts = 0};
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), options, recorder.handler());
  manager.start();
  REQUIRE(eventually([&] { return manager.health() == kite::KeyHealth::live; }));
  server.drop_connections(key_a, 1);
  CHECK(eventually([&] { return manager.health() == kite::KeyHealth::degraded; }));
  CHECK(kite::is_serving(manager.health()));
  CHECK(eventually([&] { return manager.health() == kite::KeyHealth::live; }));

  server.set_key_enabled(key_a, false);  // drops both; every reconnect gets 403
  CHECK(eventually([&] { return manager.health() == kite::KeyHealth::failed; }));
  CHECK(manager.stats().failed_attempts == 2);

  kite::TickerManager wrong(io.executor(), "API-2", kite_key(key_b, "not-the-token"), options, {});
  wrong.start();
  CHECK(eventually([&] { return wrong.health() == kite::KeyHealth::failed; }));
}

TEST_CASE("kite manager moves a connection's instruments to its siblings when it gives up", "[kite][ticker]") {
  KiteTickerServer server(server_options());
  server.start();
  ManagerRecorder recorder;
  IoThreads io;
  // A connection of someone else's holds the key's first slot; the manager takes the other two.
  kite::TickerConnection early(io.executor(), "early", kite_key(key_a, token_a), settings_for(server), {});
  early.start();
  REQUIRE(eventually([&] { return is_connected(early); }));
  auto options = manager_options(server, 2, 100);
  options.connection.reconnect = {.floor = 400ms, .cap = 400ms, .max_attempts = 2};
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), options, recorder.handler());
  manager.start();
  REQUIRE(eventually([&] { return manager.health() == kite::KeyHealth::live; }));
  const auto tokens = nse_tokens(60);
  manager.subscribe(tokens, Mode::ltp);
  REQUIRE(eventually([&] { return server_subscriptions(server, key_a).size() == 60; }));

  // One manager connection drops, and another client takes its slot before it can come back: its
  // reconnects get 429 until it gives up.
  REQUIRE(server.drop_connections(key_a, 1) == 1);
  auto late_settings = settings_for(server);
  late_settings.reconnect = {.floor = 5ms, .cap = 10ms, .max_attempts = 0};
  kite::TickerConnection late(io.executor(), "late", kite_key(key_a, token_a), late_settings, {});
  late.start();
  REQUIRE(eventually([&] { return is_connected(late); }));

  REQUIRE(eventually([&] { return manager.health() == kite::KeyHealth::degraded; }));
  const auto given_up = [&] {
    const auto stats = manager.stats();
    return std::any_of(stats.connections.begin(), stats.connections.end(),
                       [](const kite::ConnectionStats& c) { return c.state == ConnectionState::gave_up; });
  };
  REQUIRE(eventually(given_up));
  const auto distribution = manager.distribution();
  CHECK(((distribution[0].size() == 60 && distribution[1].empty()) ||
         (distribution[1].size() == 60 && distribution[0].empty())));
  CHECK(manager.instrument_count() == 60);
  // The surviving connection streams all 60 in their mode.
  CHECK(eventually([&] {
    for (const auto& connection : server.connections(key_a)) {
      if (sorted(connection.subscriptions) == with_mode(tokens, Mode::ltp)) return true;
    }
    return false;
  }));
}

// ---- MultiKeyTickerManager ------------------------------------------------------------------

namespace {

struct TestKey {
  const char* id;
  const char* api_key;
  const char* token;
};
constexpr TestKey api_keys[] = {{"API-1", "kitekey-1", "tok-1-0d9c7e55aa"},
                                {"API-2", "kitekey-2", "tok-2-61b0f3c2de"},
                                {"API-3", "kitekey-3", "tok-3-9e4a1b7f20"}};

floodgate::sim::KiteTickerServerOptions multi_server_options() {
  auto options = server_options();
  options.keys.clear();
  for (const auto& key : api_keys) options.keys.push_back({key.api_key, Secret(key.token)});
  return options;
}

using Options = kite::MultiKeyTickerManagerOptions;

/// The first `key_count` test keys.
std::vector<floodgate::Credential<floodgate::KiteKey>> test_keys(std::size_t key_count) {
  std::vector<floodgate::Credential<floodgate::KiteKey>> keys;
  for (std::size_t i = 0; i < key_count; ++i) {
    keys.push_back({api_keys[i].id, {Secret(api_keys[i].api_key), Secret(api_keys[i].token)}});
  }
  return keys;
}

/// A manager on the first `key_count` test keys with the short test timings;
/// `customize` sets the rest.
std::unique_ptr<kite::MultiKeyTickerManager> make_multi(asio::any_io_executor executor,
                                                        const KiteTickerServer& server, std::size_t key_count,
                                                        const std::function<void(Options&)>& customize = {}) {
  Options options{
      .keys = test_keys(key_count),
      .per_key = {.connection = settings_for(server)},
      .health_check_interval = 50ms,
      .failover_after = 2s,  // tests of failover by time set less; a slow start must not trigger it
  };
  if (customize) customize(options);
  return std::make_unique<kite::MultiKeyTickerManager>(std::move(executor), std::move(options));
}

/// Reads a channel with completion callbacks until it is closed, and keeps
/// what arrived. Stop the manager (which closes the channel) and wait for
/// closed() before the manager is destroyed.
class ChannelReader {
 public:
  ChannelReader() = default;
  ChannelReader(const ChannelReader&) = delete;
  ChannelReader& operator=(const ChannelReader&) = delete;
  // Checked here, on the test's thread: Catch's assertions are not for I/O threads.
  ~ChannelReader() {
    std::lock_guard lock(mutex_);
    CHECK(batches_with_another_key_ == 0);
  }

  void start(kite::TickerChannel& channel) {
    channel_ = &channel;
    receive_next();
  }

  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_with_.has_value();
  }
  std::error_code closed_with() const {
    std::lock_guard lock(mutex_);
    return closed_with_.value_or(std::error_code{});
  }
  std::size_t messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  /// Ticks of `token` tagged with `api_key_id`.
  std::size_t count(const std::string& api_key_id, std::uint32_t token) const {
    std::lock_guard lock(mutex_);
    const auto it = counts_.find({api_key_id, token});
    return it == counts_.end() ? 0 : it->second;
  }
  std::set<std::string> ids() const {
    std::lock_guard lock(mutex_);
    std::set<std::string> out;
    for (const auto& [key, n] : counts_) out.insert(key.first);
    return out;
  }
  std::set<std::size_t> connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  std::set<std::uint32_t> tokens_of(const std::string& api_key_id) const {
    std::lock_guard lock(mutex_);
    std::set<std::uint32_t> out;
    for (const auto& [key, n] : counts_) {
      if (key.first == api_key_id) out.insert(key.second);
    }
    return out;
  }
  /// Every tick of `token`, in the order received.
  std::vector<kite::Tick> ticks_of(std::uint32_t token) const {
    std::lock_guard lock(mutex_);
    const auto it = ticks_.find(token);
    return it == ticks_.end() ? std::vector<kite::Tick>{} : it->second;
  }

 private:
  void receive_next() {
    channel_->async_receive([this](std::error_code ec, kite::TickerMessage message) {
      {
        std::lock_guard lock(mutex_);
        if (ec) {
          closed_with_ = ec;
          return;
        }
        ++messages_;
        connections_.insert(message.connection());
        if (const auto* ticks = message.ticks()) {
          if (ticks->api_key_id() != message.api_key_id()) ++batches_with_another_key_;
          for (const auto& tick : *ticks) {
            ++counts_[{message.api_key_id(), tick.instrument_token}];
            ticks_[tick.instrument_token].push_back(tick);
          }
        }
      }
      receive_next();
    });
  }

  kite::TickerChannel* channel_ = nullptr;
  mutable std::mutex mutex_;
  std::optional<std::error_code> closed_with_;
  std::size_t messages_ = 0;
  std::size_t batches_with_another_key_ = 0;  // a batch whose key differs from its message's
  std::set<std::size_t> connections_;
  std::map<std::pair<std::string, std::uint32_t>, std::size_t> counts_;
  std::map<std::uint32_t, std::vector<kite::Tick>> ticks_;
};

/// Stops `manager` and waits until `reader` saw its channel close.
void stop_and_drain(kite::MultiKeyTickerManager& manager, const ChannelReader& reader) {
  manager.stop();
  CHECK(eventually([&] { return reader.closed(); }));
}

/// What the server streams on each test key, by the id the manager knows it by.
std::map<std::string, Subscriptions> server_view(const KiteTickerServer& server, std::size_t key_count) {
  std::map<std::string, Subscriptions> out;
  for (std::size_t i = 0; i < key_count; ++i) out[api_keys[i].id] = server_subscriptions(server, api_keys[i].api_key);
  return out;
}

std::vector<std::uint32_t> tokens_in(const Subscriptions& subscriptions) {
  std::vector<std::uint32_t> out;
  for (const auto& [token, mode] : subscriptions) out.push_back(token);
  return out;
}

/// The server streams to each key exactly the tokens the manager placed there.
bool server_matches_distribution(const KiteTickerServer& server, const kite::MultiKeyTickerManager& manager,
                                 std::size_t key_count) {
  const auto distribution = manager.distribution();
  const auto view = server_view(server, key_count);
  for (const auto& [id, subscriptions] : view) {
    const auto it = distribution.find(id);
    const std::vector<std::uint32_t> placed = it == distribution.end() ? std::vector<std::uint32_t>{} : it->second;
    if (tokens_in(subscriptions) != placed) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("kite multi manager refuses unusable options", "[kite][ticker][multi]") {
  IoThreads io;
  const auto with_keys = [](std::initializer_list<const char*> ids) {
    Options options;
    for (const char* id : ids) options.keys.push_back({id, {Secret("kitekey-1"), Secret("tok-1-0d9c7e55aa")}});
    return options;
  };
  const auto build = [&](Options options) { return kite::MultiKeyTickerManager(io.executor(), std::move(options)); };
  CHECK_THROWS_AS(build({}), floodgate::Error);
  try {
    build(with_keys({"API-1", "API-2", "API-1"}));
    FAIL("expected floodgate::Error for a duplicate id");
  } catch (const floodgate::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("API-1") && !Catch::Contains("tok-1") && !Catch::Contains("kitekey"));
  }
  const auto with = [&](const std::function<void(Options&)>& change) {
    auto options = with_keys({"API-1"});
    change(options);
    return options;
  };
  CHECK_THROWS_AS(build(with([](Options& o) { o.per_key.max_connections = 0; })), floodgate::Error);
  CHECK_THROWS_AS(build(with([](Options& o) { o.per_key.max_connections = 4; })), floodgate::Error);
  CHECK_THROWS_AS(build(with([](Options& o) { o.per_key.max_instruments_per_connection = 0; })), floodgate::Error);
  CHECK_THROWS_AS(build(with([](Options& o) { o.per_key.max_instruments_per_connection = 3001; })), floodgate::Error);
  CHECK_THROWS_AS(build(with([](Options& o) { o.channel_capacity = 0; })), floodgate::Error);
  CHECK_THROWS_AS(build(with([](Options& o) { o.keys[0].id.clear(); })), floodgate::Error);

  auto manager = std::make_unique<kite::MultiKeyTickerManager>(
      io.executor(), Options{.keys = with_keys({"API-1", "API-2"}).keys,
                             .per_key = {.max_connections = 3, .max_instruments_per_connection = 3000}});
  CHECK(manager->stats().keys == 2);
  CHECK(manager->key_stats("API-2").capacity == 9000);
  CHECK_THROWS_AS(manager->key_stats("API-9"), floodgate::Error);
  CHECK_THROWS_AS(manager->connection_channel("API-1", 0), floodgate::Error);  // not enabled
}

TEST_CASE("kite multi manager spreads instruments round-robin over keys and connections", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 3, [](Options& o) {
    o.per_key.max_connections = 2;
    o.per_key.max_instruments_per_connection = 50;
    o.default_mode = Mode::ltp;
  });
  manager->start();
  REQUIRE(eventually([&] { return manager->stats().connections_open == 6; }));
  CHECK(manager->stats().keys_serving == 3);

  const auto first = nse_tokens(90, 1000);
  manager->subscribe(first);
  auto distribution = manager->distribution();
  REQUIRE(distribution.size() == 3);
  for (const auto& [id, tokens] : distribution) {
    INFO(id);
    CHECK(tokens.size() == 30);
  }
  REQUIRE(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  for (const auto& [id, subscriptions] : server_view(server, 3)) {
    for (const auto& [token, mode] : subscriptions) CHECK(mode == Mode::ltp);  // the default mode
  }
  const auto api = manager->key_stats("API-2");
  CHECK(api.id == "API-2");
  CHECK(api.instruments == 30);
  CHECK(api.capacity == 100);
  REQUIRE(api.connections.size() == 2);
  CHECK(api.connections[0].subscriptions == 15);  // and within a key, over its connections
  CHECK(api.connections[1].subscriptions == 15);

  // A second batch in another mode keeps the keys even.
  const auto second = nse_tokens(30, 2000);
  manager->subscribe(second, Mode::full);
  for (const auto& [id, tokens] : manager->distribution()) CHECK(tokens.size() == 40);
  REQUIRE(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  CHECK(eventually([&] {
    std::size_t full = 0;
    for (const auto& [id, subscriptions] : server_view(server, 3)) {
      for (const auto& [token, mode] : subscriptions) full += mode == Mode::full;
    }
    return full == 30;
  }));

  std::vector<std::uint32_t> some(first.begin(), first.begin() + 5);
  some.push_back(4242 << 8 | 1);  // not subscribed
  CHECK(manager->change_mode(some, Mode::quote) == 5);
  CHECK(eventually([&] {
    std::size_t quote = 0;
    for (const auto& [id, subscriptions] : server_view(server, 3)) {
      for (const auto& [token, mode] : subscriptions) quote += mode == Mode::quote;
    }
    return quote == 5;
  }));
  CHECK(manager->unsubscribe(some) == 5);
  CHECK(manager->stats().instruments == 115);
  REQUIRE(eventually([&] { return server_matches_distribution(server, *manager, 3); }));

  // 300 places, 115 taken: 186 new instruments are refused whole.
  const auto too_many = nse_tokens(186, 5000);
  try {
    manager->subscribe(too_many);
    FAIL("expected CapacityError");
  } catch (const kite::CapacityError& e) {
    CHECK(e.requested() == 186);
    CHECK(e.available() == 185);
    CHECK_THAT(e.what(), Catch::Contains("186") && Catch::Contains("185"));
  }
  CHECK(manager->stats().instruments == 115);
  CHECK(holds_for([&] { return server_matches_distribution(server, *manager, 3); }, 100ms));
  manager->subscribe(std::span(too_many).first(185));
  CHECK(manager->stats().instruments == 300);
  CHECK(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
}

TEST_CASE("kite multi manager in manual mode places only where told", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.distribution = kite::DistributionStrategy::manual;
    o.per_key.max_connections = 1;
    o.per_key.max_instruments_per_connection = 20;
  });
  manager->start();
  const auto tokens = nse_tokens(10);
  try {
    manager->subscribe(tokens);
    FAIL("expected floodgate::Error");
  } catch (const kite::CapacityError&) {
    FAIL("a manual manager must refuse subscribe as such, not for capacity");
  } catch (const floodgate::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("subscribe_on"));
  }
  manager->subscribe_on("API-2", tokens, Mode::full);
  CHECK(manager->distribution()["API-2"] == tokens);
  CHECK(manager->distribution()["API-1"].empty());
  CHECK(eventually([&] { return server_subscriptions(server, api_keys[1].api_key) == with_mode(tokens, Mode::full); }));
  CHECK(server_subscriptions(server, api_keys[0].api_key).empty());

  CHECK_THROWS_AS(manager->subscribe_on("API-9", tokens), floodgate::Error);
  try {
    manager->subscribe_on("API-1", std::vector<std::uint32_t>{tokens[3]});
    FAIL("expected floodgate::Error: the token is on API-2");
  } catch (const floodgate::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("API-2"));
  }
  CHECK_THROWS_AS(manager->subscribe_on("API-1", nse_tokens(21, 3000)), kite::CapacityError);
  CHECK(manager->distribution()["API-1"].empty());

  // No failover in manual mode: the caller placed them, the caller moves them.
  server.set_key_enabled(api_keys[1].api_key, false);
  REQUIRE(eventually([&] { return manager->key_stats("API-2").health == kite::KeyHealth::failed; }));
  CHECK(holds_for([&] { return manager->distribution()["API-2"] == tokens; }, 400ms));
  CHECK(manager->stats().failovers == 0);
  manager->stop();
}

TEST_CASE("kite multi manager delivers tagged ticks through co_await and per-connection channels",
          "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader per_connection;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 2;
    o.per_connection_channels = true;
    o.default_mode = Mode::quote;
  });
  CHECK_THROWS_AS(manager->connection_channel("API-1", 2), floodgate::Error);
  CHECK_THROWS_AS(manager->connection_channel("API-7", 0), floodgate::Error);
  per_connection.start(manager->connection_channel("API-1", 1));
  manager->start();
  const auto tokens = nse_tokens(20);
  manager->subscribe(tokens);
  const auto distribution = manager->distribution();

  // The unified channel, read by a coroutine, until every token came from
  // the key it was placed on.
  auto consumer = asio::co_spawn(
      io.executor(),
      [&]() -> asio::awaitable<std::map<std::uint32_t, std::string>> {
        std::map<std::uint32_t, std::string> source;
        while (source.size() < tokens.size()) {
          auto [ec, message] = co_await manager->channel().async_receive(asio::as_tuple(asio::use_awaitable));
          if (ec) break;
          if (const auto* ticks = message.ticks()) {
            for (const auto& tick : *ticks) source[tick.instrument_token] = message.api_key_id();
          }
        }
        co_return source;
      },
      asio::use_future);
  REQUIRE(consumer.wait_for(5s) == std::future_status::ready);
  const auto source = consumer.get();
  REQUIRE(source.size() == tokens.size());
  for (const auto& [token, id] : source) {
    INFO("token " << token << " from " << id);
    const auto& placed = distribution.at(id);
    CHECK(std::binary_search(placed.begin(), placed.end(), token));
  }

  // API-1's second connection's channel carries that connection's ticks only.
  const auto api1 = manager->key_stats("API-1");
  REQUIRE(api1.connections.size() == 2);
  REQUIRE(eventually([&] { return per_connection.tokens_of("API-1").size() == api1.connections[1].subscriptions; }));
  CHECK(per_connection.ids() == std::set<std::string>{"API-1"});
  CHECK(per_connection.connections() == std::set<std::size_t>{1});
  for (const auto token : per_connection.tokens_of("API-1")) {
    CHECK(std::binary_search(distribution.at("API-1").begin(), distribution.at("API-1").end(), token));
  }
  stop_and_drain(*manager, per_connection);
  CHECK(per_connection.closed_with() == floodgate::errc::shut_down);
}

TEST_CASE("kite multi manager fails over a key whose access is denied", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 3, [](Options& o) { o.per_key.max_connections = 2; });
  reader.start(manager->channel());
  manager->start();
  const auto tokens = nse_tokens(60);
  manager->subscribe(tokens, Mode::full);
  REQUIRE(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  const auto moving = manager->distribution().at("API-2");
  REQUIRE(moving.size() == 20);
  REQUIRE(eventually([&] { return reader.count("API-2", moving.front()) > 0; }));

  server.set_key_enabled(api_keys[1].api_key, false);  // drops its connections; reconnects get 403
  REQUIRE(eventually([&] { return manager->stats().failovers == 1; }));
  const auto distribution = manager->distribution();
  CHECK(distribution.at("API-2").empty());
  CHECK(distribution.at("API-1").size() == 30);  // spread evenly over the other two
  CHECK(distribution.at("API-3").size() == 30);
  // The server streams every instrument again, in its mode, on the live keys.
  REQUIRE(eventually([&] {
    auto streamed = server_subscriptions(server, api_keys[0].api_key);
    for (const auto& s : server_subscriptions(server, api_keys[2].api_key)) streamed.push_back(s);
    return sorted(streamed) == with_mode(tokens, Mode::full);
  }));
  CHECK(server.key_stats(api_keys[1].api_key).connections == 0);

  // Ticks for the moved instruments arrive again, tagged with their new key.
  for (const auto token : moving) {
    INFO("token " << token);
    CHECK(eventually([&] { return reader.count("API-1", token) + reader.count("API-3", token) > 0; }));
  }
  const auto stats = manager->stats();
  CHECK(stats.instruments_moved == 20);
  CHECK(stats.unplaced_instruments == 0);
  CHECK(stats.instruments == 60);
  CHECK(stats.keys_serving == 2);
  // (Under load the key may first be failed over as down for too long,
  // before its second connection has been refused too.)
  CHECK(eventually([&] { return manager->key_stats("API-2").health == kite::KeyHealth::failed; }));
  const auto api2 = manager->key_stats("API-2");
  CHECK(api2.instruments_moved_out == 20);
  CHECK(manager->key_stats("API-1").instruments_moved_in + manager->key_stats("API-3").instruments_moved_in == 20);
  // New instruments avoid the failed key.
  manager->subscribe(nse_tokens(10, 7000));
  CHECK(manager->distribution().at("API-2").empty());
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager fails over a key that stays down past failover_after", "[kite][ticker][multi]") {
  auto options = multi_server_options();
  options.max_connections_per_key = 1;  // so that another client can hold a key's only place
  KiteTickerServer server(std::move(options));
  server.start();
  ChannelReader reader;
  IoThreads io;

  // Another client holds API-2's place: every attempt of the manager gets
  // 429, so the key is down, but its access is not denied.
  kite::TickerConnection intruder(io.executor(), "intruder", kite_key(api_keys[1].api_key, api_keys[1].token),
                                      settings_for(server), {});
  intruder.start();
  REQUIRE(eventually([&] { return server.key_stats(api_keys[1].api_key).connections == 1; }));

  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 1;
    o.per_key.max_instruments_per_connection = 30;
    o.failover_after = 500ms;
    o.per_key.connection.reconnect = {.floor = 50ms, .cap = 50ms, .max_attempts = 0};
  });
  reader.start(manager->channel());
  const auto started_at = std::chrono::steady_clock::now();
  manager->start();
  const auto tokens = nse_tokens(20);
  manager->subscribe(tokens);  // placed evenly: a key that is down may still come up
  const auto moving = manager->distribution().at("API-2");
  REQUIRE(moving.size() == 10);

  REQUIRE(eventually([&] { return manager->key_stats("API-2").connections.at(0).last_http_status == 429; }));
  REQUIRE(eventually([&] { return manager->stats().failovers == 1; }));
  CHECK(std::chrono::steady_clock::now() - started_at >= 490ms);  // not before failover_after
  CHECK(manager->key_stats("API-2").health == kite::KeyHealth::down);  // still trying
  CHECK(manager->key_stats("API-2").instruments_moved_out == 10);
  CHECK(manager->key_stats("API-1").instruments_moved_in == 10);
  CHECK(manager->stats().instruments_moved == 10);
  CHECK(manager->distribution().at("API-1") == tokens);
  CHECK(eventually([&] { return server_subscriptions(server, api_keys[0].api_key) == with_mode(tokens, Mode::quote); }));
  for (const auto token : moving) CHECK(eventually([&] { return reader.count("API-1", token) > 0; }));

  // Once the place is free the key comes up and takes new work.
  intruder.stop();
  REQUIRE(eventually([&] { return manager->key_stats("API-2").health == kite::KeyHealth::live; }));
  manager->subscribe(nse_tokens(10, 3000));
  CHECK(manager->distribution().at("API-2").size() == 10);
  CHECK(eventually([&] { return server_matches_distribution(server, *manager, 2); }));
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager fails over a key whose connections are accepted and dropped at once",
          "[kite][ticker][multi]") {
  // Issue 18: each upgrade used to count as "up" and restart the down clock,
  // so a key that delivered nothing was never failed over.
  KiteTickerServer server(multi_server_options());
  server.start();
  server.set_drop_on_accept(api_keys[1].api_key, true);
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 1;
    o.per_key.max_instruments_per_connection = 30;
    o.failover_after = 400ms;
    // Redials far more often than failover_after: every upgrade is a chance to look "up".
    o.per_key.connection.reconnect = {.floor = 10ms, .cap = 40ms, .max_attempts = 0};
  });
  reader.start(manager->channel());
  manager->start();
  const auto tokens = nse_tokens(20);
  manager->subscribe(tokens);
  REQUIRE(manager->distribution().at("API-2").size() == 10);

  REQUIRE(eventually([&] { return manager->stats().failovers == 1; }));
  const auto api2 = manager->key_stats("API-2");
  CHECK(api2.health == kite::KeyHealth::down);
  CHECK(api2.connections.at(0).connects >= 2);  // it was accepted, again and again
  CHECK(api2.instruments_moved_out == 10);
  CHECK(manager->distribution().at("API-1") == tokens);
  for (const auto token : tokens) CHECK(eventually([&] { return reader.count("API-1", token) > 0; }));
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite managers: a 403 after token expiry, on_auth_failed, update_access_token restores everything",
          "[kite][ticker][multi][token]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  std::mutex mutex;
  std::vector<std::string> refused;  // on_auth_failed calls
  auto manager = make_multi(io.executor(), server, 1, [&](Options& o) {
    o.per_key.max_connections = 2;
    o.per_key.max_instruments_per_connection = 20;
    o.per_key.on_auth_failed = ([&](const std::string& id) {
      std::lock_guard lock(mutex);
      refused.push_back(id);
    });
  });
  reader.start(manager->channel());
  manager->start();
  const auto full = nse_tokens(10, 1000), quote = nse_tokens(10, 2000), ltp = nse_tokens(10, 3000);
  manager->subscribe(full, Mode::full);
  manager->subscribe(quote);
  manager->subscribe(ltp, Mode::ltp);
  Subscriptions expected = with_mode(full, Mode::full);
  for (const auto& s : with_mode(quote, Mode::quote)) expected.push_back(s);
  for (const auto& s : with_mode(ltp, Mode::ltp)) expected.push_back(s);
  expected = sorted(expected);
  const auto& key = api_keys[0];
  REQUIRE(eventually([&] { return server_subscriptions(server, key.api_key) == expected; }));

  server.set_access_token(key.api_key, Secret("tok-1-renewed-5150"));
  REQUIRE(eventually([&] { return manager->key_stats("API-1").health == kite::KeyHealth::failed; }));
  CHECK(holds_for(
      [&] {
        std::lock_guard lock(mutex);
        return refused == std::vector<std::string>{"API-1"};  // once for the key, not once per connection
      },
      200ms));
  // No key can take them: they wait.
  CHECK(eventually([&] { return manager->stats().unplaced_instruments == 30; }));

  manager->update_access_token("API-1", Secret("tok-1-renewed-5150"));
  REQUIRE(eventually([&] { return manager->key_stats("API-1").health == kite::KeyHealth::live; }));
  CHECK(eventually([&] { return server_subscriptions(server, key.api_key) == expected; }));
  CHECK(eventually([&] { return manager->stats().unplaced_instruments == 0; }));
  for (const auto token : {full.back(), quote.back(), ltp.back()}) {
    const auto before = reader.count("API-1", token);
    CHECK(eventually([&] { return reader.count("API-1", token) > before + 2; }));
  }
  CHECK(reader.ticks_of(full.back()).back().kind == kite::PacketKind::full);
  CHECK(reader.ticks_of(quote.back()).back().kind == kite::PacketKind::quote);
  CHECK(reader.ticks_of(ltp.back()).back().kind == kite::PacketKind::ltp);
  CHECK_THROWS_AS(manager->update_access_token("API-9", Secret("x")), floodgate::Error);

  // A later expiry is reported again.
  server.set_access_token(key.api_key, Secret("tok-1-renewed-again-6"));
  CHECK(eventually([&] {
    std::lock_guard lock(mutex);
    return refused.size() == 2;
  }));
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager parks what fits nowhere and places it when room appears", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2,
                            [](Options& o) {
                              o.per_key.max_connections = 1;
                              o.per_key.max_instruments_per_connection = 15;
                            });
  manager->start();
  const auto tokens = nse_tokens(20);
  manager->subscribe(tokens);
  const auto on_api1 = manager->distribution().at("API-1");
  REQUIRE(on_api1.size() == 10);
  REQUIRE(eventually([&] { return manager->stats().keys_serving == 2; }));

  server.set_key_enabled(api_keys[1].api_key, false);
  REQUIRE(eventually([&] { return manager->stats().failovers == 1; }));
  auto stats = manager->stats();
  CHECK(stats.instruments_moved == 5);  // API-1 had room for 5 of the 10
  CHECK(stats.unplaced_instruments == 5);
  CHECK(stats.instruments == 15);
  CHECK(manager->distribution().at("API-1").size() == 15);

  // Room appears on API-1: the waiting instruments follow at the next check.
  CHECK(manager->unsubscribe(std::span(on_api1).first(5)) == 5);
  REQUIRE(eventually([&] { return manager->stats().unplaced_instruments == 0; }));
  stats = manager->stats();
  CHECK(stats.instruments_moved == 10);
  CHECK(stats.instruments == 15);
  const auto now_on_api1 = manager->distribution().at("API-1");
  CHECK(now_on_api1.size() == 15);
  for (const auto token : std::span(on_api1).first(5)) {
    CHECK_FALSE(std::binary_search(now_on_api1.begin(), now_on_api1.end(), token));
  }
  CHECK(eventually([&] { return server.key_stats(api_keys[0].api_key).subscriptions == 15; }));
  manager->stop();
}

namespace {

floodgate::Credential<floodgate::KiteKey> test_credential(std::size_t index) {
  return {api_keys[index].id, {Secret(api_keys[index].api_key), Secret(api_keys[index].token)}};
}

/// Every connection of every test key streams at most `per_connection`
/// instruments, each instrument is streamed once, and together they are `expected`.
bool server_streams_exactly(const KiteTickerServer& server, const Subscriptions& expected,
                            std::size_t per_connection) {
  Subscriptions all;
  for (const auto& key : api_keys) {
    for (const auto& connection : server.connections(key.api_key)) {
      if (connection.subscriptions.size() > per_connection) return false;
      all.insert(all.end(), connection.subscriptions.begin(), connection.subscriptions.end());
    }
  }
  return sorted(all) == expected;
}

}  // namespace

TEST_CASE("kite multi manager adds and removes keys at run time, keeping every subscription and mode",
          "[kite][ticker][multi][keys]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 2;
    o.per_key.max_instruments_per_connection = 10;
  });
  reader.start(manager->channel());
  manager->start();
  const auto full = nse_tokens(12, 1000), ltp = nse_tokens(12, 2000), quote = nse_tokens(6, 3000);
  manager->subscribe(full, Mode::full);
  manager->subscribe(ltp, Mode::ltp);
  Subscriptions expected = with_mode(full, Mode::full);
  for (const auto& s : with_mode(ltp, Mode::ltp)) expected.push_back(s);
  REQUIRE(eventually([&] { return server_streams_exactly(server, sorted(expected), 10); }));
  const auto on_api1 = manager->distribution().at("API-1");
  REQUIRE(on_api1.size() == 12);

  // A new key comes up and takes the next subscriptions (it has the most room).
  manager->add_key(test_credential(2));
  CHECK(manager->stats().keys == 3);
  REQUIRE(eventually([&] { return manager->key_stats("API-3").health == kite::KeyHealth::live; }));
  CHECK(eventually([&] { return server.connections(api_keys[2].api_key).size() == 2; }));
  manager->subscribe(quote, Mode::quote);
  for (const auto& s : with_mode(quote, Mode::quote)) expected.push_back(s);
  expected = sorted(expected);
  CHECK(manager->distribution().at("API-3") == quote);
  REQUIRE(eventually([&] { return server_streams_exactly(server, expected, 10); }));
  CHECK(eventually([&] { return reader.count("API-3", quote.back()) > 2; }));

  // API-1 leaves: its 12 instruments, 6 full and 6 ltp, spread over API-2 (8
  // free) and API-3 (14 free) in their modes, each to the key with the most
  // room; its connections close.
  manager->remove_key("API-1");
  const auto distribution = manager->distribution();
  CHECK_FALSE(distribution.contains("API-1"));
  CHECK(distribution.at("API-2").size() == 12 + 3);
  CHECK(distribution.at("API-3").size() == 6 + 9);
  CHECK(eventually([&] { return server.connections(api_keys[0].api_key).empty(); }));
  REQUIRE(eventually([&] { return server_streams_exactly(server, expected, 10); }));
  CHECK(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  auto stats = manager->stats();
  CHECK(stats.keys == 2);
  CHECK(stats.instruments == 30);
  CHECK(stats.instruments_moved == 12);
  CHECK(stats.unplaced_instruments == 0);
  CHECK(manager->key_stats("API-2").instruments_moved_in + manager->key_stats("API-3").instruments_moved_in == 12);
  CHECK_THROWS_AS(manager->key_stats("API-1"), floodgate::Error);
  // The moved instruments stream from their new keys, in their modes.
  for (const auto token : on_api1) {
    const auto now_on = std::binary_search(distribution.at("API-2").begin(), distribution.at("API-2").end(), token)
                            ? "API-2"
                            : "API-3";
    const auto before = reader.count(now_on, token);
    CHECK(eventually([&] { return reader.count(now_on, token) > before + 1; }));
  }
  CHECK(reader.ticks_of(full.front()).back().kind == kite::PacketKind::full);
  CHECK(reader.ticks_of(ltp.front()).back().kind == kite::PacketKind::ltp);

  // The removed key can come back, with nothing of its own until asked.
  manager->add_key(test_credential(0));
  REQUIRE(eventually([&] { return manager->key_stats("API-1").health == kite::KeyHealth::live; }));
  CHECK(manager->key_stats("API-1").instruments == 0);
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager refuses a key change it cannot make, and changes nothing",
          "[kite][ticker][multi][keys]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 1;
    o.per_key.max_instruments_per_connection = 10;
  });
  // Before start: the key joins and start() opens it.
  manager->add_key(test_credential(2));
  manager->start();
  REQUIRE(eventually([&] { return manager->stats().connections_open == 3; }));
  const auto tokens = nse_tokens(25);
  manager->subscribe(tokens, Mode::full);
  REQUIRE(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  const auto before = manager->distribution();

  // 2 x 10 places on the others, 17 taken: API-1's 8 or 9 do not fit.
  try {
    manager->remove_key("API-1");
    FAIL("expected CapacityError");
  } catch (const kite::CapacityError& e) {
    CHECK(e.available() == 20 - (25 - before.at("API-1").size()));
    CHECK_THAT(e.what(), Catch::Contains("API-1") && !Catch::Contains("kitekey") && !Catch::Contains("tok-"));
  }
  CHECK(manager->distribution() == before);
  CHECK(holds_for([&] { return server_matches_distribution(server, *manager, 3); }, 100ms));

  CHECK_THROWS_AS(manager->remove_key("API-9"), floodgate::Error);
  CHECK_THROWS_AS(manager->add_key(test_credential(1)), floodgate::Error);  // duplicate id
  CHECK_THROWS_AS(manager->add_key({"", {Secret("kitekey-9"), Secret("tok")}}), floodgate::Error);
  CHECK_THROWS_AS(manager->add_key({"API-9", {Secret("kite key"), Secret("tok")}}), floodgate::Error);
  CHECK(manager->stats().keys == 3);

  // Down to one key, which cannot be removed.
  manager->unsubscribe(tokens);
  manager->remove_key("API-1");
  manager->remove_key("API-2");
  try {
    manager->remove_key("API-3");
    FAIL("expected floodgate::Error");
  } catch (const kite::CapacityError&) {
    FAIL("the last key is refused as such");
  } catch (const floodgate::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("last key"));
  }
  CHECK(manager->stats().keys == 1);
  manager->stop();
  CHECK_THROWS_AS(manager->add_key(test_credential(0)), floodgate::Error);
  CHECK_THROWS_AS(manager->remove_key("API-3"), floodgate::Error);
}

TEST_CASE("kite multi manager adds and removes keys while other threads subscribe", "[kite][ticker][multi][keys]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) {
    o.per_key.max_connections = 1;
    o.per_key.max_instruments_per_connection = 40;
  });
  reader.start(manager->channel());
  manager->start();
  const auto steady = nse_tokens(20, 1000);
  manager->subscribe(steady, Mode::ltp);

  std::atomic<bool> done{false};
  std::thread churn([&] {
    const auto batch = nse_tokens(10, 5000);
    while (!done) {
      manager->subscribe(batch, Mode::quote);
      manager->change_mode(batch, Mode::full);
      manager->unsubscribe(batch);
      (void)manager->stats();
      (void)manager->snapshot();
    }
  });
  // Each round: API-3 joins, API-1 leaves and comes back, API-3 leaves.
  for (int round = 0; round < 20; ++round) {
    manager->add_key(test_credential(2));
    manager->remove_key("API-1");
    manager->add_key(test_credential(0));
    manager->remove_key("API-3");
  }
  done = true;
  churn.join();
  CHECK(manager->stats().instruments == 20);
  CHECK(manager->stats().unplaced_instruments == 0);
  REQUIRE(eventually([&] { return server_streams_exactly(server, with_mode(steady, Mode::ltp), 40); }));
  CHECK(eventually([&] { return server_matches_distribution(server, *manager, 3); }));
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager stop means stop", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) { o.per_key.max_connections = 2; });
  reader.start(manager->channel());
  manager->start();
  manager->subscribe(nse_tokens(10));
  REQUIRE(eventually([&] { return manager->stats().connections_open == 4 && reader.messages() > 20; }));

  manager->stop();
  REQUIRE(eventually([&] { return reader.closed(); }));
  CHECK(reader.closed_with() == floodgate::errc::shut_down);
  CHECK(eventually([&] { return server.stats().connections == 0; }));
  server.drop_connections(api_keys[0].api_key);  // nothing left to drop, nothing comes back
  const auto accepted = [&] {
    return server.key_stats(api_keys[0].api_key).connections_accepted +
           server.key_stats(api_keys[1].api_key).connections_accepted;
  };
  CHECK(accepted() == 4);
  CHECK(holds_for([&] { return server.stats().connections == 0 && accepted() == 4; }, 400ms));
  CHECK(manager->stats().connections_open == 0);
  CHECK(manager->stats().keys_serving == 0);
  CHECK_THROWS_AS(manager->subscribe(nse_tokens(1, 9000)), floodgate::Error);
  manager->stop();  // idempotent
}

TEST_CASE("kite multi manager drops for a slow consumer without stalling the socket", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 1,
                            [](Options& o) {
                              o.per_key.max_connections = 1;
                              o.channel_capacity = 16;
                            });
  manager->start();
  manager->subscribe(nse_tokens(20), Mode::ltp);  // 20 ticks every 20 ms; nobody reads

  REQUIRE(eventually([&] { return manager->stats().messages_dropped > 20; }));
  const auto earlier = manager->key_stats("API-1").connections.at(0).ticks;
  CHECK(eventually([&] { return manager->key_stats("API-1").connections.at(0).ticks > earlier + 200; }));
  const auto stats = manager->stats();
  const auto frames = manager->key_stats("API-1").connections.at(0).frames;
  CHECK(stats.messages_delivered == 16);  // the buffer, full since
  // A message is a frame: every frame is counted once, delivered or dropped
  // (give or take the two that may pass while the counters are read one after
  // the other), and its 20 ticks went with it.
  CHECK(stats.messages_dropped + stats.messages_delivered <= frames + 2);
  CHECK(stats.messages_dropped + stats.messages_delivered + 2 >= frames);
  CHECK(stats.ticks >= 20 * (frames - 2));
  CHECK(stats.reconnects == 0);
  CHECK(server.stats().frames_skipped <= 2);  // the client kept reading

  // A consumer that starts reading gets the buffer and then live messages.
  ChannelReader reader;
  reader.start(manager->channel());
  CHECK(eventually([&] { return reader.messages() > 16 + 4; }));
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite multi manager conflates ticks for a slow consumer and ends on the latest", "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.start();
  ChannelReader reader;
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 1, [](Options& o) {
    // A watchdog longer than the test: the silenced connection must stay put.
    o.per_key.max_connections = 1;
    o.channel_capacity = 16;
    o.conflate_ticks = true;
    o.per_key.connection.watchdog_timeout = 10s;
  });
  manager->start();
  const auto tokens = nse_tokens(10);
  manager->subscribe(tokens, Mode::quote);

  REQUIRE(eventually([&] { return manager->stats().ticks_conflated > 100; }));
  CHECK(manager->stats().messages_dropped == 0);  // 10 instruments fit in the held set

  // Freeze the stream, then catch up.
  server.silence_connections(api_keys[0].api_key);
  const auto frames = [&] { return manager->key_stats("API-1").connections.at(0).frames; };
  REQUIRE(settles(frames, 150ms));
  reader.start(manager->channel());
  REQUIRE(settles([&] { return reader.messages(); }, 150ms));

  // The simulator numbers its frames: a tick's volume is 1000 + 10 x the
  // frame's sequence (from 0). The last frame that reached the socket is
  // frame number `frames - 1`; every instrument must end on it, and no
  // instrument ever went back to an older tick.
  const auto latest_volume = 1000 + 10 * (frames() - 1);
  CHECK(manager->key_stats("API-1").reconnects == 0);
  for (const auto token : tokens) {
    INFO("token " << token);
    const auto ticks = reader.ticks_of(token);
    REQUIRE_FALSE(ticks.empty());
    CHECK(ticks.back().volume_traded == latest_volume);
    for (std::size_t i = 1; i < ticks.size(); ++i) CHECK(ticks[i].volume_traded > ticks[i - 1].volume_traded);
  }
  std::size_t ticks_read = 0;
  for (const auto token : tokens) ticks_read += reader.ticks_of(token).size();
  CHECK(ticks_read < frames() * tokens.size());  // intermediate ticks were skipped
  stop_and_drain(*manager, reader);
}

TEST_CASE("kite ticker never shows an access token or API key in logs, stats or errors", "[kite][ticker][multi]") {
  std::mutex lines_mutex;
  std::vector<std::string> lines;
  // Captures every log line, debug included, until the end of the test (also
  // when a REQUIRE ends it early: the sink must not outlive `lines`).
  struct CaptureLog {
    explicit CaptureLog(floodgate::LogSink sink) : previous(floodgate::set_log_sink(std::move(sink))) {
      floodgate::set_log_level(floodgate::LogLevel::debug);
    }
    ~CaptureLog() {
      floodgate::set_log_level(floodgate::LogLevel::info);
      floodgate::set_log_sink(previous);
    }
    floodgate::LogSink previous;
  } capture([&](floodgate::LogLevel, std::string_view line) {
    std::lock_guard lock(lines_mutex);
    lines.emplace_back(line);
  });
  const std::string wrong_token = "tok-wrong-7ac31e";
  std::vector<std::string> texts;  // exception messages and error texts to check too
  {
    KiteTickerServer server(multi_server_options());
    server.start();
    ChannelReader reader;
    IoThreads io;
    auto keys = test_keys(3);
    keys[1].payload.access_token = Secret(wrong_token);
    auto connection_settings = settings_for(server);
    connection_settings.watchdog_timeout = 400ms;
    auto manager = std::make_unique<kite::MultiKeyTickerManager>(
        io.executor(), Options{.keys = std::move(keys),
                               .per_key = {.max_connections = 1, .max_instruments_per_connection = 20,
                                           .connection = connection_settings},
                               .health_check_interval = 50ms,
                               .failover_after = 2s});
    reader.start(manager->channel());
    manager->start();
    manager->subscribe(nse_tokens(30));
    // API-2 is refused (403) and fails over; API-1 is dropped, sent bad
    // frames and silenced; every one of those is logged.
    // failover_after is 2 s of real time: allow a loaded machine (and TSan) five times that.
    REQUIRE(eventually([&] { return manager->stats().failovers == 1; }, 10s));
    REQUIRE(eventually([&] { return reader.ids() == std::set<std::string>{"API-1", "API-3"}; }));  // ids, never keys
    const auto api1 = [&] { return manager->key_stats("API-1"); };
    const auto reconnects = api1().reconnects;
    server.drop_connections(api_keys[0].api_key);
    REQUIRE(eventually([&] { return api1().reconnects > reconnects; }));
    // Ticks on the new connection: the simulator has finished its side of the
    // upgrade (a frame sent before that would break the handshake).
    const auto ticks = api1().ticks;
    REQUIRE(eventually([&] { return api1().ticks > ticks; }));
    REQUIRE(server.send_malformed_frame(api_keys[0].api_key, kite::FrameError::Kind::truncated_packet) == 1);
    REQUIRE(eventually([&] { return api1().malformed_frames >= 1; }));
    server.silence_connections(api_keys[0].api_key);
    REQUIRE(eventually([&] { return api1().watchdog_timeouts >= 1; }));
    const auto error_text = [](const std::function<void()>& call) -> std::string {
      try {
        call();
      } catch (const floodgate::Error& e) {
        return e.what();
      }
      FAIL_CHECK("expected floodgate::Error");
      return {};
    };
    texts.push_back(error_text([&] { manager->subscribe(nse_tokens(50, 8000)); }));
    texts.push_back(error_text([&] { manager->subscribe_on("API-1", nse_tokens(50, 8000)); }));
    texts.push_back(error_text([&] { manager->key_stats("API-9"); }));
    texts.push_back(error_text([&] { manager->connection_channel("API-1", 0); }));
    for (const auto& api : manager->all_key_stats()) {
      texts.push_back(api.id);
      for (const auto& connection : api.connections) {
        texts.push_back(connection.last_error.message());
        texts.emplace_back(kite::to_string(connection.state));
      }
    }
    stop_and_drain(*manager, reader);
  }
  std::lock_guard lock(lines_mutex);
  CHECK(lines.size() >= 4);  // the faults above were logged
  std::vector<std::string> secrets{wrong_token};
  for (const auto& key : api_keys) {
    secrets.emplace_back(key.api_key);
    secrets.emplace_back(key.token);
  }
  for (const auto& text : lines) {
    for (const auto& secret : secrets) CHECK_THAT(text, !Catch::Contains(secret));
  }
  for (const auto& text : texts) {
    for (const auto& secret : secrets) CHECK_THAT(text, !Catch::Contains(secret));
  }
}

// ---- batched delivery, callbacks, health snapshots ------------------------------------------------

TEST_CASE("kite tick batches share pooled storage that is reused, and outlive their pool's owners",
          "[kite][ticker][batch]") {
  auto pool = std::make_shared<kite::detail::TickBatchPool>(kite::MessageSource{"API-1", 2}, 2);
  auto filling = pool->take();
  filling.ticks().resize(100);
  filling.ticks()[7].instrument_token = 408065;
  kite::TickBatch batch = pool->publish(filling);
  CHECK(batch.size() == 100);
  CHECK(batch[7].instrument_token == 408065);
  CHECK(batch.api_key_id() == "API-1");
  CHECK(batch.connection() == 2);
  const kite::Tick* storage = batch.begin();
  {
    const kite::TickBatch copy = batch;  // a handle, not the ticks
    CHECK(copy.begin() == storage);
    batch = {};
    CHECK(pool->idle() == 0);  // the copy still holds it
    CHECK(copy.size() == 100);
  }
  CHECK(pool->idle() == 1);

  // The next frame gets the same storage, emptied, its capacity kept: no allocation.
  auto again = pool->take();
  CHECK(again.ticks().empty());
  CHECK(again.ticks().capacity() >= 100);
  CHECK(again.ticks().data() == storage);
  pool->discard(again);
  CHECK(pool->idle() == 1);

  // At most max_idle blocks are kept when a backlog drains.
  {
    std::vector<kite::TickBatch> backlog;
    for (int i = 0; i < 4; ++i) backlog.push_back(pool->publish(pool->take()));
    CHECK(pool->idle() == 0);
  }
  CHECK(pool->idle() == 2);

  // A batch keeps its pool (and the key id) alive.
  kite::TickBatch survivor;
  {
    auto short_lived = std::make_shared<kite::detail::TickBatchPool>(kite::MessageSource{"API-9", 0}, 4);
    auto f = short_lived->take();
    f.ticks().push_back(kite::Tick{.instrument_token = 256265});
    survivor = short_lived->publish(f);
  }
  CHECK(survivor.size() == 1);
  CHECK(survivor[0].instrument_token == 256265);
  CHECK(survivor.api_key_id() == "API-9");
}

TEST_CASE("kite manager delivers one batch per frame with all its ticks, to on_ticks and the handler",
          "[kite][ticker][batch]") {
  KiteTickerServer server(server_options());
  server.start();
  std::mutex mutex;
  std::vector<std::size_t> callback_sizes, handler_sizes;
  std::optional<kite::TickBatch> kept;
  const auto tokens = nse_tokens(25);
  {
    IoThreads io;
    auto options = manager_options(server, 1, 100);
    options.callbacks.on_ticks = [&](const kite::TickBatch& ticks) {
      std::lock_guard lock(mutex);
      callback_sizes.push_back(ticks.size());
      if (!kept) kept = ticks;  // held past the manager's end
    };
    kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), options,
                                    [&](kite::TickerMessage&& message) {
                                      std::lock_guard lock(mutex);
                                      if (const auto* ticks = message.ticks()) {
                                        CHECK(message.api_key_id() == "API-1");
                                        CHECK(message.connection() == 0);
                                        CHECK(&ticks->api_key_id() == &message.api_key_id());  // interned
                                        handler_sizes.push_back(ticks->size());
                                      }
                                    });
    manager.start();
    manager.subscribe(tokens, Mode::quote);
    REQUIRE(eventually([&] {
      std::lock_guard lock(mutex);
      return handler_sizes.size() >= 20;
    }));
    manager.stop();
  }
  std::lock_guard lock(mutex);
  // The simulator sends every subscribed instrument in each frame: one
  // message per frame, never one per tick.
  const auto frames = server.stats().frames_sent;
  CHECK(handler_sizes.size() <= frames);
  CHECK(std::all_of(handler_sizes.begin(), handler_sizes.end(), [](std::size_t n) { return n == 25; }));
  CHECK(callback_sizes.size() == handler_sizes.size());
  REQUIRE(kept);
  CHECK(kept->size() == 25);
  CHECK(kept->api_key_id() == "API-1");
  std::set<std::uint32_t> seen;
  for (const auto& tick : *kept) seen.insert(tick.instrument_token);
  CHECK(seen == std::set<std::uint32_t>(tokens.begin(), tokens.end()));
}

TEST_CASE("kite manager raises the official clients' events with their meanings", "[kite][ticker][callbacks]") {
  KiteTickerServer server(server_options());
  server.start();
  std::mutex mutex;
  std::vector<std::string> events;
  const auto note = [&](std::string event) {
    std::lock_guard lock(mutex);
    events.push_back(std::move(event));
  };
  const auto saw = [&](const std::string& event) {
    std::lock_guard lock(mutex);
    return std::count(events.begin(), events.end(), event);
  };
  auto options = manager_options(server, 1, 100);
  options.callbacks = {
      .on_ticks = [&](const kite::TickBatch&) { note("ticks"); },
      .on_connect = [&](const kite::MessageSource& s) { note(fmt::format("connect {}#{}", s.api_key_id, s.connection)); },
      .on_close = [&](const kite::MessageSource&, std::error_code reason) { note(reason ? "close" : "close without reason"); },
      .on_reconnect =
          [&](const kite::MessageSource&, std::size_t attempt, std::chrono::milliseconds delay) {
            note(fmt::format("reconnect {}{}", attempt, delay >= 20ms ? "" : " too soon"));
          },
      .on_noreconnect =
          [&](const kite::MessageSource&, std::error_code reason) {
            note(reason == floodgate::errc::auth_failed ? "noreconnect auth" : "noreconnect");
          },
      .on_order_update =
          [&](const kite::MessageSource&, const nlohmann::json& order) {
            note(fmt::format("order {}", order.value("order_id", "?")));
          },
      .on_error =
          [&](const kite::MessageSource&, std::error_code reason, std::string_view message) {
            note(reason == floodgate::errc::bad_request ? fmt::format("server error {}", message) : "error");
          },
  };
  IoThreads io;
  kite::TickerManager manager(io.executor(), "API-1", kite_key(key_a, token_a), options);
  manager.start();
  manager.subscribe(nse_tokens(3), Mode::ltp);
  REQUIRE(eventually([&] { return saw("connect API-1#0") == 1 && saw("ticks") > 2; }));

  server.send_text_message(key_a, R"({"type":"order","data":{"order_id":"151220000000000"}})");
  server.send_text_message(key_a, R"({"type":"error","data":"Invalid mode"})");
  CHECK(eventually([&] { return saw("order 151220000000000") == 1 && saw("server error Invalid mode") == 1; }));

  // Lost after it was up: on_close, then on_reconnect(1, pause), then up again.
  server.drop_connections(key_a);
  CHECK(eventually([&] { return saw("close") == 1 && saw("reconnect 1") == 1 && saw("connect API-1#0") == 2; }));

  // Refused: the attempt's error, then no more reconnects.
  server.set_access_token(key_a, Secret("tok-a-rotated-4242"));
  CHECK(eventually([&] { return saw("noreconnect auth") == 1; }));
  CHECK(saw("close") == 2);
  CHECK(saw("error") >= 1);
  manager.stop();
  std::lock_guard lock(mutex);
  CHECK(std::find(events.begin(), events.end(), "close without reason") == events.end());
  CHECK(std::find(events.begin(), events.end(), "reconnect 1 too soon") == events.end());
}

TEST_CASE("kite keys show in the status table and Prometheus text like a pool's credentials, with uptime",
          "[kite][ticker][multi]") {
  KiteTickerServer server(multi_server_options());
  server.set_key_enabled(api_keys[1].api_key, false);  // API-2 is refused
  server.start();
  IoThreads io;
  auto manager = make_multi(io.executor(), server, 2, [](Options& o) { o.per_key.max_connections = 2; });
  manager->start();
  manager->subscribe(nse_tokens(4));
  REQUIRE(eventually([&] {
    return manager->key_stats("API-1").health == kite::KeyHealth::live &&
           manager->key_stats("API-2").health == kite::KeyHealth::failed;
  }));
  std::this_thread::sleep_for(30ms);  // uptime is measured on the real clock the sockets run on

  const auto snapshots = manager->snapshot();
  REQUIRE(snapshots.size() == 2);
  CHECK(snapshots[0].id == "API-1");
  CHECK(snapshots[0].state == floodgate::CredentialState::ready);
  CHECK(snapshots[0].successes >= 2);  // two connections up (more if one was replaced meanwhile)
  CHECK(snapshots[1].state == floodgate::CredentialState::disabled);
  CHECK(snapshots[1].disabled_reason == "access token refused");

  const auto table = floodgate::status_table(snapshots);
  CHECK_THAT(table, Catch::Contains("✅ API-1: Ready"));
  CHECK_THAT(table, Catch::Contains("⛔ API-2: Disabled (access token refused)"));
  const auto metrics = floodgate::prometheus_text(snapshots, {.pool = "kite"});
  CHECK_THAT(metrics, Catch::Contains("floodgate_up{credential=\"API-1\",pool=\"kite\"} 1"));
  CHECK_THAT(metrics, Catch::Contains("floodgate_disabled{credential=\"API-2\",pool=\"kite\"} 1"));
  CHECK_THAT(metrics, !Catch::Contains("kitekey") && !Catch::Contains("tok-"));

  // Uptime, and the per-connection distribution of instruments (all four on
  // API-1 once API-2's have failed over).
  CHECK(eventually([&] {
    const auto connections = manager->key_stats("API-1").connections;
    return connections.size() == 2 && connections[0].subscriptions == 2 && connections[1].subscriptions == 2;
  }));
  const auto api1 = manager->key_stats("API-1");
  CHECK(api1.uptime >= 30ms);
  for (const auto& connection : api1.connections) CHECK(connection.uptime >= 30ms);
  CHECK(manager->key_stats("API-2").connections.at(0).uptime == 0ms);
  CHECK(manager->stats().uptime >= 30ms);
  manager->stop();
}
