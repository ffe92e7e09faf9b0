#!/usr/bin/env bash
# Switchyard benchmark suite: one command.
#
#   ./bench/run.sh [--quick] [--targets direct,nginx,switchyard] [--write-docs] [...]
#
# 1. Installs what is missing (Debian nginx, wrk, python3; `apt-get update` only then).
# 2. Builds the gateway in Release (build/release, Ninja) unless SWITCHYARD_BIN is set or
#    the switchyard target is not wanted.
# 3. Runs bench/bench.py: a fake upstream (nginx `return 200`), an nginx proxy_pass hop
#    and Switchyard (with a private Postgres and Redis from scripts/services.sh, and a
#    virtual key) on 127.0.0.1, wrk against each in alternating rounds, and a report:
#    printed, and written to bench/results/<UTC timestamp>.md (+ .json with every run);
#    --write-docs also writes docs/benchmarks.md.
#
# Default run about 10 min, --quick about 2 min (each includes 20-45 s for the "RSS with
# 100,000 keys cached" figure). Everything listens on loopback on free ports;
# every process started is stopped on exit (EXIT trap; Postgres and Redis too, with
# scripts/services.sh stop). `--help` lists every option.
#
# Env: SWITCHYARD_BIN (a gateway binary to use instead of building),
#      SWITCHYARD_JOBS (build parallelism, default 2), BENCH_SKIP_DEPS=1 (no apt).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

targets=switchyard  # any target named switchyard* needs the binary; the default includes it
want_help=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --targets) targets=${args[i + 1]:-} ;;
    --targets=*) targets=${args[i]#--targets=} ;;
    -h|--help) want_help=1 ;;
  esac
done

# ---------------------------------------------------------------- cleanup (EXIT trap)

BENCH_TMP=''
policy_rc_created=0
# shellcheck disable=SC2317  # invoked by trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if (( policy_rc_created )); then rm -f /usr/sbin/policy-rc.d; fi
  if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
    # bench.py stops what it started; this catches what a crash or a kill -9 left behind.
    # Each server runs in its own process group, named by its leader's pid.
    if [[ -s "$BENCH_TMP/pids" ]]; then
      while read -r pid; do
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        if kill -0 -- "-$pid" 2>/dev/null; then
          log "stopping leftover process group $pid"
          kill -TERM -- "-$pid" 2>/dev/null || true
          sleep 0.5
          kill -KILL -- "-$pid" 2>/dev/null || true
        fi
      done < "$BENCH_TMP/pids"
    fi
    # Postgres and Redis (scripts/services.sh, started by bench.py) are daemons, not in a group.
    if [[ -d "$BENCH_TMP/services" ]]; then
      scripts/services.sh stop "$BENCH_TMP/services" >/dev/null 2>&1 || log "could not stop $BENCH_TMP/services"
    fi
    rm -rf "$BENCH_TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- dependencies

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

install_missing() {
  local missing=()
  have nginx || missing+=(nginx)
  have wrk || missing+=(wrk)
  have python3 || missing+=(python3)
  have taskset || missing+=(util-linux)
  (( ${#missing[@]} )) || return 0
  [[ "${BENCH_SKIP_DEPS:-0}" == 1 ]] && die "missing: ${missing[*]} (and BENCH_SKIP_DEPS=1)"
  local sudo_cmd=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo; as root run: apt-get update && apt-get install -y ${missing[*]}"
    sudo_cmd=(sudo)
  fi
  log "installing ${missing[*]}"
  # Installing Debian's nginx would start the distribution's own server on port 80: a
  # temporary policy-rc.d (the standard Debian mechanism) keeps it from starting.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo_cmd[@]}" chmod 755 /usr/sbin/policy-rc.d
    policy_rc_created=1
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update \
    || die "apt-get update failed"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "${missing[@]}" || die "apt-get install failed: ${missing[*]}"
  if (( policy_rc_created )); then "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d; policy_rc_created=0; fi
}

if (( want_help )); then
  have python3 || die "python3 is needed (apt-get install python3)"
  exec python3 bench/bench.py --help
fi

install_missing

# ---------------------------------------------------------------- the gateway

if [[ "$targets" == *switchyard* ]]; then
  # The gateway runs with a private Postgres 15 and Redis (scripts/services.sh).
  if [[ -x scripts/deps.sh && "${BENCH_SKIP_DEPS:-0}" != 1 ]]; then
    scripts/deps.sh --run || die "could not install Postgres and Redis (scripts/deps.sh --run)"
  fi
  if [[ -n "${SWITCHYARD_BIN:-}" ]]; then
    [[ -x "$SWITCHYARD_BIN" ]] || die "SWITCHYARD_BIN=$SWITCHYARD_BIN is not an executable"
    SWITCHYARD_BIN=$(cd "$(dirname "$SWITCHYARD_BIN")" && pwd -P)/$(basename "$SWITCHYARD_BIN")
  else
    if [[ -x scripts/deps.sh && "${BENCH_SKIP_DEPS:-0}" != 1 ]]; then
      scripts/deps.sh --build || die "could not install the build dependencies"
    fi
    log "building the gateway (Release, build/release)"
    cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_TESTS=OFF >/dev/null \
      || die "cmake configure failed; run with --targets direct,nginx or set SWITCHYARD_BIN"
    cmake --build build/release -j "${SWITCHYARD_JOBS:-2}" \
      || die "the gateway did not build; run with --targets direct,nginx or set SWITCHYARD_BIN"
    SWITCHYARD_BIN=$ROOT/build/release/src/switchyard
  fi
  export SWITCHYARD_BIN
fi

# ---------------------------------------------------------------- run

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
rc=0
python3 bench/bench.py --tmp "$BENCH_TMP" --command-line "./bench/run.sh${*:+ $*}" "$@" || rc=$?
exit "$rc"
