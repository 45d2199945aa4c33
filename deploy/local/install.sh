#!/usr/bin/env bash
# Installs the local stack's services, pinned, skipping whatever is already there:
#   nisshi (Kafka-protocol broker), rivven-schema (schema registry),
#   clickhouse-server + clickhouse-client and redis-server (Debian packages), and
#   OpenSSL's and libcurl's headers for roomflow's own build (libssl-dev,
#   libcurl4-openssl-dev, pkg-config), and Chromium with chromedriver for the web app's
#   browser tests (Debian's chromium, chromium-driver), and moto's S3 server (PyPI,
#   in a virtual environment) for the cold tier's object-store tests, and promtool
#   (from Debian's prometheus package, extracted: no Prometheus service is installed)
#   for the alert rules in deploy/prometheus.
# The two Rust services are built from crates.io into $ROOMFLOW_CACHE (default
# ~/.cache/roomflow), each with only the features the stack uses.
#
# --beside CMD: when they are to be built, run CMD (roomflow's own build) beside them,
# once the system packages are in: builds end in long stretches on one core (a binary's
# last crates, its link) that the other fills. Its output goes to $DATA/logs/build.log;
# its failure fails the install.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
beside=
if [ "${1:-}" = "--beside" ]; then beside=${2:?--beside needs a command}; fi

need_apt=()
command -v clickhouse-server >/dev/null || need_apt+=(clickhouse-server)
command -v clickhouse-client >/dev/null || need_apt+=(clickhouse-client)
command -v redis-server >/dev/null || need_apt+=(redis-server)
# The Kafka client's TLS and SASL link the system's OpenSSL, and OAUTHBEARER (OIDC)
# its libcurl.
pkg-config --exists openssl 2>/dev/null || need_apt+=(pkg-config libssl-dev)
pkg-config --exists libcurl 2>/dev/null || need_apt+=(pkg-config libcurl4-openssl-dev)
# The web app's tests drive Debian's Chromium through its chromedriver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# moto's S3 server runs in a Python virtual environment.
command -v python3 >/dev/null && python3 -c "import venv, ensurepip" 2>/dev/null \
  || need_apt+=(python3 python3-venv)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# axe-core, the accessibility rules the web app's browser test checks every page against.
AXE_VERSION=4.10.3
if [ ! -f "$DATA/npm/node_modules/axe-core/axe.min.js" ] && command -v npm >/dev/null; then
  log "installing axe-core $AXE_VERSION from npm into $DATA/npm"
  mkdir -p "$DATA/npm"
  npm install --prefix "$DATA/npm" --no-audit --no-fund --silent "axe-core@$AXE_VERSION" >/dev/null
fi

if [ ! -x "$MOTO_BIN" ]; then
  log "installing moto $MOTO_VERSION (S3 server) from PyPI into $CACHE/moto-$MOTO_VERSION"
  python3 -m venv "$CACHE/moto-$MOTO_VERSION"
  "$CACHE/moto-$MOTO_VERSION/bin/pip" install --quiet --disable-pip-version-check "moto[s3,server]==$MOTO_VERSION"
fi

if [ ! -x "$PROMTOOL_BIN" ]; then
  log "extracting promtool from Debian's prometheus $PROMETHEUS_DEB_VERSION into $CACHE"
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  download() { (cd "$tmp" && apt-get download -qq "prometheus=$PROMETHEUS_DEB_VERSION" 2>/dev/null); }
  if ! download; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    download
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$(dirname "$PROMTOOL_BIN")"
  cp "$tmp/x/usr/bin/promtool" "$PROMTOOL_BIN"
  rm -rf "$tmp"
fi

build() { # name version binary toolchain features
  local name=$1 version=$2 bin=$3 toolchain=$4 features=$5
  if [ -x "$bin" ]; then
    return
  fi
  log "building $name $version ($features) from crates.io into $CACHE (first time only; cargo shows progress)"
  mkdir -p "$CACHE"
  # A private target dir keeps a half-finished build resumable after an interruption.
  CARGO_TARGET_DIR="$CACHE/build-$name" cargo ${toolchain:+"+$toolchain"} install "$name" \
    --version "$version" --locked --root "$CACHE/$name-$version" \
    --no-default-features --features "$features"
  rm -rf "$CACHE/build-$name"
}

beside_pid=
if [ -n "$beside" ] && { [ ! -x "$NISSHI_BIN" ] || [ ! -x "$RIVVEN_SCHEMA_BIN" ]; }; then
  mkdir -p "$DATA/logs"
  log "building roomflow beside them: $beside (its log: $DATA/logs/build.log)"
  bash -c "$beside" >"$DATA/logs/build.log" 2>&1 &
  beside_pid=$!
fi

# Only the features the stack uses are built. The broker: memory:// (dynostore) for the
# tests and benchmarks, sqlite:// (libsql) for the demo and the restart tests; not
# PostgreSQL. It needs rustc >= 1.96: the image carries a nightly toolchain for it.
build nisshi "$NISSHI_VERSION" "$NISSHI_BIN" nightly dynostore,libsql
# The registry: its HTTP server and Avro; not JSON Schema or Protobuf.
build rivven-schema "$RIVVEN_SCHEMA_VERSION" "$RIVVEN_SCHEMA_BIN" "" server,avro,cli
if [ -n "$beside_pid" ] && ! wait "$beside_pid"; then
  tail -n 30 "$DATA/logs/build.log" >&2
  log "failed: $beside (the whole log: $DATA/logs/build.log)"
  exit 1
fi
log "installed: $("$NISSHI_BIN" --version 2>/dev/null | head -1), rivven-schema $RIVVEN_SCHEMA_VERSION, moto $MOTO_VERSION, promtool $PROMETHEUS_DEB_VERSION, $(clickhouse-client --version 2>/dev/null | head -1), $(redis-server --version | cut -d' ' -f1-3)"
