#!/usr/bin/env bash
# gpu-check.sh: the one script to run on a GPU machine. Builds tandem with the CUDA backend (or uses
# prebuilt test binaries), runs test_cuda first and then every other test binary with the CUDA device
# selected (TANDEM_TEST_DEVICE=cuda), and writes a JSON report. Parts that do not exist yet (engine
# tests, the latency bench) are skipped, not failed.
#
# Usage: scripts/gpu-check.sh [OUT_DIR]        (default: $OUT, else out/gpu-check)
# Environment:
#   BUILD_DIR     build directory (default build-gpu, configured fresh with -DTANDEM_CUDA=ON)
#   JOBS          build parallelism (default 16)
#   PREBUILT_DIR  use <dir>/bin/test_* and <dir>/lib/*.so* instead of building (for machines without
#                 the Debian -dev packages: build here with CUDA, copy bin + non-system libs there)
#   TEST_TIMEOUT  seconds per test binary (default 600)
#   BENCH_ARGS    when set and bin/tandem exists: runs `tandem bench latency $BENCH_ARGS` too
# Files written (few, so that they all come back from a lent machine): report.json, build.log,
# tests.log, gpu.txt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${1:-${OUT:-$ROOT/out/gpu-check}}
BUILD_DIR=${BUILD_DIR:-$ROOT/build-gpu}
JOBS=${JOBS:-16}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export TANDEM_TEST_DEVICE=cuda

log() { echo "[gpu-check] $*"; }

(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi failed") \
  > "$OUT_DIR/gpu.txt"
log "GPU: $(head -1 "$OUT_DIR/gpu.txt")"

build_status=skipped
build_seconds=0
if [ -n "${PREBUILT_DIR:-}" ]; then
  BIN_DIR=$PREBUILT_DIR/bin
  export LD_LIBRARY_PATH="$PREBUILT_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  build_status=prebuilt
  log "using prebuilt binaries from $BIN_DIR"
  : > "$OUT_DIR/build.log"
else
  BIN_DIR=$BUILD_DIR/bin
  GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
  t0=$(date +%s)
  log "configure + build ($BUILD_DIR, -j$JOBS)"
  if cmake -S "$ROOT" -B "$BUILD_DIR" "${GEN[@]}" -DTANDEM_CUDA=ON -DCMAKE_BUILD_TYPE=Release > "$OUT_DIR/build.log" 2>&1; then
    # test_cuda first, so that the CUDA ops are checked even when another part does not build yet.
    cmake --build "$BUILD_DIR" -j "$JOBS" --target test_cuda >> "$OUT_DIR/build.log" 2>&1
    if cmake --build "$BUILD_DIR" -j "$JOBS" -- -k 0 >> "$OUT_DIR/build.log" 2>&1; then
      build_status=ok
    else
      build_status=partial
    fi
  else
    build_status=configure_failed
  fi
  build_seconds=$(( $(date +%s) - t0 ))
  log "build: $build_status in ${build_seconds}s (tail of build.log below)"
  tail -n 15 "$OUT_DIR/build.log"
fi

: > "$OUT_DIR/tests.log"
tests=()
[ -x "$BIN_DIR/test_cuda" ] && tests+=("$BIN_DIR/test_cuda")
for t in "$BIN_DIR"/test_*; do
  [ -x "$t" ] && [ "$(basename "$t")" != test_cuda ] && tests+=("$t")
done
[ ${#tests[@]} -eq 0 ] && log "no test binaries found in $BIN_DIR"

declare -A rcs secs
for t in "${tests[@]}"; do
  name=$(basename "$t")
  log "running $name"
  t0=$(date +%s)
  { echo "===== $name ====="; } >> "$OUT_DIR/tests.log"
  timeout "$TEST_TIMEOUT" "$t" --gtest_output="json:$WORK/$name.json" >> "$OUT_DIR/tests.log" 2>&1
  rcs[$name]=$?
  secs[$name]=$(( $(date +%s) - t0 ))
  log "$name: rc=${rcs[$name]} (${secs[$name]}s)"
done

bench_status=skipped
if [ -n "${BENCH_ARGS:-}" ] && [ -x "$BIN_DIR/tandem" ]; then
  log "tandem bench latency $BENCH_ARGS"
  # shellcheck disable=SC2086
  if timeout "$TEST_TIMEOUT" "$BIN_DIR/tandem" bench latency $BENCH_ARGS >> "$OUT_DIR/tests.log" 2>&1; then
    bench_status=ok
  else
    bench_status=failed
  fi
fi

# report.json: build status, then per binary rc, seconds, and gtest counts with the failed test names.
{
  echo "{\"build\": {\"status\": \"$build_status\", \"seconds\": $build_seconds}, \"bench_latency\": \"$bench_status\","
  echo " \"gpu\": \"$(head -1 "$OUT_DIR/gpu.txt" | tr -d '"\\')\", \"tests\": {"
  first=1
  for t in "${tests[@]}"; do
    name=$(basename "$t")
    [ $first -eq 1 ] || echo ","
    first=0
    passed=0; failed=0; skipped=0; failed_names=""
    if [ -f "$WORK/$name.json" ] && command -v python3 >/dev/null; then
      read -r passed failed skipped failed_names < <(python3 - "$WORK/$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = f = s = 0
names = []
for suite in d.get("testsuites", []):
    for case in suite.get("testsuite", []):
        if case.get("result") == "SKIPPED" or case.get("status") == "NOTRUN":
            s += 1
        elif case.get("failures"):
            f += 1
            names.append(suite["name"] + "." + case["name"])
        else:
            p += 1
print(p, f, s, ",".join(names) or "-")
PY
)
    fi
    [ "$failed_names" = "-" ] && failed_names=""
    printf '  "%s": {"rc": %s, "seconds": %s, "passed": %s, "failed": %s, "skipped": %s, "failed_tests": "%s"}' \
      "$name" "${rcs[$name]}" "${secs[$name]}" "${passed:-0}" "${failed:-0}" "${skipped:-0}" "$failed_names"
  done
  echo ""
  echo "}}"
} > "$OUT_DIR/report.json"

log "report: $OUT_DIR/report.json"
cat "$OUT_DIR/report.json"
overall=0
for t in "${tests[@]}"; do [ "${rcs[$(basename "$t")]}" -eq 0 ] || overall=1; done
[ "$build_status" = ok ] || [ "$build_status" = prebuilt ] || overall=1
exit $overall
