// libFuzzer target for TDLib's JSON replies: parsed as TdjsonClient parses
// every message td_json_client_receive hands over, then classified with
// classify_td_response. Nothing may crash; a flood wait is never negative.
#include "floodgate/telegram/flood_errors.hpp"

#include "fuzz_support.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tg = floodgate::telegram;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto reply = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) return 0;
  if (const auto error = tg::classify_td_response(reply)) {
    FUZZ_REQUIRE(error->retry_after.count() >= 0 && error->retry_after <= floodgate::kMaxServerWait);
    if (error->kind != floodgate::OutcomeKind::flood_wait) FUZZ_REQUIRE(error->retry_after.count() == 0);
  } else {
    FUZZ_REQUIRE(!reply.is_object() || !reply.contains("@type") || reply["@type"] != "error");
  }
  // The bare message classifier sees the raw text too (FLOOD_WAIT_X and friends).
  const auto direct = tg::classify_td_error(static_cast<int>(size % 600), text);
  FUZZ_REQUIRE(direct.retry_after.count() >= 0);
  return 0;
}
