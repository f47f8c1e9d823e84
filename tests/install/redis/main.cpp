// floodgate::redis from an installed tree, found as `COMPONENTS redis` (which
// brings hiredis through the installed Findhiredis.cmake). No Redis runs here:
// a client aimed at a closed port must end its command with a definite
// redis::errc::unavailable, which takes the library, hiredis and Asio all
// linked and running.
#include <floodgate/redis/client.hpp>
#include <floodgate/redis/error.hpp>
#include <floodgate/redis/url.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <system_error>

int main() {
  boost::asio::io_context io;
  const auto url = floodgate::redis::parse_redis_url("redis://app:s3cret@127.0.0.1:1/2");
  floodgate::redis::RedisClient redis(io.get_executor(), url, {.connect_timeout = std::chrono::milliseconds(500)});
  redis.start();
  std::error_code result;
  redis.async_command({"PING"}, [&](std::error_code ec, const floodgate::redis::RedisReply&) {
    result = ec;
    redis.close();
  });
  io.run();
  std::printf("redis consumer: %s, PING: %s\n", url.redacted().c_str(), result.message().c_str());
  return result == floodgate::redis::errc::unavailable ? 0 : 1;
}
