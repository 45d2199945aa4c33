#!/usr/bin/env bash
# The 15-minute room utilization of `roomflow bench --files` in ClickHouse itself, as an
# analyst would build it without roomflow: the readings inserted into a Null-engine table
# whose materialized view aggregates them (count and average people per room and 15-minute
# window, AggregatingMergeTree), utilization joined with the rooms' capacity when read.
#
#   bench/peers/clickhouse_utilization.sh DIR     (DIR written by roomflow bench --files)
#
# Prints one line: readings, seconds, readings/s, windows. Uses the local stack's
# ClickHouse (its native port), in a database of its own that it drops at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"
DIR="$1"
DB=rf_peer_clickhouse
ch() { clickhouse-client --host 127.0.0.1 --port "$CLICKHOUSE_TCP_PORT" "$@"; }

ch --query "DROP DATABASE IF EXISTS $DB"
ch --query "CREATE DATABASE $DB"
ch --query "CREATE TABLE $DB.rooms (room_id String, office_id String, capacity UInt32)
            ENGINE = MergeTree() ORDER BY room_id"
ch --query "CREATE TABLE $DB.readings (office_id String, room_id String, sensor_id String,
            ts Int64, people_count Int32) ENGINE = Null"
ch --query "CREATE TABLE $DB.room_utilization_15m (room_id String, window_start DateTime,
            samples AggregateFunction(count), avg_people AggregateFunction(avg, Int32))
            ENGINE = AggregatingMergeTree() ORDER BY (room_id, window_start)"
ch --query "CREATE MATERIALIZED VIEW $DB.windows TO $DB.room_utilization_15m AS
            SELECT room_id, toStartOfFifteenMinutes(toDateTime(intDiv(ts, 1000))) AS window_start,
                   countState() AS samples, avgState(people_count) AS avg_people
            FROM $DB.readings GROUP BY room_id, window_start"
ch --query "INSERT INTO $DB.rooms FORMAT CSV" <"$DIR/rooms.csv"

total=$(cat "$DIR"/readings/*.csv | wc -l)
started=$(date +%s.%N)
# One INSERT per file, as the files were written: the server parses, aggregates and
# merges them on the same cores roomflow had.
for f in "$DIR"/readings/*.csv; do
  ch --query "INSERT INTO $DB.readings FORMAT CSV" <"$f"
done
ended=$(date +%s.%N)
windows=$(ch --query "SELECT count() FROM (SELECT room_id, window_start, countMerge(samples) AS samples,
            avgMerge(avg_people) / any(capacity) AS utilization
            FROM $DB.room_utilization_15m ANY INNER JOIN $DB.rooms USING (room_id)
            GROUP BY room_id, window_start)")
ch --query "DROP DATABASE $DB"
python3 - "$total" "$started" "$ended" "$windows" <<'PY'
import sys
total, start, end, windows = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"clickhouse {total} readings in {end - start:.2f} s = {total / (end - start):.0f} readings/s: "
      f"Null table and materialized view, 15-minute room windows only; {windows} windows")
PY
