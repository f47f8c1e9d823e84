// floodgate/fmt.hpp: every {fmt} formatter of floodgate in one include.
//
// Each area has its own light header, for programs that use only part of the
// library: floodgate/core/fmt.hpp (no Boost), floodgate/net/fmt.hpp,
// floodgate/kite/fmt.hpp, floodgate/redis/fmt.hpp, floodgate/http/fmt.hpp,
// floodgate/telegram/fmt.hpp. This one needs every component.
#pragma once

#include "floodgate/core/fmt.hpp"
#include "floodgate/http/fmt.hpp"
#include "floodgate/kite/fmt.hpp"
#include "floodgate/net/fmt.hpp"
#include "floodgate/redis/fmt.hpp"
#include "floodgate/telegram/fmt.hpp"
