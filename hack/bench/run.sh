#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: wrk against the kjobs API handler, against a
# bare net/http + go-redis handler doing the same Redis writes and against
# the same front enqueueing through hibiken/asynq, side by side on one
# redis-server, then GET /jobs/stats with 1,000 and 1,000,000
# jobs stored. Needs redis-server and wrk (apt-get install redis-server wrk).
#
# The kjobs and bare runs alternate, rounds times, so that a load on the
# machine from elsewhere hits both sides alike; compare medians.
#
# Usage: hack/bench/run.sh [duration, default 10s] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10s}
rounds=${2:-3}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export CGO_ENABLED=0 GOFLAGS=-trimpath
go build -o "$work/" ./hack/bench/bare ./hack/bench/kjobs ./hack/bench/seed
# The asynq front is a module of its own (hack/bench/asynq/go.mod).
(cd hack/bench/asynq && go build -o "$work/" .)

rport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
redis="redis://127.0.0.1:$rport"
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done

kport=$(free_port)
bport=$(free_port)
aport=$(free_port)
cport=$(free_port)
"$work/kjobs" -addr "127.0.0.1:$kport" -redis "$redis" &
pids+=($!)
# The same handler with an install cap of 10 in force, in Redis database 1
# so that its cap holds only it: no job ends here, so every job past the
# tenth is created waiting, in its function's queue.
"$work/kjobs" -addr "127.0.0.1:$cport" -redis "$redis/1" -max-running 10 &
pids+=($!)
"$work/bare" -addr "127.0.0.1:$bport" -redis "$redis" &
pids+=($!)
# asynq in Redis database 2: its keys stay apart from kjobs' and bare's.
"$work/asynq" -addr "127.0.0.1:$aport" -redis "$redis/2" &
pids+=($!)
sleep 1

bench() { # name url [wrk args]
  local name=$1 url=$2
  shift 2
  echo "== $name"
  wrk -t1 -c32 -d"$duration" --latency "$@" "$url" | grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors'
}

for round in $(seq "$rounds"); do
  echo "## round $round"
  bench "kjobs POST /jobs" "http://127.0.0.1:$kport/jobs" -s hack/bench/post.lua
  bench "kjobs POST /jobs, capped at 10" "http://127.0.0.1:$cport/jobs" -s hack/bench/post.lua
  bench "bare  POST /jobs" "http://127.0.0.1:$bport/jobs" -s hack/bench/post.lua
  bench "asynq POST /jobs" "http://127.0.0.1:$aport/jobs" -s hack/bench/post.lua
  bench "kjobs GET /jobs/stats" "http://127.0.0.1:$kport/jobs/stats"
  bench "bare  GET /jobs/stats" "http://127.0.0.1:$bport/jobs/stats"
done

# What the create script costs in Redis, with and without the cap: the
# microseconds per EVALSHA call, alone on the server for one run each.
for side in "uncapped $kport" "capped $cport"; do
  read -r name port <<<"$side"
  redis-cli -p "$rport" config resetstat >/dev/null
  wrk -t1 -c32 -d"$duration" -s hack/bench/post.lua "http://127.0.0.1:$port/jobs" >/dev/null
  echo "-- $name create script: $(redis-cli -p "$rport" info commandstats | grep -E '^cmdstat_evalsha:' | tr -d '\r')"
done

for n in 1000 1000000; do
  redis-cli -p "$rport" flushall >/dev/null
  "$work/seed" -n "$n" -redis "$redis"
  echo "-- $(redis-cli -p "$rport" dbsize) keys stored"
  for round in $(seq "$rounds"); do
    bench "kjobs GET /jobs/stats with $n jobs" "http://127.0.0.1:$kport/jobs/stats"
  done
done
