#!/usr/bin/env bash
# Hot endpoints through the gateway's internal (unlimited) listener, beside each service's trivial
# endpoint, in one interleaved run: wrk -c64 -t2 --latency per endpoint, for ROUNDS rounds.
# Needs a running cluster (make up). docs/performance.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BENCH_URL:-http://127.0.0.1:8081}
duration=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-2}
page=bench-$(date +%s)
curl -fsS -XPOST "$base/visits/$page" >/dev/null
campaign=$(curl -fsS "$base/api/campaigns/1/banners" >/dev/null 2>&1 && echo 1 || echo 1002)
# A returning visitor: the cookie the first page view set.
cookie=$(curl -fsS -c - -o /dev/null "$base/campaigns/$campaign" | awk '/quartet_visitor/ {print $7}')

run() {
  local name=$1; shift
  local out rps p50 p99 non2xx
  out=$(wrk -t2 -c64 -d"$duration" --latency "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-22s %10s req/s  p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
for round in $(seq "$rounds"); do
  echo "round $round"
  run "counter trivial" "$base/_ping/counter"
  run "visit POST" -s bench/post.lua "$base/visits/$page"
  run "visit GET" "$base/visits/$page"
  run "banner trivial" "$base/_ping/banner"
  run "campaign page" -H "Cookie: quartet_visitor=$cookie" "$base/campaigns/$campaign"
  run "campaign page, new" "$base/campaigns/$campaign"
  run "banner JSON" -H "Cookie: quartet_visitor=$cookie" "$base/api/campaigns/$campaign/banner"
  run "recommender trivial" "$base/_ping/recommender"
  run "recommend cached" "$base/recommend/42"
  run "recommend uncached" -s bench/recommend_cold.lua "$base"
  run "batch of 20" "$base/batch-recommend?user_ids=$(seq -s, 1 20)"
done
