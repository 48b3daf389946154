#!/usr/bin/env bash
# Export/import round trip (BENCHMARKS.md, "The events explorer"): fills an evp with N events
# stamped over the last 24 hours (evp loadgen), exports them as NDJSON and CSV (evp export),
# imports the NDJSON into a second, fresh evp (evp import), waits until it stores them all,
# compares the two evps' analytics, and imports the file again (all duplicates).
#
#   make build && N=1000000 loadtest/roundtrip.sh
set -euo pipefail
N=${N:-1000000}
BIN=${BIN:-./bin/evp}
WORK=$(mktemp -d)
trap 'kill $PA $PB 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/a" "$WORK/b"
KA=$($BIN apikey create --name a --data-dir "$WORK/a" | head -1)
KB=$($BIN apikey create --name b --data-dir "$WORK/b" | head -1)
EVP_DATA_DIR=$WORK/a PORT=39101 SERVER_HOST=127.0.0.1 LOG_LEVEL=warn $BIN >"$WORK/a.log" 2>&1 &
PA=$!
EVP_DATA_DIR=$WORK/b PORT=39102 SERVER_HOST=127.0.0.1 LOG_LEVEL=warn $BIN >"$WORK/b.log" 2>&1 &
PB=$!
sleep 2
$BIN loadgen --url http://127.0.0.1:39101 --key "$KA" --batch 1000 --concurrency 8 --count "$N" \
  --spread 24h --dup-ratio 0 --quiet --wait-timeout 600s | tail -4
$BIN export --url http://127.0.0.1:39101 --key "$KA" -o "$WORK/events.ndjson"
$BIN export --url http://127.0.0.1:39101 --key "$KA" --format csv -o "$WORK/events.csv"
stored() {
  curl -s "http://127.0.0.1:39102/api/metrics" -H "x-api-key: $KB" |
    python3 -c 'import sys,json; print(json.load(sys.stdin)["data"]["processing"]["totalEvents"])'
}
t0=$(date +%s.%N)
$BIN import --url http://127.0.0.1:39102 --key "$KB" "$WORK/events.ndjson"
until [ "$(stored)" -ge "$N" ]; do sleep 0.5; done
t1=$(date +%s.%N)
python3 -c "print('import end to end: $N events in %.1f s, %.0f events/s' % ($t1-$t0, $N/($t1-$t0)))"
for p in "39101 $KA" "39102 $KB"; do
  set -- $p
  curl -s "http://127.0.0.1:$1/api/v1/analytics/metrics?timeRange=7d" -H "x-api-key: $2" |
    python3 -c 'import sys,json; d=json.load(sys.stdin)["data"]; print("analytics:", d["totalEvents"], "events,", d["uniqueUsers"], "users,", d["uniqueSessions"], "sessions")'
done
$BIN import --url http://127.0.0.1:39102 --key "$KB" "$WORK/events.ndjson" 2>&1 | tail -1
