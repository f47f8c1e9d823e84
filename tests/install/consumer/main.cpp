// A user's program: only the installed headers and package files.
#include <floodgate/core.hpp>

#include <fmt/format.h>

int main() {
  floodgate::CredentialPool<floodgate::BotToken> pool;
  pool.add({"token-1", {floodgate::Secret("1111111111:not-a-real-token")}});
  auto lease = pool.acquire();
  if (!lease) return 1;
  fmt::print("consumer: {} leased, payload {}\n", lease->id(), lease->payload().token);
  lease->success();
  return 0;
}
