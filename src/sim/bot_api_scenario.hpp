// Private to floodgate_sim: reads a Bot API scenario (JSON, the format of
// docs/bot-api-simulator.md) and applies it to the simulator's state.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bot_api_state.hpp"

namespace floodgate::sim::detail {

/// Checks the whole scenario first, then applies it; throws floodgate::Error
/// naming the bad entry (nothing applied then). `known_tokens` are tokens the
/// server already has, which the scenario may refer to.
void apply_scenario(BotApiState& state, const nlohmann::json& scenario, const std::vector<std::string>& known_tokens);

/// Reads a limits object ({"overall": "30/s", "per_chat": "1/s", ...}) over `base`.
BotApiLimits limits_from_json(const nlohmann::json& json, BotApiLimits base);

}  // namespace floodgate::sim::detail
