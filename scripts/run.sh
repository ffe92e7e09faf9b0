#!/usr/bin/env bash
# README command 1: build and run the gateway in the foreground.
#
#   ./scripts/run.sh [extra switchyard arguments]
#   ./scripts/run.sh --build-only      steps 1 and 2 only (docker/Dockerfile builds with this)
#
# 1. Installs missing Debian packages (scripts/deps.sh --build --run).
# 2. Builds a Release binary in build/release (Ninja, ccache).
# 3. If no database is configured (neither DATABASE_URL nor general_settings.database_url),
#    starts a private Postgres 15 on 127.0.0.1; if no Redis is configured (neither
#    REDIS_HOST/REDIS_URL nor redis_host/redis_url in the config), a private Redis.
#    Their data lives in .data/ (git-ignored; SWITCHYARD_DATA_DIR to move it) and is
#    kept between runs.
# 4. Master key: LITELLM_MASTER_KEY or SWITCHYARD_MASTER_KEY if set, else .data/master_key
#    (created once, mode 600), exported as LITELLM_MASTER_KEY.
# 5. Runs build/release/src/switchyard --config CONFIG --port PORT [args] in the foreground.
#
# Ctrl-C (or SIGTERM) stops the gateway gracefully, then the services this script started;
# a second Ctrl-C kills the gateway. Exits with the gateway's exit code.
#
# Env: SWITCHYARD_CONFIG (default config/switchyard.yaml), PORT (default 4000),
#      SWITCHYARD_JOBS (build parallelism, default: number of cores),
#      SWITCHYARD_SKIP_DEPS=1 (do not check Debian packages).
set -euo pipefail

