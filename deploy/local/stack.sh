#!/usr/bin/env bash
# The local stack: start, stop or report the status of the broker (nisshi), the schema
# registry (rivven-schema), ClickHouse and Redis, the second region's ClickHouse and
# Redis (clickhouse-eu, redis-eu), and an S3-compatible object store (s3: moto, in
# memory); loopback only, data under .data/.
#
#   deploy/local/stack.sh start [--broker-storage sqlite|memory]   (default sqlite)
#   deploy/local/stack.sh stop [broker|registry|clickhouse|redis|s3 ...]   (default all)
#   deploy/local/stack.sh status
#   deploy/local/stack.sh running        (names of the services this stack runs)
#
# Idempotent: a service already running from this folder is left alone. Only processes
# this script started (their PIDs are in .data/pids/) are ever stopped.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
PIDS="$DATA/pids"
LOGS="$DATA/logs"

running() { # name
  local f="$PIDS/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name check...
  local name=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    running "$name" || { log "$name exited; see $LOGS/$name.log"; tail -5 "$LOGS/$name.log" >&2 || true; return 1; }
    sleep 0.2
  done
  log "$name is not ready after 30 s; see $LOGS/$name.log"
  return 1
}

start_bg() { # name port workdir command...
  local name=$1 port=$2 dir=$3; shift 3
  if running "$name"; then log "$name already running (pid $(cat "$PIDS/$name.pid"))"; return 0; fi
  if port_open "$port"; then
    log "port $port is taken by a process this stack did not start; stop it or free the port"
    return 1
  fi
  mkdir -p "$dir"
  (cd "$dir" && exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!)"
}

start() {
  local storage=sqlite
  while [ $# -gt 0 ]; do
    case $1 in
      --broker-storage) storage=$2; shift 2 ;;
      *) log "unknown option $1"; exit 2 ;;
    esac
  done
  case $storage in
    sqlite) engine="sqlite://nisshi.db" ;;
    memory) engine="memory://nisshi/" ;;
    *) log "--broker-storage must be sqlite or memory"; exit 2 ;;
  esac
  [ -x "$NISSHI_BIN" ] && [ -x "$RIVVEN_SCHEMA_BIN" ] && [ -x "$MOTO_BIN" ] && command -v clickhouse-server >/dev/null \
    && command -v redis-server >/dev/null || "$ROOT/deploy/local/install.sh"
  mkdir -p "$PIDS" "$LOGS" "$DATA/broker" "$DATA/registry" "$DATA/redis" "$DATA/redis-eu" "$DATA/s3"

  # nisshi reads a .env from its working folder: its own folder has none.
  start_bg broker "$BROKER_PORT" "$DATA/broker" env -u STORAGE_ENGINE -u LISTENER_URL "$NISSHI_BIN" broker \
    --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine "$engine"
  start_bg registry "$REGISTRY_PORT" "$DATA/registry" "$RIVVEN_SCHEMA_BIN" serve --host 127.0.0.1 --port "$REGISTRY_PORT"

  start_clickhouse clickhouse "$CLICKHOUSE_HTTP_PORT" "$CLICKHOUSE_TCP_PORT" 19009
  start_clickhouse clickhouse-eu "$CLICKHOUSE_EU_HTTP_PORT" "$CLICKHOUSE_EU_TCP_PORT" 19010
  start_redis redis "$REDIS_PORT"
  start_redis redis-eu "$REDIS_EU_PORT"
  start_bg s3 "$S3_PORT" "$DATA/s3" "$MOTO_BIN" -H 127.0.0.1 -p "$S3_PORT"

  wait_for broker port_open "$BROKER_PORT"
  wait_for registry curl -sf "http://127.0.0.1:$REGISTRY_PORT/subjects"
  wait_for clickhouse curl -sf "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/ping"
  wait_for redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --user "$REDIS_USER" --pass "$REDIS_PASSWORD" --no-auth-warning ping
  wait_for clickhouse-eu curl -sf "http://127.0.0.1:$CLICKHOUSE_EU_HTTP_PORT/ping"
  wait_for redis-eu redis-cli -h 127.0.0.1 -p "$REDIS_EU_PORT" --user "$REDIS_USER" --pass "$REDIS_PASSWORD" --no-auth-warning ping
  wait_for s3 curl -sf "http://127.0.0.1:$S3_PORT/"
  echo "$storage" >"$DATA/broker/storage"
  log "stack ready: broker 127.0.0.1:$BROKER_PORT ($storage), registry :$REGISTRY_PORT, clickhouse :$CLICKHOUSE_HTTP_PORT/:$CLICKHOUSE_TCP_PORT, redis :$REDIS_PORT; region eu: clickhouse :$CLICKHOUSE_EU_HTTP_PORT, redis :$REDIS_EU_PORT; s3 :$S3_PORT"
}

