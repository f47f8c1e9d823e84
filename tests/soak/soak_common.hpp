// What both fault soaks share: their command line and the process's resident
// memory (for the "RSS flat after warm-up" check, skipped under a sanitizer).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <unistd.h>

namespace floodgate::soak {

// Under a sanitizer the process's resident memory is mostly the sanitizer's:
// ASan's quarantine grows by design, and ThreadSanitizer maps the program's
// debug information (about 70 MiB, its "file" and "mmap" memory in
// TSAN_OPTIONS=profile_memory) the first time it symbolizes a stack to match
// a suppression, which happens at a moment that depends on the timing. The
// program's own heap stayed at 2 MB in those runs. Leaks are LeakSanitizer's
// job in the ASan build; the RSS check runs in the normal build.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kRssChecked = false;
#else
inline constexpr bool kRssChecked = true;
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
