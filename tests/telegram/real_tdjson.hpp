// The real libtdjson of the telegram_real_tdlib_tests target (prebuilt-tdlib from
// npm, installed by scripts/bootstrap; REAL_TDJSON_PATH is set by CMake, and
// FLOODGATE_TEST_TDJSON overrides it).
#pragma once

#include <floodgate/telegram/tdjson_library.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace floodgate::test {

inline std::string real_tdjson_path() {
  if (const char* env = std::getenv("FLOODGATE_TEST_TDJSON"); env != nullptr && *env != '\0') return env;
  return REAL_TDJSON_PATH;
}

inline std::shared_ptr<telegram::TdjsonLibrary> real_tdjson() {
  const auto path = real_tdjson_path();
  INFO("real libtdjson expected at " << path << " (run scripts/bootstrap, or set FLOODGATE_TEST_TDJSON)");
  REQUIRE(std::filesystem::exists(path));
  return telegram::TdjsonLibrary::open({.path = path});
}

}  // namespace floodgate::test
