#!/usr/bin/env bash
# Checks DESIGN.md's layering by what the compiler actually opens:
# - no header of core/ pulls in Boost;
# - the pool, the strategies, the limiters and the outcome vocabulary pull in
#   neither nlohmann/json nor POSIX headers (only the JSON cooldown file may).
# Usage: check_layering.sh <c++ compiler> <include dir>
set -euo pipefail
cxx=$1
include=$2
failed=0

# The headers a header opens, as `-H` prints them ("<depth dots> <path>"), each
# printed as "<includer> <path>"; the includer of a depth-1 header is "-".
opened() {
  "$cxx" -std=c++20 -I "$include" -H -fsyntax-only -x c++ - <<<"#include <$1>" 2>&1 >/dev/null |
    awk '/^\.+ / { d = length($1); stack[d] = $2; print (d == 1 ? "-" : stack[d - 1]), $2 }'
}

# refuse <header> <regex> <what> [direct]: no opened header matches <regex>;
# with "direct", only headers that a floodgate header opens itself count (the
# standard library's own use of POSIX is not ours).
refuse() {
  local hits
  if [ "${4:-}" = direct ]; then
    # core/detail/huge_pages.hpp may open <sys/mman.h> (madvise for huge pages).
    hits=$(opened "$1" | awk -v re="$2" '$1 ~ /floodgate\// && !($1 ~ /detail\/huge_pages\.hpp$/ && $2 ~ /sys\/mman\.h$/) && $2 ~ re { print $2 }' || true)
  else
    hits=$(opened "$1" | awk -v re="$2" '$2 ~ re { print $2 }' || true)
  fi
  if [ -n "$hits" ]; then
    echo "FAIL: $1 pulls in $3:"; echo "$hits" | head -5 | sed 's/^/  /'
    failed=1
  else
    echo "ok:   $1 has no $3"
  fi
}

for header in "$include"/floodgate/core/*.hpp "$include"/floodgate/core.hpp; do
  refuse "${header#"$include"/}" '/boost/' "Boost"
done
for header in floodgate/core/pool.hpp floodgate/core/strategy.hpp floodgate/core/outcome.hpp \
              floodgate/core/token_bucket.hpp floodgate/core/keyed_limiter.hpp floodgate/core/limit_set.hpp \
              floodgate/core/keyed_concurrency_limit.hpp floodgate/core/cooldown_sink.hpp floodgate/core.hpp; do
  refuse "$header" '/nlohmann/' "nlohmann/json"
  refuse "$header" '/(unistd|fcntl|dlfcn|pthread)\.h$|/sys/[a-z_]+\.h$' "POSIX headers" direct
done
# The WebSocket client does not include the HTTP client.
refuse floodgate/net/websocket.hpp 'floodgate/net/http_client\.hpp$' "the HTTP client"
# hiredis stays inside floodgate::redis's sources: its users include none of it.
for header in "$include"/floodgate/redis/*.hpp; do
  refuse "${header#"$include"/}" '/hiredis/' "hiredis"
done
exit $failed
