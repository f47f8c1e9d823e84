// libFuzzer target for Bot API replies: the first two bytes pick the HTTP
// status, the rest is the body, decoded and classified as BotApiClient does
// with every reply. Nothing may crash, and a decoded reply must be one of
// "transport error", "ok with a result" or "a Bot API error".
#include "floodgate/telegram/bot_api_client.hpp"

#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tg = floodgate::telegram;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int status = 100 + (data[0] << 8 | data[1]) % 500;
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

  const tg::BotApiResponse response = tg::decode_bot_api_response(status, body);
  FUZZ_REQUIRE(response.http_status == status);
  FUZZ_REQUIRE(!(response.transport && response.error));
  FUZZ_REQUIRE(response.ok() == !response.error_code());
  if (response.error && response.error->retry_after) FUZZ_REQUIRE(response.error->retry_after->count() >= 0);
  (void)response.describe();
  if (response.ok()) (void)tg::Message::from_json(response.result);
  (void)tg::classify(response, data[0] & 1);
  return 0;
}
