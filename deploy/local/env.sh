# Shared settings of the local stack; sourced by the other scripts.
# Everything listens on 127.0.0.1 only; data lives under the project's git-ignored .data/.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="${ROOMFLOW_DATA:-$ROOT/.data}"
# Built tools are cached outside the repository so that a fresh clone reuses them.
CACHE="${ROOMFLOW_CACHE:-$HOME/.cache/roomflow}"

NISSHI_VERSION=0.8.1
RIVVEN_SCHEMA_VERSION=0.0.22
NISSHI_BIN="$CACHE/nisshi-$NISSHI_VERSION/bin/nisshi"
RIVVEN_SCHEMA_BIN="$CACHE/rivven-schema-$RIVVEN_SCHEMA_VERSION/bin/rivven-schema"

BROKER_PORT=19092
REGISTRY_PORT=18081
CLICKHOUSE_HTTP_PORT=18123
CLICKHOUSE_TCP_PORT=19000
REDIS_PORT=16379
# roomflow's Redis user on the local stack (its `default` user is off). The password is
# the local stack's only: roomflow refuses it for a Redis beyond loopback.
REDIS_USER=roomflow
REDIS_PASSWORD=roomflow-local-development-only
# The second region ("eu" in deploy/local/regions.toml): its own ClickHouse and Redis.
CLICKHOUSE_EU_HTTP_PORT=18124
CLICKHOUSE_EU_TCP_PORT=19001
REDIS_EU_PORT=16380
# An S3-compatible object store (moto's server, in memory) for the cold tier's tests.
MOTO_VERSION=5.1.1
MOTO_BIN="$CACHE/moto-$MOTO_VERSION/bin/moto_server"
# promtool, from Debian's prometheus package (extracted, never installed as a service).
PROMETHEUS_DEB_VERSION=2.42.0+ds-5+deb12u1
PROMTOOL_BIN="$CACHE/promtool-$PROMETHEUS_DEB_VERSION/promtool"
S3_PORT=19900

log() { printf '[roomflow-stack] %s\n' "$*" >&2; }
