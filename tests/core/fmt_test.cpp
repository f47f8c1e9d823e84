// The core's {fmt} formatters (floodgate/core/fmt.hpp): enums by name, errors
// by message, std::error_code as category:value, secrets redacted.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "floodgate/core/fmt.hpp"

using namespace floodgate;

TEST_CASE("core enums and errors format by name, with the string format spec", "[fmt]") {
  CHECK(fmt::format("{}", errc::all_credentials_cooling) == make_error_code(errc::all_credentials_cooling).message());
  CHECK(fmt::format("{}", CredentialState::cooling) == "cooling");
  CHECK(fmt::format("{}", CredentialState::disabled) == "disabled");
  CHECK(fmt::format("{}", OutcomeKind::flood_wait) == "flood_wait");
  CHECK(fmt::format("{}", CooldownScope::destination) == "destination");
  CHECK(fmt::format("{}", LogLevel::warning) == "warning");
  CHECK(fmt::format("[{:>9}]", CredentialState::ready) == "[    ready]");
  CHECK(fmt::format("[{:<8}]", Rate::per_minute(20)) == "[20/min  ]");
}

TEST_CASE("std::error_code formats as category:value, like std::ostream and fmt 10", "[fmt]") {
  const auto ec = make_error_code(errc::cancelled);
  CHECK(fmt::format("{}", ec) == fmt::format("{}:{}", ec.category().name(), ec.value()));
  CHECK(fmt::format("{}", std::make_error_code(std::errc::timed_out)) ==
        fmt::format("generic:{}", static_cast<int>(std::errc::timed_out)));
}

TEST_CASE("a Secret formats redacted, whatever the spec", "[fmt]") {
  const Secret token("2402491234:AAHsecret");
  CHECK(fmt::format("{}", token) == "2402****");
  CHECK(fmt::format("{:>12}", token).find("AAH") == std::string::npos);
}
