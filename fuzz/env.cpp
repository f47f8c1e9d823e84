// libFuzzer target for `.env` files: the input is written to a memory file
// and loaded with Environment::load_dotenv, then every credential loader
// reads the result. Errors must be EnvError; a parsed line must have a valid
// name, and a value read back must be what the line gave.
#include "floodgate/core/env.hpp"
#include "floodgate/kite/credentials.hpp"
#include "floodgate/telegram/credentials.hpp"

#include "fuzz_support.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

// One memory file reused by every run; load_dotenv reopens it by path.
const std::string& memory_file() {
  static const std::string path = [] {
    const int fd = ::memfd_create("fuzz-env", 0);
    FUZZ_REQUIRE(fd >= 0);
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

void write_memory_file(const std::uint8_t* data, std::size_t size) {
  const int fd = std::stoi(memory_file().substr(memory_file().rfind('/') + 1));
  FUZZ_REQUIRE(::ftruncate(fd, 0) == 0);
  for (std::size_t done = 0; done < size;) {
    const auto n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    FUZZ_REQUIRE(n > 0);
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // Line by line, as the parser sees them.
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find('\n', start), text.size());
    if (const auto parsed = floodgate::Environment::parse_line(text.substr(start, end - start))) {
      FUZZ_REQUIRE(!parsed->first.empty() || parsed->second.empty());  // a blank line has no value
      if (!parsed->first.empty()) {
        const auto value = floodgate::Environment::from_values({{parsed->first, parsed->second}}).get(parsed->first);
        FUZZ_REQUIRE(value.value_or("") == parsed->second);
      }
    }
    start = end + 1;
  }

  write_memory_file(data, size);
  auto env = floodgate::Environment::from_values({});
  try {
    FUZZ_REQUIRE(env.load_dotenv(memory_file()));
  } catch (const floodgate::EnvError&) {
    return 0;
  }
  try {
    (void)floodgate::bot_tokens_from(env);
  } catch (const floodgate::EnvError&) {
  }
  try {
    (void)floodgate::mtproto_apps_from(env);
  } catch (const floodgate::EnvError&) {
  }
  try {
    (void)floodgate::kite_keys_from(env);
  } catch (const floodgate::EnvError&) {
  }
  return 0;
}
