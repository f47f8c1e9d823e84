#!/usr/bin/env bash
# Instructions per call of ApiKeyPool versus the raw HTTPS client (one in
# flight), counted by callgrind: everything the process executes (client,
# simulator, TLS on both ends). Each side runs twice, with few and with many
# calls; the difference in instructions over the difference in calls is the
# cost of one call, without setup and teardown.
#   benchmarks/http_overhead_callgrind.sh [build dir = build] [few = 200] [many = 1200]
set -euo pipefail
build=${1:-build}
few=${2:-200}
many=${3:-1200}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {  # mode calls -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2" "$build/benchmarks/bench_api_key_pool" "$2" 1 "$1" \
    >"$out/log.$1.$2" 2>&1
  awk '/^summary:/ { print $2 }' "$out/cg.$1.$2"
}
raw=$(( $(count raw "$many") - $(count raw "$few") ))
pool=$(( $(count pool "$many") - $(count pool "$few") ))
awk -v raw="$raw" -v pool="$pool" -v calls=$((many - few)) 'BEGIN {
  printf "instructions per call: raw HTTPS client %.1f k, ApiKeyPool %.1f k, overhead %+.1f %%\n",
         raw / calls / 1000, pool / calls / 1000, (pool / raw - 1) * 100 }'
