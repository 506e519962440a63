#!/usr/bin/env bash
# The request cost of a settle round (issue 14): DAYS days of PER_DAY conversations are
# backfilled young (settle_hours 96: not settled), then the same range is run again with
# settle_hours 24 — every day is now due — once in `--mode jobs` and once in `--mode query`,
# each against a fresh simulator. Prints the requests the settle run made (from /__sim/stats).
#
#   cargo build --release && benches/settle_cost.sh [DAYS] [PER_DAY]
set -euo pipefail
BIN=${SLUICE_BIN:-target/release/sluice}
DAYS=${1:-3}
PER_DAY=${2:-6000}
PORT=${SIM_PORT:-18911}
TMP=$(mktemp -d)
trap 'kill "${SIM:-0}" 2>/dev/null || true; rm -rf "$TMP"' EXIT

FROM=$(date -u -d "-$((DAYS + 1)) days" +%F)
TO=$(date -u -d "-1 days" +%F)
export GENESYS_API_URL="http://127.0.0.1:$PORT" GENESYS_CLIENT_ID=sluice-sim \
  GENESYS_CLIENT_SECRET=sluice-sim-secret SLUICE_DATASETS=conversations \
  SLUICE_ADMIN_ADDR=127.0.0.1:0 RUST_LOG=warn

requests() { curl -sf "$GENESYS_API_URL/__sim/stats" | jq '.requests.total'; }

echo "settle round over $FROM..$TO ($DAYS days, $PER_DAY conversations/day)"
for mode in jobs query; do
  "$BIN" sim --port "$PORT" --per-day "$PER_DAY" --days $((DAYS + 3)) --no-limits \
    --job-delay-ms 200 >"$TMP/sim-$mode.log" 2>&1 &
  SIM=$!
  for _ in $(seq 100); do curl -sf "$GENESYS_API_URL/__sim/stats" >/dev/null && break; sleep 0.1; done
  export DATABASE_URL="sqlite://$TMP/$mode.db"
  SLUICE_SETTLE_HOURS=96 "$BIN" backfill --from "$FROM" --to "$TO" --mode auto
  before=$(requests)
  start=$(date +%s.%N)
  SLUICE_SETTLE_HOURS=24 "$BIN" backfill --from "$FROM" --to "$TO" --mode "$mode"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  after=$(requests)
  by=$(curl -sf "$GENESYS_API_URL/__sim/stats" | jq -c '.requests.byEndpoint')
  printf '%-5s settle: %4d requests for %d days (%.1f per day), %.1f s; all requests by endpoint: %s\n' \
    "$mode" $((after - before)) "$DAYS" "$(echo "($after - $before) / $DAYS" | bc -l)" "$secs" "$by"
  kill "$SIM"; wait "$SIM" 2>/dev/null || true
done
