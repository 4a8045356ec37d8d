#!/usr/bin/env bash
# The counter's throughput through the gateway's internal (unlimited) listener, beside the
# stack's trivial endpoint, in one interleaved run: wrk -c64 -t2 -d10s per endpoint, twice.
# Needs a running cluster (make up). Prints one line per run; docs/performance.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BENCH_URL:-http://127.0.0.1:8081}
duration=${BENCH_DURATION:-10s}
page=bench-$(date +%s)
curl -fsS -XPOST "$base/visits/$page" >/dev/null
run() {
  local name=$1; shift
  local out rps p50 p99 non2xx
  out=$(wrk -t2 -c64 -d"$duration" --latency "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-16s %10s req/s  p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
for round in 1 2; do
  run "trivial" "$base/_ping/counter"
  run "visit POST" -s bench/post.lua "$base/visits/$page"
  run "visit GET" "$base/visits/$page"
done
