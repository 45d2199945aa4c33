#!/usr/bin/env bash
# roomflow against its peers on the same files: the 15-minute room utilization of a
# simulated backlog, replayed from CSV, on this machine's cores, by roomflow's operators,
# by ClickHouse's own materialized view (clickhouse_utilization.sh) and by Spark
# Structured Streaming (spark_utilization.py).
#
#   bench/peers/run.sh [READINGS] [ROOMS]      (defaults: 3000000 readings, 1000 rooms)
#
# Installs PySpark (pinned) into a virtualenv under .data on first use; needs Java 17
# (Debian: apt-get install -y openjdk-17-jre-headless) and the local stack (schemas are
# registered for the replayed records): deploy/local/stack.sh start.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"
READINGS="${1:-3000000}"
ROOMS="${2:-1000}"
PYSPARK_VERSION=3.5.3
VENV="$DATA/peers/venv"
FILES="$DATA/peers/files"

command -v java >/dev/null || { echo "Spark needs Java 17: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
if ! "$VENV/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pyspark==$PYSPARK_VERSION"
fi
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
rm -rf "$FILES"
"$ROOT/target/release/roomflow" bench --files "$FILES" --readings "$READINGS" --rooms "$ROOMS" | tee "$DATA/peers/roomflow.txt"
"$ROOT/bench/peers/clickhouse_utilization.sh" "$FILES" | tee "$DATA/peers/clickhouse.txt"
"$VENV/bin/python" "$ROOT/bench/peers/spark_utilization.py" "$FILES" | tee "$DATA/peers/spark.txt"
python3 - "$DATA/peers" <<'PY'
import re, sys
rate = lambda name: float(re.search(rf"^{name} .*= (\d+) readings/s", open(f"{sys.argv[1]}/{name}.txt").read(), re.M).group(1))
ours = rate("roomflow")
for peer in ("clickhouse", "spark"):
    print(f"ratio     roomflow / {peer} = {ours / rate(peer):.2f}x readings/s (roomflow also computes 1h and 1d windows and office rows)")
PY
