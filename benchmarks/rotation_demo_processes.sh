#!/usr/bin/env bash
# Goodput of the rotation demo as one process and as two processes sharing
# three tokens through Redis (and, for contrast, two processes without Redis),
# against one `floodgate-sim botapi` at 10/s per token and 1/s per chat.
# Starts its own redis-server on a free loopback port; prints each demo's
# summary and the simulator's counts per token (docs/redis.md, docs/benchmarks.md).
#   benchmarks/rotation_demo_processes.sh [build dir = build]
set -euo pipefail
build=$(realpath "${1:-build}")
dir=$(mktemp -d)
cd "$dir"
redis_pid=""
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill -TERM "$sim_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill -TERM "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
printf '100001:SIMULATED-demo-token-1\n100002:SIMULATED-demo-token-2\n100003:SIMULATED-demo-token-3\n' > tokens.txt
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" > redis.log 2>&1 &
redis_pid=$!
until redis-cli -p "$port" PING > /dev/null 2>&1; do sleep 0.1; done
redis="redis://127.0.0.1:$port"

start_simulator() {
  rm -f port.txt
  "$build/src/sim/floodgate-sim" botapi --tokens-file tokens.txt --overall 10/s --ca-out ca.pem --port-out port.txt \
    > "sim-$1.log" 2>&1 &
  sim_pid=$!
  until [ -s port.txt ]; do sleep 0.1; done
}
stop_simulator() {
  kill -TERM "$sim_pid"
  wait "$sim_pid" || true
  sim_pid=""
}
demo() { "$build/examples/telegram_rotation_demo" "$@" --botapi "https://127.0.0.1:$(cat port.txt)" --ca ca.pem; }

for run in one two two-without-redis; do
  start_simulator "$run"
  redis-cli -p "$port" FLUSHALL > /dev/null
  case $run in
    one) demo --redis "$redis" > demo-one-a.log 2>&1 ;;
    two) demo --redis "$redis" > demo-two-a.log 2>&1 & first=$!
         demo --redis "$redis" > demo-two-b.log 2>&1; wait "$first" ;;
    two-without-redis) demo > demo-two-without-redis-a.log 2>&1 & first=$!
         demo > demo-two-without-redis-b.log 2>&1; wait "$first" ;;
  esac
  stop_simulator
  for log in demo-"$run"-?.log; do
    echo "$run ($log): $(grep '== summary' "$log")"
  done
  sed -n 's/^botapi: /  simulator: /p' "sim-$run.log" | grep requests
done
