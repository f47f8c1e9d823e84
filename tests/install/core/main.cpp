// A core-only user: the header-only pool and limiters, fmt and nlohmann/json,
// and nothing else. install_and_consume.cmake builds it with Boost's and
// OpenSSL's headers out of the compiler's reach, so an include of either
// anywhere under floodgate/core.hpp fails the build.
#include <floodgate/core.hpp>
#include <floodgate/version.hpp>

#include <fmt/format.h>

#include <string>

static_assert(FLOODGATE_VERSION_MAJOR >= 0 && FLOODGATE_VERSION_MINOR >= 0 && FLOODGATE_VERSION_PATCH >= 0);

struct ApiKey {
  floodgate::Secret key;
};

int main() {
  floodgate::CredentialPool<ApiKey> pool;
  pool.add({"key-1", {floodgate::Secret("sk-1111111111")}});
  pool.add({"key-2", {floodgate::Secret("sk-2222222222")}});

  auto first = pool.acquire();
  if (!first) return 1;
  const std::string cooled = first->id();
  first->flood_wait(std::chrono::seconds(60));  // told to wait: the other key serves

  auto second = pool.acquire();
  if (!second || second->id() == cooled) return 2;
  fmt::print("core consumer: floodgate {}, {} cooling, {} leased ({})\n", FLOODGATE_VERSION, cooled, second->id(),
             second->payload().key);
  second->success();
  return 0;
}
