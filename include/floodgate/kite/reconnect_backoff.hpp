// floodgate/kite/reconnect_backoff.hpp: when a ticker connection dials again.
//
// The ticker reconnects with the project's one backoff, floodgate::Backoff
// (core/backoff.hpp: full jitter above the floor, doubling up to the cap,
// reset only by a healthy connection, giving up after max_attempts). These
// are its names in the kite namespace, where KiteTickerSettings::reconnect
// and users' code spell it.
#pragma once

#include <chrono>

#include "floodgate/core/backoff.hpp"

namespace floodgate::kite {

using ReconnectPolicy = BackoffPolicy;

template <class Clock = std::chrono::steady_clock>
using ReconnectBackoff = Backoff<Clock>;

using floodgate::backoff_delay;

}  // namespace floodgate::kite
