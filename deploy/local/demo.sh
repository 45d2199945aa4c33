#!/usr/bin/env bash
# The main job, on one machine: the local stack, a simulated fleet (2 tenants, 3 offices,
# 500 rooms each; two days of history, then live), the pipeline, the query service with
# the web app, and the development identity provider for its sign-in.
# Prints what to try, then runs until Ctrl-C, which stops the processes this script
# started (the stack keeps running: deploy/local/stack.sh stop).
#
# Environment: DEMO_HISTORY (default 2d), DEMO_SPEED (default 1, simulated minutes per
# real minute in live mode), DEMO_ROOMS (default 500 per tenant).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/env.sh
HISTORY=${DEMO_HISTORY:-2d}
SPEED=${DEMO_SPEED:-1}
ROOMS=${DEMO_ROOMS:-500}

if [ ! -x "$NISSHI_BIN" ] || [ ! -x "$RIVVEN_SCHEMA_BIN" ]; then
  log "first run: building the broker and the schema registry from source, and roomflow beside them; about 45 minutes on 2 cores, once"
fi
deploy/local/install.sh --beside "cargo build --release --locked -p roomflow"
log "building roomflow (release)"
cargo build --release --locked -p roomflow
RF="$ROOT/target/release/roomflow"
deploy/local/stack.sh start --broker-storage sqlite
# The local ClickHouse (18.16) takes analyst users as files in its users.d folder.
export ROOMFLOW_CLICKHOUSE__ANALYST_USERS_DIR="$DATA/clickhouse/users.d"
# Job files (reports, erasure reports) stay in the git-ignored data folder.
export ROOMFLOW_JOBS__OUTPUT_DIR="$DATA/reports"
# Months past a tenant's retention go to the cold tier (Parquet), here a folder of it.
export ROOMFLOW_JOBS__COLD__URL="$DATA/cold"
# Faster than real time, the simulated clock runs ahead of the pipeline's, which by
# default dead-letters readings more than 5 minutes ahead of it: allow a year.
if [ "$SPEED" != 1 ]; then
  export ROOMFLOW_PIPELINE__CLOCK_SKEW_SECS=31536000
fi

# The registry forgets everything on restart: register every known tenant's schemas again,
# in the same order, so ids match those already in the topics.
"$RF" schemas register >/dev/null
fresh=1
if "$RF" tenant list | awk 'NR > 1 { print $1 }' | grep -qx acme; then fresh=0; fi
"$RF" tenant create acme --name "Acme Corp" --industry finance --tier enterprise
"$RF" tenant create globex --name "Globex" --industry manufacturing

mkdir -p "$DATA/logs"
pids=()
cleanup() {
  log "stopping the simulator, the pipeline and the query service"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  log "the stack is still running; deploy/local/stack.sh stop stops it"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [ $fresh = 1 ]; then from="--from $HISTORY"; else from=""; fi
# shellcheck disable=SC2086
"$RF" simulate --tenants acme,globex --offices 3 --rooms "$ROOMS" $from --live --speed "$SPEED" \
  >>"$DATA/logs/simulate.log" 2>&1 &
pids+=($!)
"$RF" run >>"$DATA/logs/pipeline.log" 2>&1 &
pids+=($!)
"$RF" serve >>"$DATA/logs/serve.log" 2>&1 &
pids+=($!)
# The web app's sign-in, offline: the loopback-only development identity provider.
"$RF" dev-idp --tenant acme >>"$DATA/logs/dev-idp.log" 2>&1 &
pids+=($!)

log "waiting for the first rows (logs in $DATA/logs/)"
for _ in $(seq 1 600); do
  n=$(curl -sf "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/" --data-binary "SELECT count() FROM rf_acme.room_utilization" || echo 0)
  [ "${n:-0}" -gt 0 ] && break
  sleep 1
done
TOKEN=$("$RF" token --tenant acme --ttl 7d)
SINCE=$(date -u -d "-2 days" +%Y-%m-%dT%H:00:00Z)
ROOM=$(curl -sf "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/" --data-binary \
  "SELECT room_id FROM rf_acme.room_utilization WHERE samples > 0 ORDER BY avg_people DESC LIMIT 1" || true)
cat <<MSG

roomflow is running: ${n:-0} room window revisions in ClickHouse so far, more every second.

  Web app: http://127.0.0.1:18080/  ("Sign in with your organisation's account" opens the
  local development identity provider; tenant acme or globex, then one of)
    Fran Facilities  (viewer: the live office, today's rooms, anomalies, heatmap)
    Erin Executive   (analyst: the portfolio, ranking, under-used rooms, forecasts)
    Ada Admin        (admin: users, API keys, alert targets and rules, settings)

  ClickHouse (analysts):
    clickhouse-client --port $CLICKHOUSE_TCP_PORT -q "SELECT granularity, office_id, window_start, rooms_reporting,
      round(utilization, 3) AS utilization, final FROM rf_acme.office_utilization FINAL
      WHERE granularity = '1h' ORDER BY window_start DESC LIMIT 10"

  Query service (token for tenant acme, valid 7 days):
    curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18080/v1/offices/lon/occupancy
    curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18080/v1/rooms/${ROOM:-lon-r0000}/utilization?granularity=1h&from=$SINCE"

  Redis (live state):
    redis-cli -p $REDIS_PORT --user $REDIS_USER --pass $REDIS_PASSWORD --no-auth-warning HGETALL rf:acme:office:lon

  Jobs (the pipeline runs a worker):
    $RF job submit report --tenant acme --from 2d --follow   # CSV and HTML under $DATA/reports/
    $RF job submit retention --tenant acme --dry-run --follow

  Metrics: curl -s http://127.0.0.1:18090/metrics | grep rf_
  Logs:    $DATA/logs/{simulate,pipeline,serve,dev-idp}.log

Ctrl-C stops the simulator, the pipeline, the service and the identity provider.
MSG
wait "${pids[@]}"
