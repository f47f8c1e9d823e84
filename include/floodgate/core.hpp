// floodgate/core.hpp: the whole header-only core in one include.
#pragma once

#include "floodgate/core/clock.hpp"
#include "floodgate/core/cooldown_store.hpp"
#include "floodgate/core/credential.hpp"
#include "floodgate/core/env.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/format.hpp"
#include "floodgate/core/health.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/core/strategy.hpp"
