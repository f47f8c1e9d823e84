#!/usr/bin/env bash
# Instructions per call of ApiKeyPool versus the raw HTTPS client (one in
# flight), counted by callgrind: everything the process executes during the
# measured loops (client, simulator, TLS on both ends), setup excluded.
#   benchmarks/http_overhead_callgrind.sh [build dir = build] [calls = 1000]
set -euo pipefail
build=${1:-build}
calls=${2:-1000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$build/benchmarks/bench_api_key_pool" "$calls" 1 \
  >"$out/stdout" 2>"$out/stderr"
totals() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }
raw=$(totals "$(ls "$out"/cg.*.1)")
pool=$(totals "$(ls "$out"/cg.*.2)")
awk -v raw="$raw" -v pool="$pool" -v calls="$calls" 'BEGIN {
  printf "instructions per call (%d calls): raw %.1f k, ApiKeyPool %.1f k, overhead %+.1f %%\n",
         calls, raw / calls / 1000, pool / calls / 1000, (pool / raw - 1) * 100 }'
