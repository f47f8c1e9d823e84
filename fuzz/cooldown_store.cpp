// libFuzzer target for cooldown store files: CooldownStore::parse (what the
// store runs on the file it opens) on any bytes. It either throws StoreError
// or returns entries that are all still in force at the given time.
#include "floodgate/core/cooldown_store.hpp"

#include "fuzz_support.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using WallTime = floodgate::CooldownStore::WallTime;
  const WallTime now{std::chrono::milliseconds(1'795'815'900'000)};
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [id, entry] : floodgate::CooldownStore::parse(text, now)) {
      FUZZ_REQUIRE(entry.cooldown_until || entry.disabled || !entry.scoped.empty());
      if (entry.cooldown_until) FUZZ_REQUIRE(*entry.cooldown_until > now);
      for (const auto& [destination, until] : entry.scoped) FUZZ_REQUIRE(until > now);
    }
  } catch (const floodgate::StoreError& e) {
    FUZZ_REQUIRE(e.code() == floodgate::errc::store_corrupt);
  }
  return 0;
}
