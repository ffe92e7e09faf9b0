#!/usr/bin/env bash
# JSON readers compared on the gateway's documents ("consider simdjson ...
# measure both"): scan_json (ours), simdjson DOM and On-Demand, nlohmann accept and parse.
#
#   ./bench/json.sh        # about 1 min with a warm build; prints a Markdown table
#
# Installs Debian's libsimdjson-dev if missing (only this command needs it), builds
# bench/json/json_compare in build/release (Release, Ninja, -DSWITCHYARD_BENCH_JSON=ON)
# and runs it pinned to one CPU. No network, no servers. The test suite does not use it.
# Env: SWITCHYARD_JOBS (build parallelism, default 2), BENCH_SKIP_DEPS=1 (no apt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bench/json] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! dpkg-query -W -f='${Status}' libsimdjson-dev 2>/dev/null | grep -q 'ok installed'; then
  [[ "${BENCH_SKIP_DEPS:-0}" == 1 ]] && die "libsimdjson-dev is missing (and BENCH_SKIP_DEPS=1)"
  sudo_cmd=()
  if (( EUID != 0 )); then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo; as root run: apt-get install -y libsimdjson-dev"
    sudo_cmd=(sudo)
  fi
  log "installing libsimdjson-dev"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null \
    || die "apt-get update failed"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 libsimdjson-dev >/dev/null || die "apt-get install libsimdjson-dev failed"
fi
if [[ -x scripts/deps.sh && "${BENCH_SKIP_DEPS:-0}" != 1 ]]; then
  scripts/deps.sh --build || die "could not install the build dependencies"
fi

log "building bench/json/json_compare (Release, build/release)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_TESTS=OFF -DSWITCHYARD_BENCH_JSON=ON >/dev/null \
  || die "cmake configure failed"
cmake --build build/release -j "${SWITCHYARD_JOBS:-2}" --target json_compare >/dev/null || die "build failed"

log "running (each document x 5 readers, ~0.25 s each)"
printf '%s, %s, commit %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
exec taskset -c "${BENCH_CPU:-0}" build/release/bench/json/json_compare
