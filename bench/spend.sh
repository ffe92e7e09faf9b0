#!/usr/bin/env bash
# The cost logger's write throughput (docs/spend.md): a throw-away Postgres on loopback,
# bench/spend/spend_writer_bench offering 20,000 spend rows per second for 10 s (as the
# gateway's spend observer adds them), written through the real batch writer.
#
#   ./bench/spend.sh [--rate N] [--seconds S]     # about 1 min with a warm build
#
# Builds in build/release (Release, -DSWITCHYARD_BENCH_SPEND=ON). The test suite does not
# use it. Env: SWITCHYARD_JOBS (default 2), BENCH_SKIP_DEPS=1 (no apt).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[bench/spend] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ "${BENCH_SKIP_DEPS:-0}" != 1 ]]; then
  scripts/deps.sh --build --run || die "could not install the dependencies"
fi
log "building bench/spend/spend_writer_bench (Release, build/release)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DSWITCHYARD_TESTS=OFF -DSWITCHYARD_BENCH_SPEND=ON >/dev/null \
  || die "cmake configure failed"
cmake --build build/release -j "${SWITCHYARD_JOBS:-2}" --target spend_writer_bench >/dev/null || die "build failed"

svc=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-spend.XXXXXX")
trap 'scripts/services.sh stop "$svc" >/dev/null 2>&1 || true; rm -rf "$svc"' EXIT
scripts/services.sh start "$svc" --no-redis --ephemeral >/dev/null 2>&1 || die "could not start Postgres"
# shellcheck source=/dev/null
source "$svc/env.sh"
printf '%s, %s, commit %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
build/release/bench/spend/spend_writer_bench --url "$DATABASE_URL" "$@"
