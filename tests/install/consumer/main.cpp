// A user's program: only the installed headers and package files. It uses the
// header-only core and one compiled library (kite, which pulls in net and
// OpenSSL), so both the include paths and the link line are checked.
#include <floodgate/core.hpp>
#include <floodgate/telegram/credentials.hpp>
#include <floodgate/kite/ticker_connection.hpp>

#include <fmt/format.h>

int main() {
  floodgate::CredentialPool<floodgate::BotToken> pool;
  pool.add({"token-1", {floodgate::Secret("1111111111:not-a-real-token")}});
  auto lease = pool.acquire();
  if (!lease) return 1;
  fmt::print("consumer: {} leased, payload {}\n", lease->id(), lease->payload().token);
  lease->success();

  const auto pause = floodgate::kite::backoff_delay({.floor = std::chrono::milliseconds(100)}, 3, 1.0);
  fmt::print("consumer: third reconnect after {} ms\n", pause.count());
  return pause.count() == 400 ? 0 : 1;
}
