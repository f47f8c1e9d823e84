// floodgate/core.hpp: the header-only core in one include: pool, strategies,
// outcomes, limiters, retry policy, environment, status formatting. Pure
// logic: no Boost, no JSON, no POSIX headers.
//
// Not included, because they bring heavy dependencies or belong to a service:
// the JSON cooldown file (core/cooldown_store.hpp), Telegram's credentials and
// limits (telegram/credentials.hpp, telegram/limits.hpp), Kite's keys
// (kite/credentials.hpp).
#pragma once

#include "floodgate/core/clock.hpp"
#include "floodgate/core/cooldown_sink.hpp"
#include "floodgate/core/credential.hpp"
#include "floodgate/core/env.hpp"
#include "floodgate/core/error.hpp"
#include "floodgate/core/format.hpp"
#include "floodgate/core/health.hpp"
#include "floodgate/core/keyed_concurrency_limit.hpp"
#include "floodgate/core/keyed_limiter.hpp"
#include "floodgate/core/limit_set.hpp"
#include "floodgate/core/log.hpp"
#include "floodgate/core/outcome.hpp"
#include "floodgate/core/pool.hpp"
#include "floodgate/core/rate.hpp"
#include "floodgate/core/retry_policy.hpp"
#include "floodgate/core/secret.hpp"
#include "floodgate/core/strategy.hpp"
#include "floodgate/core/token_bucket.hpp"
