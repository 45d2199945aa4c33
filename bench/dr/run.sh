#!/usr/bin/env bash
# A disaster-recovery drill on the local stack, timed: two tenants' simulated fleets go
# through the pipeline, the whole platform is backed up, the stack's data is destroyed
# (services stopped, .data removed), the stack starts empty and `roomflow restore`
# rebuilds it, then the pipeline resumes and the final rows are compared with those
# before the disaster. Prints the backup's and the restore's times and sizes.
#
# Environment: DR_ROOMS (per tenant, default 500), DR_HISTORY (default 1d).
# It stops and wipes the local stack, before and during the drill: run it on a machine
# whose stack holds nothing you need.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/env.sh
ROOMS=${DR_ROOMS:-500}
HISTORY=${DR_HISTORY:-1d}
RF="$ROOT/target/release/roomflow"
BACKUPS="${DR_BACKUPS:-/tmp/roomflow-dr-backups}"
export ROOMFLOW_JOBS__BACKUP__URL="$BACKUPS"
export ROOMFLOW_JOBS__OUTPUT_DIR="/tmp/roomflow-dr-out"
export ROOMFLOW_LOG=text RUST_LOG=warn
export ROOMFLOW_CLICKHOUSE__ANALYST_USERS_DIR="$DATA/clickhouse/users.d"
ch() { curl -sf "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/" --data-binary "$1"; }
ms() { date +%s%3N; }
# The final rows of both tenants, as one line per table and tenant (versions aside).
finals() {
  for t in acme globex; do
    ch "SELECT '$t', count(), sum(samples), round(sum(avg_people), 3) FROM rf_$t.room_utilization FINAL WHERE final = 1"
    ch "SELECT '$t', count(), sum(people_count) FROM rf_$t.readings FINAL"
  done
}

wipe() {
  deploy/local/stack.sh stop >/dev/null
  rm -rf "$DATA/broker" "$DATA/clickhouse" "$DATA/clickhouse-eu" "$DATA/redis" "$DATA/redis-eu"
}

cargo build --release --locked -p roomflow >/dev/null
rm -rf "$BACKUPS"
# From an empty stack, so that the backup holds only this drill's tenants.
wipe
deploy/local/stack.sh start --broker-storage memory >/dev/null
"$RF" schemas register >/dev/null
"$RF" tenant create acme --name "Acme Corp" >/dev/null
"$RF" tenant create globex --name "Globex" >/dev/null
"$RF" simulate --tenants acme,globex --offices 3 --rooms "$ROOMS" --from "$HISTORY" >/dev/null
t=$(ms); "$RF" run --until-caught-up >/dev/null; echo "pipeline over the history: $(( $(ms) - t )) ms"
before=$(finals)

"$RF" jobs >/dev/null 2>&1 &
worker=$!
t=$(ms)
"$RF" job submit backup --follow >/dev/null
backup_ms=$(( $(ms) - t ))
kill -TERM "$worker"; wait "$worker" || true
id=$("$RF" restore --list | tail -1)
size=$(du -sb "$BACKUPS/$id" | cut -f1)
echo "backup $id: $backup_ms ms, $size bytes"

# The disaster: every service stopped, every byte of the stack's data gone.
wipe
t=$(ms)
deploy/local/stack.sh start --broker-storage memory >/dev/null
started_ms=$(( $(ms) - t ))
t=$(ms)
"$RF" restore --backup "$id" > /tmp/roomflow-dr-restored.json
restore_ms=$(( $(ms) - t ))
echo "readings restored (from the checkpoints on):"
grep '"occupancy\.' /tmp/roomflow-dr-restored.json
t=$(ms); "$RF" run --until-caught-up >/dev/null; resume_ms=$(( $(ms) - t ))
after=$(finals)
echo "stack started empty: $started_ms ms; restore: $restore_ms ms; pipeline resumed and caught up: $resume_ms ms"
echo "recovery time (stack start + restore + catch-up): $(( started_ms + restore_ms + resume_ms )) ms"
if [ "$before" = "$after" ]; then
  echo "final rows after the restore equal those before:"; echo "$before"
else
  echo "FINAL ROWS DIFFER"; echo "before:"; echo "$before"; echo "after:"; echo "$after"; exit 1
fi
