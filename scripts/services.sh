#!/usr/bin/env bash
# Private PostgreSQL 15 and Redis servers for Switchyard, bound to 127.0.0.1 only.
#
#   scripts/services.sh start DIR [--pg-port N] [--redis-port N]
#                                 [--no-postgres] [--no-redis] [--ephemeral]
#   scripts/services.sh stop DIR
#   scripts/services.sh status DIR
#
# start   Creates DIR if needed; reuses the data already in DIR (and its previous
#         ports when they are still free); otherwise picks free ports. Waits until
#         both servers answer, then writes DIR/env.sh (source it):
#           DATABASE_URL=postgresql://switchyard@127.0.0.1:PORT/switchyard
#           REDIS_HOST=127.0.0.1 REDIS_PORT=N
#           SWITCHYARD_TEST_DATABASE_URL, SWITCHYARD_TEST_REDIS_URL=redis://127.0.0.1:N
#         A server already running from DIR is kept as is.
#         --ephemeral: throw-away data (Postgres fsync off, Redis without persistence);
#         the default keeps data durable (Redis append-only file).
# stop    Stops whatever runs from DIR; fine if one or both are already dead.
#
# Postgres: superuser `switchyard`, trust auth (loopback only), database `switchyard`,
# pg_stat_statements preloaded and created in template1 (so every new database has it).
# As root, Postgres runs as the `postgres` user (it refuses root).
# Env: PG_BINDIR (default /usr/lib/postgresql/15/bin), SWITCHYARD_SERVICES_TIMEOUT (s, 60).
set -euo pipefail

log() { printf '[switchyard] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,25s/^# \{0,1\}//p' "$0"; }

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
TIMEOUT=${SWITCHYARD_SERVICES_TIMEOUT:-60}
DB_USER=switchyard
DB_NAME=switchyard

(( $# >= 1 )) || { usage >&2; exit 2; }
cmd=$1; shift
case "$cmd" in
  -h|--help) usage; exit 0 ;;
  start|stop|status) ;;
  *) usage >&2; die "unknown command: $cmd" ;;
