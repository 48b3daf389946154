#!/usr/bin/env bash
# The live tail's cost on ingestion (BENCHMARKS.md, "Deleting a user's events, and the live
# tail end to end"): runs of evp loadgen (100-event batches, 8 connections, DURATION each)
# against a fresh evp with no live tail open, then with TAILS tails open
# (GET /api/v1/events/live?$FILTER, by default eventType=click: one event in ten matches), alternating,
# RUNS pairs; prints each run's accepted and end-to-end events/s and evp's own CPU time an
# event (the tails' clients, curl here, share the machine's cores too).
#
#   make build && RUNS=3 loadtest/livetail.sh
set -euo pipefail
BIN=${BIN:-./bin/evp}
RUNS=${RUNS:-3}
TAILS=${TAILS:-10}
DURATION=${DURATION:-20s}
FILTER=${FILTER:-eventType=click} # the tails' query: about one event in ten matches
WORK=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'cleanup; rm -rf "$WORK"' EXIT
run() { # run NAME TAILS
  local dir="$WORK/$1" port=39111
  mkdir -p "$dir"
  local key
  key=$($BIN apikey create --name live --data-dir "$dir" 2>/dev/null | head -1)
  EVP_DATA_DIR=$dir PORT=$port SERVER_HOST=127.0.0.1 LOG_LEVEL=warn EVP_LIVE_TAILS_MAX=$((TAILS + 1)) $BIN >"$dir/evp.log" 2>&1 &
  PIDS=($!)
  sleep 1.5
  for _ in $(seq 1 "$2"); do
    curl -sN "http://127.0.0.1:$port/api/v1/events/live?$FILTER" -H "x-api-key: $key" >/dev/null &
    PIDS+=($!)
  done
  sleep 0.5
  $BIN loadgen --url "http://127.0.0.1:$port" --key "$key" --batch 100 --concurrency 8 --duration "$DURATION" \
    --quiet --json --wait-timeout 300s >"$dir/report.json"
  python3 - "$1" "$2" "$dir/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
print("%-10s tails=%-3s accepted %8.0f events/s, end to end %8.0f events/s, evp %.2f us CPU an event" % (
    sys.argv[1], sys.argv[2], r["throughput"]["acceptedEventsPerSec"], r["endToEnd"]["eventsPerSec"],
    r["server"]["cpuSeconds"] / max(r["events"]["accepted"], 1) * 1e6))
PY
  cleanup
}
for i in $(seq 1 "$RUNS"); do
  run "none-$i" 0
  run "tails-$i" "$TAILS"
done
