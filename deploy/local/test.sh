#!/usr/bin/env bash
# Runs every test of the project against the real local stack. Installs what is missing
# (first time: ~45 minutes of building), checks formatting (cargo fmt) and lints (clippy,
# warnings are errors), starts the services that are not running (the
# broker with fast in-memory storage), runs the workspace's tests, and stops exactly the
# services it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source deploy/local/env.sh

# A first run builds the test binaries beside the broker and the registry.
deploy/local/install.sh --beside "CARGO_INCREMENTAL=0 cargo test --workspace --locked --no-run"
# Hygiene first: formatting and lints fail the run before the stack starts.
log "checking formatting and lints"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all --check
# The web app's module: a syntax error would only show in a browser.
if command -v node >/dev/null; then node --check service/web/app.js; fi
CARGO_INCREMENTAL=0 cargo clippy --workspace --all-targets --locked -- -D warnings
# The alert rules: valid, and each firing on the series it is for (promtool's unit tests).
log "checking the alert rules"
"$PROMTOOL_BIN" check rules deploy/prometheus/roomflow.rules.yml
"$PROMTOOL_BIN" test rules deploy/prometheus/roomflow.rules.test.yml

before=$(deploy/local/stack.sh running)
deploy/local/stack.sh start --broker-storage memory
stop_ours() {
  local ours=()
  for name in $(deploy/local/stack.sh running); do
    [[ " $before " == *" $name "* ]] || ours+=("$name")
  done
  if [ ${#ours[@]} -gt 0 ]; then deploy/local/stack.sh stop "${ours[@]}"; fi
}
trap stop_ours EXIT

log "building and running the tests"
# A full run gains nothing from incremental caches, which would add a gigabyte to target/.
export CARGO_INCREMENTAL=0
out=$(mktemp)
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$out" || status=$?
stop_ours
trap - EXIT
# One closing line over every test binary (cargo's own last line is a doc-test run's).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$out"
rm -f "$out"
exit "$status"