esac
(( $# >= 1 )) || { usage >&2; die "$cmd needs a DIR"; }
DIR=$1; shift

opt_pg_port='' opt_redis_port='' want_pg=1 want_redis=1 ephemeral=0
while (( $# )); do
  case "$1" in
    --pg-port) [[ $# -ge 2 ]] || die "--pg-port needs a value"; opt_pg_port=$2; shift 2 ;;
    --pg-port=*) opt_pg_port=${1#*=}; shift ;;
    --redis-port) [[ $# -ge 2 ]] || die "--redis-port needs a value"; opt_redis_port=$2; shift 2 ;;
    --redis-port=*) opt_redis_port=${1#*=}; shift ;;
    --no-postgres) want_pg=0; shift ;;
    --no-redis) want_redis=0; shift ;;
    --ephemeral) ephemeral=1; shift ;;
    *) die "unknown option: $1" ;;
  esac
done
for p in "$opt_pg_port" "$opt_redis_port"; do
  [[ -z "$p" || "$p" =~ ^[0-9]+$ && "$p" -ge 1 && "$p" -le 65535 ]] || die "bad port: $p"
done

if [[ "$cmd" == start ]]; then
  mkdir -p "$DIR"
fi
if [[ ! -d "$DIR" ]]; then
  [[ "$cmd" == start ]] || { log "$cmd: no such directory $DIR: nothing runs from it"; exit 0; }
  die "no such directory: $DIR"
fi
DIR=$(cd "$DIR" && pwd -P)

PGDATA_DIR=$DIR/pg
PG_SOCK_DIR=$DIR/pgsock
PG_LOG=$DIR/postgres.log
REDIS_DIR=$DIR/redis
REDIS_PID=$REDIS_DIR/redis.pid
REDIS_LOG=$DIR/redis.log
STATE=$DIR/services.state
ENV_FILE=$DIR/env.sh

# ---------------------------------------------------------------- helpers

# Run a Postgres server tool as the user that owns the data: `postgres` when we are root.
as_pg() {
  if (( EUID == 0 )); then
    (cd "$DIR" && runuser -u postgres -- "$@")
  else
    (cd "$DIR" && "$@")
  fi
}

# Is anything bound to 127.0.0.1:PORT? Tries to bind it (as a server would, SO_REUSEADDR).
port_free() {
  local port=$1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
  else
    # No python: a successful connect means someone listens there.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 1
    fi
    return 0
  fi
}

# A free port below Linux's ephemeral range (32768+), so outgoing connections of the
# tests can never have taken it. Not $1 (the other server's port).
pick_port() {
  local avoid=${1:-0} port i
  for (( i = 0; i < 200; i++ )); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    (( port == avoid )) && continue
    if port_free "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "could not find a free port on 127.0.0.1"
}

# The port to use: explicit, else the previous one if still free, else a fresh one.
choose_port() {
  local explicit=$1 previous=$2 avoid=$3
  if [[ -n "$explicit" ]]; then
    port_free "$explicit" || die "port $explicit on 127.0.0.1 is already in use"
    echo "$explicit"
  elif [[ -n "$previous" && "$previous" != "$avoid" ]] && port_free "$previous"; then
    echo "$previous"
  else
    pick_port "$avoid"
  fi
}

# PID is a live process (not a zombie waiting to be reaped) whose name contains NAME.
proc_alive() {
  local pid=$1 name=$2 stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ "$stat" == *"($name"* ]] || return 1
  stat=${stat##*) }
  [[ "${stat%% *}" != Z ]]
}

tail_log() {
  local file=$1
  if [[ -f "$file" ]]; then
    log "last lines of $file:"
    tail -n 25 "$file" | sed 's/^/    /' >&2
  fi
}

# Previous ports, from the state file of an earlier start.
prev_pg_port='' prev_redis_port=''
if [[ -f "$STATE" ]]; then
  prev_pg_port=$(sed -n 's/^PG_PORT=\([0-9]*\)$/\1/p' "$STATE")
  prev_redis_port=$(sed -n 's/^REDIS_PORT=\([0-9]*\)$/\1/p' "$STATE")
fi

# ---------------------------------------------------------------- postgres

pg_running() {
  local pid
  pid=$(sed -n '1p' "$PGDATA_DIR/postmaster.pid" 2>/dev/null) || return 1
  proc_alive "$pid" postgres
}

# Port of the running postmaster (4th line of postmaster.pid).
pg_running_port() { sed -n '4p' "$PGDATA_DIR/postmaster.pid"; }

pg_check_install() {
  [[ -x "$PG_BINDIR/postgres" ]] \
    || die "PostgreSQL 15 not found in $PG_BINDIR; run scripts/deps.sh --run"
  local ext_dir
  ext_dir=$("$PG_BINDIR/pg_config" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)/extension
  [[ -f "$ext_dir/pg_stat_statements.control" ]] \
    || die "pg_stat_statements is not installed ($ext_dir); run scripts/deps.sh --run (postgresql-contrib)"
  if (( EUID == 0 )); then
    getent passwd postgres >/dev/null || die "running as root but there is no 'postgres' user; run scripts/deps.sh --run"
  fi
}

pg_prepare_dirs() {
  mkdir -p "$PGDATA_DIR" "$PG_SOCK_DIR"
  touch "$PG_LOG"
  chmod 700 "$PGDATA_DIR"
  if (( EUID == 0 )); then
    chown -R postgres:postgres "$PGDATA_DIR" "$PG_SOCK_DIR" "$PG_LOG"
    chmod go+x "$DIR"   # the postgres user must be able to enter DIR
    runuser -u postgres -- test -w "$PGDATA_DIR" \
      || die "the postgres user cannot reach $PGDATA_DIR (a parent directory of $DIR is closed to others, e.g. /root?); use a DIR it can reach (for run.sh: SWITCHYARD_DATA_DIR=/var/tmp/switchyard-data)"
  fi
}

pg_write_conf() {
  local port=$1 sock_dir
  # Unix socket paths are limited to 107 bytes; without room, TCP only.
  sock_dir=$PG_SOCK_DIR
  if (( ${#sock_dir} + 20 > 107 )); then
    sock_dir=
  fi
  {
    echo "# Written by scripts/services.sh at every start; edits are overwritten."
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '${sock_dir//\'/\'\'}'"
    echo "shared_preload_libraries = 'pg_stat_statements'"
    # Room for many test runs: every test database gets its own entries (its migrations'
    # DDL among them), about 6,000 a run against the default bound of 5,000, and an
    # eviction during the hot-path test makes its counts unreliable (it fails then). About
    # 40 MB of shared memory. Not kept across restarts: each start counts from nothing.
    echo "pg_stat_statements.max = 100000"
    echo "pg_stat_statements.save = off"
    echo "max_connections = 200"
    echo "log_min_messages = warning"
    echo "log_line_prefix = '%m [%p] '"
    if (( ephemeral )); then
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } > "$PGDATA_DIR/switchyard.conf"
  (( EUID == 0 )) && chown postgres:postgres "$PGDATA_DIR/switchyard.conf"
  if ! grep -q "^include_if_exists = 'switchyard.conf'" "$PGDATA_DIR/postgresql.conf"; then
    printf "\n# Switchyard's private server settings.\ninclude_if_exists = 'switchyard.conf'\n" \
      >> "$PGDATA_DIR/postgresql.conf"
  fi
}

psql_q() {  # psql_q PORT DB SQL
  PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" "$PG_BINDIR/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$1 user=$DB_USER dbname=$2 sslmode=disable" -c "$3"
}

pg_wait_ready() {
  local port=$1 deadline=$(( SECONDS + TIMEOUT ))
  until "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -t 2; do
    if (( SECONDS >= deadline )) || ! pg_running; then
      tail_log "$PG_LOG"
      die "PostgreSQL on 127.0.0.1:$port did not become ready within ${TIMEOUT}s"
    fi
    sleep 0.2
  done
}

pg_start() {
  pg_check_install
  pg_prepare_dirs
  if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
    log "postgres: initdb in $PGDATA_DIR"
    local initdb_opts=(-D "$PGDATA_DIR" -U "$DB_USER" -A trust -E UTF8 --no-locale)
    (( ephemeral )) && initdb_opts+=(--no-sync)
    if ! as_pg "$PG_BINDIR/initdb" "${initdb_opts[@]}" >>"$PG_LOG" 2>&1; then
      tail_log "$PG_LOG"
      die "initdb failed"
    fi
  else
    local v
    v=$(cat "$PGDATA_DIR/PG_VERSION")
    [[ "$v" == 15 ]] || die "$PGDATA_DIR holds PostgreSQL $v data, not 15; move it away"
  fi

  if pg_running; then
    PG_PORT=$(pg_running_port)
    [[ -z "$opt_pg_port" || "$opt_pg_port" == "$PG_PORT" ]] \
      || die "postgres from $DIR already runs on port $PG_PORT (asked for $opt_pg_port); stop it first"
    log "postgres: already running on 127.0.0.1:$PG_PORT (data $PGDATA_DIR)"
  else
    # A postmaster killed hard may linger as a zombie until reaped; Postgres would take
    # it for a live one and refuse to start. Give the reaper a moment.
    local old_pid deadline=$(( SECONDS + 10 ))
    old_pid=$(sed -n '1p' "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)
    while [[ "$old_pid" =~ ^[0-9]+$ ]] && ! proc_alive "$old_pid" postgres \
        && [[ "$(cat "/proc/$old_pid/stat" 2>/dev/null)" == *"(postgres"* ]] && (( SECONDS < deadline )); do
      sleep 0.2
    done
    local attempt
    for attempt in 1 2 3; do
      PG_PORT=$(choose_port "$opt_pg_port" "$prev_pg_port" "${REDIS_PORT:-0}")
      pg_write_conf "$PG_PORT"
      if as_pg "$PG_BINDIR/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$TIMEOUT" -s >/dev/null 2>&1; then
        break
      fi
      # Someone may have taken an auto-picked port between the check and the bind.
      if [[ -z "$opt_pg_port" && $attempt -lt 3 ]] && tail -n 20 "$PG_LOG" | grep -q 'could not bind\|could not create any TCP/IP sockets'; then
        log "postgres: port $PG_PORT was taken, trying another"
        prev_pg_port=
        continue
      fi
      tail_log "$PG_LOG"
      die "PostgreSQL failed to start (data $PGDATA_DIR, port $PG_PORT)"
    done
    log "postgres: started on 127.0.0.1:$PG_PORT (data $PGDATA_DIR, log $PG_LOG)"
  fi
  pg_wait_ready "$PG_PORT"

  # Extension in template1 first: databases created later (the tests' fresh ones too) get it.
  psql_q "$PG_PORT" template1 "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    || die "could not create extension pg_stat_statements"
  if [[ "$(psql_q "$PG_PORT" postgres "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
    psql_q "$PG_PORT" postgres "CREATE DATABASE $DB_NAME" || die "could not create database $DB_NAME"
    log "postgres: created database $DB_NAME"
  fi
  psql_q "$PG_PORT" "$DB_NAME" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    || die "could not create extension pg_stat_statements in $DB_NAME"
}

pg_stop() {
  [[ -d "$PGDATA_DIR" ]] || return 0
  if ! pg_running; then
    log "postgres: not running"
    return 0
  fi
  if as_pg "$PG_BINDIR/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t 30 -s >/dev/null 2>&1; then
    log "postgres: stopped"
    return 0
  fi
  local pid
  pid=$(sed -n '1p' "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)
  if proc_alive "$pid" postgres; then
    log "postgres: fast stop failed, killing $pid"
    kill -QUIT "$pid" 2>/dev/null || true
    sleep 2
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- redis

redis_pid() {
  local pid
  [[ -f "$REDIS_PID" ]] || return 1
  pid=$(cat "$REDIS_PID" 2>/dev/null) || return 1
  proc_alive "$pid" redis || return 1
  echo "$pid"
}

redis_wait_ready() {
  local port=$1 deadline=$(( SECONDS + TIMEOUT ))
  until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
    if (( SECONDS >= deadline )) || ! redis_pid >/dev/null; then
      tail_log "$REDIS_LOG"
      die "Redis on 127.0.0.1:$port did not become ready within ${TIMEOUT}s"
    fi
    sleep 0.1
  done
}

redis_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run scripts/deps.sh --run"
  mkdir -p "$REDIS_DIR"
  if redis_pid >/dev/null; then
    REDIS_PORT=$prev_redis_port
    [[ -n "$REDIS_PORT" ]] || die "redis from $DIR runs (pid $(redis_pid)) but its port is unknown; run: $0 stop $DIR"
    [[ -z "$opt_redis_port" || "$opt_redis_port" == "$REDIS_PORT" ]] \
      || die "redis from $DIR already runs on port $REDIS_PORT (asked for $opt_redis_port); stop it first"
    log "redis: already running on 127.0.0.1:$REDIS_PORT"
  else
    local attempt persist=(--appendonly yes --appendfsync everysec)
    (( ephemeral )) && persist=(--appendonly no)
    for attempt in 1 2 3; do
      REDIS_PORT=$(choose_port "$opt_redis_port" "$prev_redis_port" "${PG_PORT:-0}")
      rm -f "$REDIS_PID"
      : > "$REDIS_LOG"
      # shellcheck disable=SC2094  # redis appends to its log; errors before that go there too
      if redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
          --save '' "${persist[@]}" --databases 64 \
          --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
          >>"$REDIS_LOG" 2>&1; then
        local deadline=$(( SECONDS + 5 ))
        # daemonize: the parent returns at once; the child may still fail to bind.
        until redis_pid >/dev/null || (( SECONDS >= deadline )); do sleep 0.05; done
        if redis_pid >/dev/null; then
          break
        fi
      fi
      if [[ -z "$opt_redis_port" && $attempt -lt 3 ]] && grep -q 'Address already in use\|Could not create server TCP' "$REDIS_LOG"; then
        log "redis: port $REDIS_PORT was taken, trying another"
        prev_redis_port=
        continue
      fi
      tail_log "$REDIS_LOG"
      die "Redis failed to start (dir $REDIS_DIR, port $REDIS_PORT)"
    done
    log "redis: started on 127.0.0.1:$REDIS_PORT (dir $REDIS_DIR, log $REDIS_LOG)"
  fi
  redis_wait_ready "$REDIS_PORT"
}

redis_stop() {
  local pid port=$prev_redis_port
  if ! pid=$(redis_pid); then
    [[ -d "$REDIS_DIR" ]] && log "redis: not running"
    rm -f "$REDIS_PID"
    return 0
  fi
  if [[ -n "$port" ]]; then
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  fi
  local deadline=$(( SECONDS + 10 ))
  while proc_alive "$pid" redis && (( SECONDS < deadline )); do
    sleep 0.1
    # The SHUTDOWN did not reach it (unknown port?): fall back to a signal.
    if (( SECONDS + 8 >= deadline )); then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  if proc_alive "$pid" redis; then
    log "redis: still running, killing $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$REDIS_PID"
  log "redis: stopped"
}

# ---------------------------------------------------------------- commands

# Ports of servers not started this time are kept: the next start reuses them.
write_state() {
  local pg=${PG_PORT:-$prev_pg_port} redis=${REDIS_PORT:-$prev_redis_port}
  {
    [[ -z "$pg" ]] || echo "PG_PORT=$pg"
    [[ -z "$redis" ]] || echo "REDIS_PORT=$redis"
    echo "EPHEMERAL=$ephemeral"
  } > "$STATE"
}

write_env() {
  {
    echo "# Written by scripts/services.sh start $DIR; source it."
    if [[ -n "${PG_PORT:-}" ]]; then
      echo "export DATABASE_URL=postgresql://$DB_USER@127.0.0.1:$PG_PORT/$DB_NAME"
      echo "export SWITCHYARD_TEST_DATABASE_URL=postgresql://$DB_USER@127.0.0.1:$PG_PORT/$DB_NAME"
    fi
    if [[ -n "${REDIS_PORT:-}" ]]; then
      echo "export REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT"
      echo "export SWITCHYARD_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    fi
  } > "$ENV_FILE.tmp"
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

case "$cmd" in
  start)
    PG_PORT='' REDIS_PORT=''
    rm -f "$ENV_FILE"
    # If a start fails half way, record the ports so that `stop DIR` can find them.
    trap 'write_state' EXIT
    # Reserve the previous Redis port before Postgres picks one, and vice versa.
    (( want_redis )) && [[ -z "$opt_redis_port" ]] && [[ -n "$prev_redis_port" ]] && REDIS_PORT=$prev_redis_port
    [[ -n "$opt_redis_port" ]] && REDIS_PORT=$opt_redis_port
    if (( want_pg )); then pg_start; fi
    if (( want_redis )); then redis_start; else REDIS_PORT=; fi
    trap - EXIT
    write_state
    write_env
    log "services ready; env: source $ENV_FILE"
    ;;
  stop)
    rc=0
    pg_stop || rc=1
    redis_stop || rc=1
    exit "$rc"
    ;;
  status)
    if [[ -d "$PGDATA_DIR" ]]; then
      if pg_running; then echo "postgres: running on 127.0.0.1:$(pg_running_port)"; else echo "postgres: stopped"; fi
    else
      echo "postgres: none"
    fi
    if pid=$(redis_pid); then echo "redis: running on 127.0.0.1:${prev_redis_port:-?} (pid $pid)"
    elif [[ -d "$REDIS_DIR" ]]; then echo "redis: stopped"
    else echo "redis: none"
    fi
    ;;
esac
