// What both fault soaks share: their command line and the process's resident
// memory (for the "RSS flat after warm-up" check, skipped under ASan, whose
// quarantine grows by design).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

namespace floodgate::soak {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kUnderAsan = true;
#else
inline constexpr bool kUnderAsan = false;
#endif

struct Args {
  std::chrono::seconds duration{120};
  std::uint64_t seed = 1;
};

/// `[--seconds N] [--seed S]`; anything else prints usage and exits 2.
inline Args parse_args(const char* program, int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: %s [--seconds N] [--seed S]\n", program);
      std::exit(2);
    }
    const std::string value = argv[++i];
    if (name == "--seconds") {
      args.duration = std::chrono::seconds(std::stoll(value));
    } else if (name == "--seed") {
      args.seed = std::stoull(value);
    } else {
      std::fprintf(stderr, "%s: unknown option %s\n", program, name.c_str());
      std::exit(2);
    }
  }
  return args;
}

inline std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace floodgate::soak
