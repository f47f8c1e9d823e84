// RedisClient and the URL parser against a real redis-server.
#include <catch2/catch.hpp>

#include <boost/asio/use_future.hpp>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "../telegram/io_runner.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/redis/client.hpp"
#include "floodgate/redis/url.hpp"
#include "redis_server.hpp"

using floodgate::redis::parse_redis_url;
using floodgate::redis::RedisClient;
using floodgate::redis::RedisClientOptions;
using floodgate::redis::RedisReply;
using floodgate::test::IoRunner;
using floodgate::test::RedisServer;
namespace asio = boost::asio;

namespace {

// One command, waited for on this (non-I/O) thread.
std::pair<std::error_code, RedisReply> run(RedisClient& client, std::vector<std::string> args) {
  std::promise<std::pair<std::error_code, RedisReply>> done;
  client.async_command(std::move(args),
                       [&](std::error_code ec, RedisReply r) { done.set_value({ec, std::move(r)}); });
  return done.get_future().get();
}

RedisClientOptions quick() {
  RedisClientOptions o;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.command_timeout = std::chrono::milliseconds(1000);
  o.reconnect.floor = std::chrono::milliseconds(20);
  o.reconnect.cap = std::chrono::milliseconds(100);
  return o;
}

// Collects log lines, to check that no secret reaches them.
struct LogCapture {
  LogCapture() {
    previous = floodgate::set_log_sink([this](floodgate::LogLevel, std::string_view line) {
      std::lock_guard lock(mutex);
      text += std::string(line) + "\n";
    });
  }
  ~LogCapture() { floodgate::set_log_sink(previous); }
  std::string all() {
    std::lock_guard lock(mutex);
    return text;
  }
  floodgate::LogSink previous;
  std::mutex mutex;
  std::string text;
};

}  // namespace

TEST_CASE("redis URL: every part, defaults, and errors that keep the password out") {
  auto u = parse_redis_url("rediss://app:s%40cret@redis.internal:6380/2");
  CHECK(u.tls);
  CHECK(u.host == "redis.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 2);
  CHECK(u.user == "app");
  CHECK(u.password.reveal() == "s@cret");
  CHECK(u.redacted() == "rediss://app:****@redis.internal:6380/2");

  auto d = parse_redis_url("redis://localhost");
  CHECK_FALSE(d.tls);
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
  CHECK(d.user.empty());
  CHECK(d.password.empty());

  auto p = parse_redis_url("redis://:pw@[::1]:7000");
  CHECK(p.host == "::1");
  CHECK(p.user.empty());
  CHECK(p.password.reveal() == "pw");

  for (const char* bad : {"http://u:topsecret@h", "redis://u:topsecret@h/db1", "redis://u:topsecret@h:99999",
                          "redis://u:topsecret@h?x=1", "not a url topsecret", "redis://u:topsecret@/0"}) {
    INFO(bad);
    try {
      parse_redis_url(bad);
      FAIL("accepted");
    } catch (const floodgate::Error& e) {
      CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
    }
  }
}

TEST_CASE("redis client: commands, pipelining and order over one connection") {
  RedisServer server;
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()), quick());
  client.start();
  CHECK(run(client, {"SET", "k", std::string("a\0b\r\n", 5)}).second.text == "OK");
  auto got = run(client, {"GET", "k"});
  CHECK_FALSE(got.first);
  CHECK(got.second.text == std::string("a\0b\r\n", 5));

  // 2000 commands issued at once complete once each, in order.
  constexpr int n = 2000;
  std::vector<std::future<RedisReply>> replies;
  for (int i = 0; i < n; ++i) {
    replies.push_back(client.async_command({"INCR", "counter"}, asio::use_future(
                                                                    [](std::error_code ec, RedisReply r) {
                                                                      if (ec) throw std::system_error(ec);
                                                                      return r;
                                                                    })));
  }
  for (int i = 0; i < n; ++i) REQUIRE(replies[static_cast<std::size_t>(i)].get().integer == i + 1);

  auto err = run(client, {"NOSUCHCOMMAND"});
  CHECK_FALSE(err.first);
  CHECK(err.second.is_error());
}

TEST_CASE("redis client: a script runs by SHA and is loaded again after NOSCRIPT") {
  RedisServer server;
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url(server.url()), quick());
  client.start();
  const floodgate::redis::Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto eval = [&] {
    return client.async_eval(script, {"n"}, {"5"}, asio::use_future([](std::error_code ec, RedisReply r) {
                               if (ec) throw std::system_error(ec);
                               return r;
                             }))
        .get();
  };
  CHECK(eval().integer == 5);  // first call: NOSCRIPT, loaded, called
  CHECK(eval().integer == 10);
  CHECK(run(client, {"SCRIPT", "FLUSH"}).second.text == "OK");
  CHECK(eval().integer == 15);  // flushed: loaded again, and run once
  CHECK(run(client, {"GET", "n"}).second.text == "15");
}

