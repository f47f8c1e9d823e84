#include "floodgate/redis/limit_set.hpp"

namespace floodgate::redis::detail {

// KEYS: one per applicable limit (per-key limits first). ARGV[1] = tokens
// wanted; then per limit: T (µs per token) and burst·T (µs). Times in µs from
// Redis' TIME: below 2^53 for centuries, so exact in Lua's doubles.
// Returns {1, 0, 0} when every limit admits (and takes from all), else
// {0, index of the first refusing limit (1-based), µs until all would admit}.
const Script& gcra_script() {
  static const Script script(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local refused, wait = 0, 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local new_tat = tat + n * interval
  local over = new_tat - now - capacity
  if over > 0 then
    if refused == 0 then refused = i end
    if over > wait then wait = over end
  end
  tats[i] = new_tat
end
if refused > 0 then return {0, refused, wait} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {1, 0, 0}
)lua");
  return script;
}

}  // namespace floodgate::redis::detail
