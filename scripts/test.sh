#!/usr/bin/env bash
# README command 2: build with sanitizers and run every test.
#
#   ./scripts/test.sh [extra ctest arguments]      e.g. ./scripts/test.sh -R config
#
# 1. Installs missing Debian packages (scripts/deps.sh).
# 2. Builds build/test: Debug, ASan+UBSan (SWITCHYARD_SANITIZE=ON), Ninja, ccache.
# 3. Installs the npm packages of the Node tests (tests/package.json, tests/*/package.json).
# 4. Starts throw-away Postgres and Redis on free loopback ports in a temporary folder.
# 5. Runs ctest (unit, integration, end-to-end); a run that finds no test fails.
# 6. Scans every gateway log and answer of the run for the secrets the tests used
#    (tests/secrets_scan.mjs); one found fails the run.
# The services are stopped and the folder removed on exit, whatever happened.
# Exits non-zero on any failure.
#
# Tests see SWITCHYARD_TEST_DATABASE_URL (postgresql://switchyard@127.0.0.1:P/switchyard,
# a superuser: tests may create their own databases), SWITCHYARD_TEST_REDIS_URL
# (redis://127.0.0.1:P) and SWITCHYARD_BIN. DATABASE_URL, REDIS_* and the master-key
# variables are removed from the environment: a test that wants them sets them for
# the process it starts.
#
# Env: SWITCHYARD_JOBS (default: number of cores), SWITCHYARD_TEST_TIMEOUT (s per test,
#      default 600), SWITCHYARD_SKIP_DEPS=1, CI=true (quieter output; full logs on failure).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd -P)

