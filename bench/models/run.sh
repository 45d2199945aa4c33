#!/usr/bin/env bash
# The forecaster and the anomaly detector evaluated on public series that ship inside
# PyPI packages (series.py, pinned in requirements.txt) and on the simulator's offices,
# against the seasonal-naive forecast, roomflow's models before, and a rolling z-score.
#
#   bench/models/run.sh
#
# Needs no service. Installs the packages into a virtualenv under .data on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/deploy/local/env.sh"
HERE="$ROOT/bench/models"
VENV="$DATA/models/venv"
SERIES="$DATA/models/series"

WANTED="$(grep -v '^#' "$HERE/requirements.txt" | grep -c .)"
HAVE="$("$VENV/bin/pip" freeze 2>/dev/null | grep -cxF -f <(grep -v '^#' "$HERE/requirements.txt" | grep .) || true)"
if [ "$HAVE" != "$WANTED" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -r "$HERE/requirements.txt"
fi
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin roomflow
RF="$ROOT/target/release/roomflow"
if [ ! -d "$SERIES/hourly" ]; then
    "$VENV/bin/python" "$HERE/series.py" "$SERIES"
fi
if [ ! -d "$SERIES/offices" ]; then
    mkdir -p "$SERIES/offices"
    "$RF" simulate --series "$SERIES/offices" --tenants acme --offices 12 --rooms 600 \
        --from 2026-01-05 --to 2026-04-27 --seed 7 >/dev/null
fi

# set, horizon, horizons held out
SETS="hourly:48:1 offices:168:3 half-hourly:96:8 daily:14:10 weekly:13:10 monthly:18:3 quarterly:8:5"
for candidates in all fast; do
    for set in $SETS; do
        IFS=: read -r name horizon holdout <<<"$set"
        echo "== forecast $name, horizon $horizon, candidates $candidates"
        "$RF" forecast --input "$SERIES/$name" --horizon "$horizon" --holdout "$holdout" --candidates "$candidates"
    done
done
for name in hourly offices half-hourly daily; do
    echo "== detect $name, 3 anomalies injected per series"
    "$RF" detect --input "$SERIES/$name" --evaluate --inject 3
done