TEST_CASE("redis client: nothing listening fails fast with unavailable, never hangs") {
  int port = 0;
  {
    RedisServer gone;
    port = gone.port();
  }
  IoRunner io;
  RedisClient client(io.executor(), parse_redis_url("redis://127.0.0.1:" + std::to_string(port)), quick());
  client.start();
  const auto started = std::chrono::steady_clock::now();
  auto [ec, reply] = run(client, {"PING"});
  CHECK(ec == floodgate::redis::errc::unavailable);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  CHECK_FALSE(client.connected());
}

TEST_CASE("redis client: a slow answer times out, and the client reconnects") {
  RedisServer server;
  IoRunner io;
  auto options = quick();
  options.command_timeout = std::chrono::milliseconds(200);
  RedisClient client(io.executor(), parse_redis_url(server.url()), options);
  client.start();
  REQUIRE(run(client, {"PING"}).second.text == "PONG");
  auto [ec, reply] = run(client, {"BLPOP", "nothing", "0.6"});  // blocks past the timeout
  CHECK(ec == floodgate::redis::errc::timeout);
  REQUIRE(io.wait_until([&] { return client.connected(); }, std::chrono::seconds(5)));
  CHECK(run(client, {"PING"}).second.text == "PONG");
}

TEST_CASE("redis client: a restarted server is dialled again and used") {
  RedisServer server;
  IoRunner io;
  std::atomic<int> ready{0};
  RedisClient client(io.executor(), parse_redis_url(server.url()), quick());
  client.on_ready([&] { ++ready; });
  client.start();
  REQUIRE(run(client, {"SET", "k", "1"}).second.text == "OK");
  server.restart();
  REQUIRE(io.wait_until([&] { return ready.load() == 2; }, std::chrono::seconds(5)));
  auto [ec, reply] = run(client, {"GET", "k"});
  CHECK_FALSE(ec);
  CHECK(reply.type == RedisReply::Type::nil);  // a fresh, empty server
}

TEST_CASE("redis client: AUTH with an ACL user, and a wrong password is refused without being echoed") {
  RedisServer server({.user = "app", .password = "right-password"});
  IoRunner io;
  {
    RedisClient client(io.executor(), parse_redis_url(server.url("app", "right-password")), quick());
    client.start();
    CHECK(run(client, {"ACL", "WHOAMI"}).second.text == "app");
  }
  LogCapture logs;
  RedisClient client(io.executor(), parse_redis_url(server.url("app", "wrong-password-xyz")), quick());
  client.start();
  auto [ec, reply] = run(client, {"PING"});
  CHECK(ec == floodgate::errc::auth_failed);
  CHECK(logs.all().find("authentication refused") != std::string::npos);
  CHECK(logs.all().find("wrong-password-xyz") == std::string::npos);
  // Later commands fail at once with the same reason while it keeps trying.
  CHECK(run(client, {"PING"}).first == floodgate::errc::auth_failed);
}

TEST_CASE("redis client: rediss:// verifies the server's certificate") {
  RedisServer server({.tls = true});
  IoRunner io;
  auto options = quick();
  options.tls.ca_pem = server.ca_pem();
  RedisClient client(io.executor(), parse_redis_url(server.url()), options);
  client.start();
  CHECK(run(client, {"PING"}).second.text == "PONG");

  // Trusting another CA: the handshake fails, nothing is sent.
  auto other = quick();
  other.tls.ca_pem = floodgate::sim::TestCertificates::generate().ca_pem;
  RedisClient untrusting(io.executor(), parse_redis_url(server.url()), other);
  untrusting.start();
  CHECK(run(untrusting, {"PING"}).first == floodgate::redis::errc::unavailable);
}

TEST_CASE("redis client: close ends commands in flight with shut_down, and later ones too") {
  RedisServer server;
  IoRunner io;
  auto client = std::make_unique<RedisClient>(io.executor(), parse_redis_url(server.url()), quick());
  client->start();
  REQUIRE(run(*client, {"PING"}).second.text == "PONG");
  auto pending = client->async_command({"BLPOP", "nothing", "0"}, asio::use_future);
  client->close();
  CHECK(std::get<0>(pending.get()) == floodgate::errc::shut_down);
  CHECK(run(*client, {"PING"}).first == floodgate::errc::shut_down);
}
