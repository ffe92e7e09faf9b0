#!/usr/bin/env bash
# Install the Debian 12 packages Switchyard needs, and only the missing ones.
#
#   scripts/deps.sh [--build] [--run] [--test]     (no flag: all three sets)
#
#   --build  compilers, CMake/Ninja/ccache, the libraries we link (+ GoogleTest)
#   --run    the private Postgres 15 (+ contrib for pg_stat_statements) and Redis, curl
#   --test   GoogleTest, clang (fuzzing), prometheus (its promtool checks /metrics), chromium
#            (the admin UI's browser test), Node.js + npm (only if `node` is not on PATH)
#
# Idempotent: checks with dpkg-query and runs `apt-get update` + `apt-get install`
# only when something is missing. Runs as root, or through sudo when available.
set -euo pipefail

log() { printf '[switchyard] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0"; }

want_build=0 want_run=0 want_test=0
for arg in "$@"; do
  case "$arg" in
    --build) want_build=1 ;;
    --run) want_run=1 ;;
    --test) want_test=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done
if (( want_build + want_run + want_test == 0 )); then
  want_build=1 want_run=1 want_test=1
fi

build_pkgs=(
  cmake ninja-build ccache g++ lld pkg-config
  libboost1.81-dev libssl-dev libpqxx-dev libhiredis-dev libyaml-cpp-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libgtest-dev ca-certificates
)
run_pkgs=(postgresql postgresql-contrib redis-server curl ca-certificates tzdata)
# libclang-rt-14-dev holds the sanitizer and libFuzzer runtimes (only a Recommends of clang).
# prometheus: its `promtool check metrics` validates the gateway's /metrics output.
# chromium: headless, driven by puppeteer-core in tests/e2e/ui.test.mjs (the admin UI).
test_pkgs=(libgtest-dev clang libclang-rt-14-dev curl prometheus chromium)

wanted=()
(( want_build )) && wanted+=("${build_pkgs[@]}")
(( want_run )) && wanted+=("${run_pkgs[@]}")
if (( want_test )); then
  wanted+=("${test_pkgs[@]}")
  # Node may come from outside apt (nodesource, nvm, a preinstalled build). Debian's
  # nodejs/npm would conflict with those, so only install them when there is no node.
  if command -v node >/dev/null 2>&1; then
    node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if (( node_major < 18 )); then
      log "warning: node $(node --version 2>/dev/null) is older than 18; the openai npm package needs >= 18"
    fi
    command -v npm >/dev/null 2>&1 || log "warning: node is on PATH but npm is not; install npm for your node"
  else
    wanted+=(nodejs npm)
  fi
fi

# De-duplicate, keep order.
declare -A seen=()
pkgs=()
for p in "${wanted[@]}"; do
  [[ -n "${seen[$p]:-}" ]] && continue
  seen[$p]=1
  pkgs+=("$p")
done

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian 12 (bookworm) only"

# One dpkg-query for all; unknown packages are simply absent from its output.
declare -A installed=()
while read -r name status; do
  [[ "$status" == "install ok installed" ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null || true)

missing=()
for p in "${pkgs[@]}"; do
  [[ -n "${installed[$p]:-}" ]] || missing+=("$p")
done

if (( ${#missing[@]} == 0 )); then
  log "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

log "deps: installing ${#missing[@]} missing package(s): ${missing[*]}"

sudo_cmd=()
if (( EUID != 0 )); then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    die "not root and no sudo; as root run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  fi
fi

apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update \
  || die "apt-get update failed"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" \
  || die "apt-get install failed for: ${missing[*]}"
log "deps: installed ${missing[*]}"