start_clickhouse() { # name http-port tcp-port interserver-port
  local name=$1 dir="$DATA/$1"
  mkdir -p "$dir/log"
  sed -e "s|@DIR@|$dir|g" -e "s|@HTTP_PORT@|$2|" -e "s|@TCP_PORT@|$3|" -e "s|@INTERSERVER_PORT@|$4|" \
    "$ROOT/deploy/local/clickhouse-config.xml" >"$dir/config.xml"
  cp "$ROOT/deploy/local/clickhouse-users.xml" "$dir/users.xml"
  start_bg "$name" "$2" "$dir" clickhouse-server --config-file="$dir/config.xml"
}

# No connection without a password: the default user is off. Each roomflow component has
# a user with the least rights it needs (docs/security.md lists them);
# $REDIS_USER administers (the operator's redis-cli, tests' inspection).
start_redis() { # name port
  local common=(on ">$REDIS_PASSWORD" resetchannels -@all +@connection -@dangerous)
  start_bg "$1" "$2" "$DATA/$1" redis-server --port "$2" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$DATA/$1" \
    --user default off \
    --user "$REDIS_USER" on ">$REDIS_PASSWORD" '~*' '&*' +@all \
    --user rf-pipeline "${common[@]}" '~rf:*' +hset +hmset +incr +incrby \
    --user rf-service "${common[@]}" '%R~rf:*' '~rf:*:cache:*' '~rf:*:ratelimit:*' '~rf:_session:*' \
      +get +mget +hgetall +set +setex +incr +pttl +multi +exec +del \
    --user rf-jobs "${common[@]}" '~rf:*' +scan +del +incr +incrby '+acl|setuser' '+acl|deluser' '+acl|users'
}

stop() { # [names...] (default: all)
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=(s3 redis-eu clickhouse-eu redis clickhouse registry broker)
  for name in "${names[@]}"; do
    local f="$PIDS/$name.pid"
    [ -f "$f" ] || continue
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "$name stopped"
    fi
    rm -f "$f"
  done
}

running_names() {
  for name in broker registry clickhouse redis clickhouse-eu redis-eu s3; do
    if running "$name"; then printf '%s ' "$name"; fi
  done
  echo
}

status() {
  local ok=0
  for spec in broker:$BROKER_PORT registry:$REGISTRY_PORT clickhouse:$CLICKHOUSE_HTTP_PORT redis:$REDIS_PORT \
    clickhouse-eu:$CLICKHOUSE_EU_HTTP_PORT redis-eu:$REDIS_EU_PORT s3:$S3_PORT; do
    local name=${spec%%:*} port=${spec##*:}
    if running "$name" && port_open "$port"; then
      printf '%-10s up    pid %-7s 127.0.0.1:%s\n' "$name" "$(cat "$PIDS/$name.pid")" "$port"
    elif port_open "$port"; then
      printf '%-10s foreign process on 127.0.0.1:%s\n' "$name" "$port"; ok=1
    else
      printf '%-10s down\n' "$name"; ok=1
    fi
  done
  return $ok
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  running) running_names ;;
  *) echo "usage: $0 start [--broker-storage sqlite|memory] | stop [service...] | status | running" >&2; exit 2 ;;
esac