# A relative SWITCHYARD_CONFIG is taken from the caller's directory, if it exists there.
if [[ -n "${SWITCHYARD_CONFIG:-}" && "$SWITCHYARD_CONFIG" != /* && -f "$SWITCHYARD_CONFIG" ]]; then
  SWITCHYARD_CONFIG=$(pwd -P)/$SWITCHYARD_CONFIG
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

log() { printf '[switchyard] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BUILD_DIR=build/release
BIN=$BUILD_DIR/src/switchyard
DATA_DIR=${SWITCHYARD_DATA_DIR:-.data}
[[ "$DATA_DIR" == /* ]] || DATA_DIR=$ROOT/$DATA_DIR
CONFIG=${SWITCHYARD_CONFIG:-config/switchyard.yaml}
PORT=${PORT:-4000}
JOBS=${SWITCHYARD_JOBS:-$(nproc 2>/dev/null || echo 2)}

build_only=0
if [[ "${1:-}" == --build-only ]]; then
  build_only=1
  shift
  (( $# == 0 )) || die "--build-only takes no other argument"
fi

if (( ! build_only )); then
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
  [[ -f "$CONFIG" ]] || die "config not found: $CONFIG (set SWITCHYARD_CONFIG)"
fi

# ---------------------------------------------------------------- cleanup and signals

gw_pid=''
services_started=0
signals=0

gw_alive() { [[ -n "$gw_pid" ]] && kill -0 "$gw_pid" 2>/dev/null; }

# shellcheck disable=SC2317  # invoked by trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if gw_alive; then
    log "stopping the gateway (pid $gw_pid)"
    kill -TERM "$gw_pid" 2>/dev/null || true
    local deadline=$(( SECONDS + 30 ))
    while gw_alive && (( SECONDS < deadline )); do sleep 0.2; done
    gw_alive && kill -KILL "$gw_pid" 2>/dev/null
  fi
  if (( services_started )); then
    "$ROOT/scripts/services.sh" stop "$DATA_DIR" || log "warning: could not stop the services in $DATA_DIR"
  fi
  exit "$rc"
}

# shellcheck disable=SC2317  # invoked by trap
on_signal() {
  local sig=$1 code=$2
  if gw_alive; then
    signals=$(( signals + 1 ))
    if (( signals == 1 )); then
      log "SIG$sig: stopping the gateway gracefully (Ctrl-C again to kill it)"
      kill -s "$sig" "$gw_pid" 2>/dev/null || true
    else
      log "killing the gateway"
      kill -KILL "$gw_pid" 2>/dev/null || true
    fi
  else
    log "interrupted"
    exit "$code"
  fi
}

trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal TERM 129' HUP

# ---------------------------------------------------------------- deps and build

if [[ "${SWITCHYARD_SKIP_DEPS:-0}" != 1 ]]; then
  if (( build_only )); then
    "$ROOT/scripts/deps.sh" --build
  else
    "$ROOT/scripts/deps.sh" --build --run
  fi
fi

if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD_DIR/CMakeCache.txt"; then
  die "$BUILD_DIR was configured with another generator; remove it (rm -rf $BUILD_DIR) and run again"
fi
t0=$SECONDS
log "building Release in $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_TESTS=OFF >/dev/null \
  || die "cmake configure failed (run: cmake -S . -B $BUILD_DIR -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_TESTS=OFF)"
cmake --build "$BUILD_DIR" --parallel "$JOBS" --target switchyard || die "build failed"
[[ -x "$BIN" ]] || die "build finished but $BIN is missing"
log "build done in $(( SECONDS - t0 ))s"
if (( build_only )); then
  log "built $BIN"
  exit 0
fi

# ---------------------------------------------------------------- config inspection

# First value of `KEY:` anywhere in the config (a shallow look: no YAML parser here),
# quotes and trailing comments stripped. Empty if absent.
config_value() {
  local line
  line=$(grep -E "^[[:space:]]*$1[[:space:]]*:" "$CONFIG" | head -n 1) || true
  line=${line#*:}
  line=${line%%#*}
  line=$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']\$//")
  printf '%s' "$line"
}

# Does a config value give a setting? `os.environ/VAR` counts only when VAR is set.
value_set() {
  local v=$1
  [[ -n "$v" ]] || return 1
  if [[ "$v" == os.environ/* ]]; then
    local var=${v#os.environ/}
    [[ "$var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || return 1
    [[ -n "${!var:-}" ]]
    return
  fi
  return 0
}

db_value=$(config_value database_url)
need_pg=1
if [[ -n "${DATABASE_URL:-}" ]]; then
  need_pg=0
  log "database: DATABASE_URL from the environment"
elif value_set "$db_value"; then
  need_pg=0
  log "database: general_settings.database_url from $CONFIG"
elif [[ -n "$db_value" && "$db_value" != os.environ/DATABASE_URL ]]; then
  # The config points at a variable we would not set; let the gateway report it.
  need_pg=0
fi

need_redis=1
if [[ -n "${REDIS_HOST:-}" || -n "${REDIS_URL:-}" ]]; then
  need_redis=0
  log "redis: REDIS_HOST/REDIS_URL from the environment"
else
  for key in redis_host redis_url; do
    v=$(config_value "$key")
    if value_set "$v"; then
      need_redis=0
      log "redis: $key from $CONFIG"
    fi
  done
fi

# ---------------------------------------------------------------- master key

mk_value=$(config_value master_key)
if [[ -n "$mk_value" && "$mk_value" != os.environ/* ]]; then
  log "master key: set in $CONFIG (general_settings.master_key)"
elif [[ -n "${LITELLM_MASTER_KEY:-}" ]]; then
  log "master key: sk-...${LITELLM_MASTER_KEY: -4} (from LITELLM_MASTER_KEY)"
elif [[ -n "${SWITCHYARD_MASTER_KEY:-}" ]]; then
  log "master key: sk-...${SWITCHYARD_MASTER_KEY: -4} (from SWITCHYARD_MASTER_KEY)"
else
  mkdir -p "$DATA_DIR"
  key_file=$DATA_DIR/master_key
  key_shown=${key_file#"$ROOT"/}
  if [[ ! -s "$key_file" ]]; then
    (
      umask 077
      printf 'sk-%s\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" > "$key_file"
    )
  fi
  chmod 600 "$key_file"
  LITELLM_MASTER_KEY=$(tr -d ' \n' < "$key_file")
  export LITELLM_MASTER_KEY
  log "master key: $LITELLM_MASTER_KEY (from $key_shown)"
fi
# The config may name another variable for the key: give it the same key if unset.
if [[ "$mk_value" == os.environ/* ]]; then
  mk_var=${mk_value#os.environ/}
  if [[ "$mk_var" =~ ^[A-Za-z_][A-Za-z0-9_]*$ && -z "${!mk_var:-}" && -n "${LITELLM_MASTER_KEY:-}" ]]; then
    export "$mk_var=$LITELLM_MASTER_KEY"
  fi
fi

# ---------------------------------------------------------------- services

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on port $PORT; stop it or set PORT=..."
fi

if (( need_pg || need_redis )); then
  svc_args=()
  (( need_pg )) || svc_args+=(--no-postgres)
  (( need_redis )) || svc_args+=(--no-redis)
  mkdir -p "$DATA_DIR"
  services_started=1
  "$ROOT/scripts/services.sh" start "$DATA_DIR" "${svc_args[@]}"
  # shellcheck source=/dev/null
  source "$DATA_DIR/env.sh"
  unset SWITCHYARD_TEST_DATABASE_URL SWITCHYARD_TEST_REDIS_URL
  (( need_pg )) && log "database: private Postgres, $DATABASE_URL"
  (( need_redis )) && log "redis: private Redis, ${REDIS_HOST:-}:${REDIS_PORT:-}"
fi

# ---------------------------------------------------------------- the gateway

log "starting: $BIN --config $CONFIG --port $PORT${*:+ $*}"
# Job control gives the gateway its own process group: the terminal's Ctrl-C reaches
# only this script, which forwards it once (and the gateway does not inherit an
# ignored SIGINT, as background jobs of a non-interactive shell otherwise do).
set -m
"$BIN" --config "$CONFIG" --port "$PORT" "$@" < /dev/null &
gw_pid=$!
set +m

# `wait` returns early when a trapped signal arrives; keep waiting until it has exited.
while gw_alive; do
  wait "$gw_pid" 2>/dev/null || true
done
rc=0
wait "$gw_pid" 2>/dev/null || rc=$?
gw_pid=''
if (( rc == 0 )); then
  log "gateway exited"
else
  log "gateway exited with code $rc"
fi
exit "$rc"
