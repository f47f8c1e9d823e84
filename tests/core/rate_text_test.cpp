// Rate::parse and Rate::to_string: the one text form of a rate, in configs,
// on the simulator's command line and in fmt output.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "floodgate/core/error.hpp"
#include "floodgate/core/rate.hpp"

using floodgate::Rate;
using namespace std::chrono_literals;

TEST_CASE("Rate::parse reads counts per unit, per multiple of a unit, and decimals", "[rate]") {
  CHECK(Rate::parse("30/s") == Rate::per_second(30));
  CHECK(Rate::parse("20/min") == Rate::per_minute(20));
  CHECK(Rate::parse("20/m") == Rate::per_minute(20));
  CHECK(Rate::parse("100/h") == Rate::per_hour(100));
  CHECK(Rate::parse("5/250ms") == Rate(5, 250ms));
  CHECK(Rate::parse("1/3s") == Rate(1, 3s));
  CHECK(Rate::parse("2.5/s") == Rate(2.5, 1s));
  CHECK(Rate::parse("0/s").is_zero());
  CHECK(Rate::parse("1/second") == Rate::per_second(1));
}

TEST_CASE("Rate::parse refuses malformed text with an error that quotes it", "[rate]") {
  for (const char* bad : {"", "30", "30/", "/s", "x/s", "-1/s", "30/fortnight", "30/0s", "30/-1s", "30/s ", "1e3/s",
                          "nan/s"}) {
    INFO(bad);
    try {
      (void)Rate::parse(bad);
      FAIL("parsed");
    } catch (const floodgate::Error& e) {
      CHECK(std::string(e.what()).find(fmt::format("'{}'", bad)) != std::string::npos);
      CHECK(std::string(e.what()).find("30/s") != std::string::npos);  // says what is expected
    }
  }
}

TEST_CASE("Rate::to_string and fmt print what parse reads back", "[rate]") {
  for (const char* text : {"30/s", "20/min", "100/h", "5/250ms", "1/3s", "2.5/s", "0/s", "7/90min", "1/1500ms"}) {
    INFO(text);
    const auto rate = Rate::parse(text);
    CHECK(rate.to_string() == text);
    CHECK(fmt::format("{}", rate) == text);
    CHECK(Rate::parse(rate.to_string()) == rate);
  }
  CHECK(fmt::format("{:>8}", Rate::per_second(30)) == "    30/s");  // string_view's spec applies
  CHECK(Rate(1, 7ns).to_string() == "1/7ns");
}
