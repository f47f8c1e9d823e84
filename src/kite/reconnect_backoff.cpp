// The reconnect pause: full jitter above the floor, see reconnect_backoff.hpp.
#include <floodgate/kite/reconnect_backoff.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace floodgate::kite {

std::chrono::milliseconds backoff_delay(const ReconnectPolicy& policy, std::size_t failures, double unit_random) {
  const auto floor = std::max(policy.floor, std::chrono::milliseconds(0));
  const auto cap = std::max(policy.cap, floor);
  // 2^62 ms is far past any cap, and the doubles below cannot overflow.
  const double exponent = static_cast<double>(std::min<std::size_t>(failures == 0 ? 0 : failures - 1, 62));
  const double ceiling =
      std::min(static_cast<double>(cap.count()), static_cast<double>(floor.count()) * std::exp2(exponent));
  const double spread = (ceiling - static_cast<double>(floor.count())) * std::clamp(unit_random, 0.0, 1.0);
  return floor + std::chrono::milliseconds(static_cast<std::int64_t>(spread));
}

}  // namespace floodgate::kite