log() { printf '[switchyard] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BUILD_DIR=build/test
FUZZ_DIR=build/fuzz
JOBS=${SWITCHYARD_JOBS:-$(nproc 2>/dev/null || echo 2)}
TEST_TIMEOUT=${SWITCHYARD_TEST_TIMEOUT:-600}
IN_CI=0
[[ "${CI:-}" == true || "${CI:-}" == 1 ]] && IN_CI=1

t_start=$SECONDS
build_s='' npm_s='' test_s='' fuzz_s=''
ctest_logs=()
stage=setup
svc_dir=''

# ---------------------------------------------------------------- cleanup

# shellcheck disable=SC2317  # invoked by trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [[ -n "$svc_dir" ]]; then
    "$ROOT/scripts/services.sh" stop "$svc_dir" 2>/dev/null \
      || log "warning: could not stop the services in $svc_dir"
    rm -rf "$svc_dir"
  fi
  local timings="build ${build_s:--}s, npm ${npm_s:--}s, tests ${test_s:--}s, fuzz ${fuzz_s:--}s, total $(( SECONDS - t_start ))s"
  if (( rc == 0 )); then
    log "PASSED ($timings)"
  else
    log "FAILED at $stage, exit code $rc ($timings)"
  fi
  # Last line: the plain "N passed, N failed" count of every ctest run, for CI.
  local passed=0 failed=0 line total f seen=0
  for f in "${ctest_logs[@]}"; do
    [[ -f "$f" ]] || continue
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$f" | tail -n 1 || true)
    [[ -n "$line" ]] || continue
    seen=1
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$line")
    passed=$(( passed + total - f ))
    failed=$(( failed + f ))
  done
  if (( seen )); then
    echo "ctest: $passed passed, $failed failed"
  fi
  exit "$rc"
}
ctest_pid=''
# shellcheck disable=SC2317  # invoked by trap
on_signal() {
  local code=$1
  if [[ -n "$ctest_pid" ]] && kill -0 "$ctest_pid" 2>/dev/null; then
    # ctest runs in its own process group: stop it and the tests it started.
    kill -TERM -- "-$ctest_pid" 2>/dev/null || true
    local deadline=$(( SECONDS + 5 ))
    while kill -0 "$ctest_pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
    kill -KILL -- "-$ctest_pid" 2>/dev/null || true
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# Run "$@"; under CI its output goes to LOGFILE and is printed whole only on failure.
run_logged() {
  local logfile=$1; shift
  if (( IN_CI )); then
    if ! "$@" > "$logfile" 2>&1; then
      log "output of: $*"
      cat "$logfile" >&2
      return 1
    fi
  else
    "$@"
  fi
}

# ---------------------------------------------------------------- deps

stage=deps
if [[ "${SWITCHYARD_SKIP_DEPS:-0}" != 1 ]]; then
  "$ROOT/scripts/deps.sh"
fi

# ---------------------------------------------------------------- build

stage=configure
if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD_DIR/CMakeCache.txt"; then
  die "$BUILD_DIR was configured with another generator; remove it (rm -rf $BUILD_DIR) and run again"
fi
mkdir -p "$BUILD_DIR"
t0=$SECONDS
log "configuring $BUILD_DIR (Debug, ASan+UBSan)"
run_logged "$BUILD_DIR/configure.log" \
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DSWITCHYARD_SANITIZE=ON -DSWITCHYARD_TESTS=ON

stage=build
log "building with $JOBS jobs"
# Streamed even under CI: Ninja prints one line per step, and a run stopped by a time
# limit then still shows how far the build got.
cmake --build "$BUILD_DIR" --parallel "$JOBS"
build_s=$(( SECONDS - t0 ))
log "build done in ${build_s}s"

# ---------------------------------------------------------------- npm

stage=npm
t0=$SECONDS
npm_dirs=()
while IFS= read -r f; do
  npm_dirs+=("$(dirname "$f")")
done < <(find tests -maxdepth 2 -name package.json -not -path '*/node_modules/*' | sort)
if (( ${#npm_dirs[@]} == 0 )); then
  log "npm: no package.json under tests/, skipping"
else
  command -v npm >/dev/null 2>&1 || die "npm not found; run scripts/deps.sh --test"
  npm_opts=(--no-audit --no-fund)
  (( IN_CI )) && npm_opts+=(--loglevel=error --no-progress)
  for d in "${npm_dirs[@]}"; do
    stamp=$d/node_modules/.package-lock.json   # npm's record of what it installed
    if (( ! IN_CI )) && [[ -f "$stamp" && "$stamp" -nt "$d/package.json" ]] \
        && { [[ ! -f "$d/package-lock.json" ]] || [[ "$stamp" -nt "$d/package-lock.json" ]]; }; then
      log "npm: $d/node_modules is up to date"
      continue
    fi
    if [[ -f "$d/package-lock.json" ]]; then
      log "npm: npm ci in $d"
      (cd "$d" && npm ci "${npm_opts[@]}") || die "npm ci failed in $d"
    else
      log "npm: npm install in $d (no package-lock.json)"
      (cd "$d" && npm install "${npm_opts[@]}") || die "npm install failed in $d"
    fi
  done
fi
npm_s=$(( SECONDS - t0 ))

# ---------------------------------------------------------------- services

stage=services
# Hermetic: nothing from the caller's environment points tests at other servers or keys.
unset DATABASE_URL REDIS_HOST REDIS_PORT REDIS_URL REDIS_PASSWORD \
  LITELLM_MASTER_KEY SWITCHYARD_MASTER_KEY SWITCHYARD_CONFIG PORT
svc_dir=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-test.XXXXXX")
"$ROOT/scripts/services.sh" start "$svc_dir" --ephemeral
# shellcheck source=/dev/null
source "$svc_dir/env.sh"
unset DATABASE_URL REDIS_HOST REDIS_PORT
export SWITCHYARD_TEST_DATABASE_URL SWITCHYARD_TEST_REDIS_URL
export SWITCHYARD_BIN=$ROOT/$BUILD_DIR/src/switchyard
# What the gateways print and answer, and the secrets the tests give them, for the
# secrets scan after ctest (tests/lib/capture.mjs, tests/secrets_scan.mjs).
export SWITCHYARD_TEST_CAPTURE_DIR=$svc_dir/capture
mkdir -p "$SWITCHYARD_TEST_CAPTURE_DIR"

# ---------------------------------------------------------------- tests

stage=ctest
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [[ -f tests/lsan.supp && -z "${LSAN_OPTIONS:-}" ]]; then
  export LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp
fi
t0=$SECONDS
log "running ctest (-j$JOBS, timeout ${TEST_TIMEOUT}s per test)"
# In the background, in its own process group (set -m), so that a signal to this script
# is handled at once: the trap stops ctest and its tests, then the services.
# run_ctest BUILD_DIR [ctest args]: ctest in the background, in its own process group
# (set -m), so that a signal to this script is handled at once: the trap stops ctest
# and its tests, then the services. Output also goes to BUILD_DIR/ctest-output.log.
run_ctest() {
  local dir=$1; shift
  set -m
  rm -f "$dir/ctest-output.log"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error --output-log "$dir/ctest-output.log" \
    --parallel "$JOBS" --timeout "$TEST_TIMEOUT" "$@" < /dev/null &
  ctest_pid=$!
  set +m
  while kill -0 "$ctest_pid" 2>/dev/null; do
    wait "$ctest_pid" 2>/dev/null || true
  done
  local code=0
  wait "$ctest_pid" 2>/dev/null || code=$?
  ctest_pid=''
  return "$code"
}
rc=0
run_ctest "$BUILD_DIR" "$@" || rc=$?
ctest_logs+=("$ROOT/$BUILD_DIR/ctest-output.log")
# No key, password or bearer token the tests used may appear in a gateway log or answer.
stage=secrets-scan
if ! node tests/secrets_scan.mjs "$SWITCHYARD_TEST_CAPTURE_DIR"; then
  log "error: the secrets scan found secrets in the gateway's logs or answers (listed above)"
  rc=1
fi
stage=ctest
test_s=$(( SECONDS - t0 ))
log "tests done in ${test_s}s"

# ---------------------------------------------------------------- fuzz

# The libFuzzer targets (clang, ASan+UBSan) run briefly from their checked-in corpus.
# Skipped when ctest arguments narrow the run, or with SWITCHYARD_SKIP_FUZZ=1.
if (( $# == 0 )) && [[ "${SWITCHYARD_SKIP_FUZZ:-0}" != 1 ]]; then
  stage=fuzz
  t0=$SECONDS
  log "fuzzing: building $FUZZ_DIR (clang, libFuzzer)"
  run_logged "$FUZZ_DIR.configure.log" env CC=clang CXX=clang++ \
    cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSWITCHYARD_TESTS=OFF \
      -DSWITCHYARD_FUZZ=ON -DSWITCHYARD_PCH=OFF -DSWITCHYARD_FUZZ_SECONDS="${SWITCHYARD_FUZZ_SECONDS:-10}"
  cmake --build "$FUZZ_DIR" --parallel "$JOBS" --target fuzz_targets
  run_ctest "$FUZZ_DIR" -L fuzz || rc=$?
  ctest_logs+=("$ROOT/$FUZZ_DIR/ctest-output.log")
  fuzz_s=$(( SECONDS - t0 ))
  log "fuzzing done in ${fuzz_s}s"
fi
stage=ctest
exit "$rc"
