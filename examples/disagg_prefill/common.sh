# Shared by the example scripts: process start/stop with logs, health waits, GPU detection, clean-up.
# Sourced, not run.

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export TANDEM_BIN=${TANDEM_BIN:-$ROOT/build/bin/tandem}
LOG_DIR=${LOG_DIR:-$PWD}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-600}   # seconds to wait for each /health
PIDS=()
NAMES=()

die() { echo "error: $*" >&2; exit 1; }

# The model: MODEL if set, else the built-in tiny model (written once under build/models/tiny).
resolve_model() {
  if [ -z "${MODEL:-}" ]; then
    MODEL="$ROOT/build/models/tiny"
    if [ ! -f "$MODEL/config.json" ]; then
      "$TANDEM_BIN" make-model --preset tiny --out "$MODEL" >/dev/null || die "could not write the tiny model"
    fi
    export DEVICE=${DEVICE:-cpu}
  fi
  [ -f "$MODEL/config.json" ] || die "MODEL=$MODEL has no config.json"
  export MODEL
}

# Number of GPUs usable by this binary (0 without CUDA or without a driver).
gpu_count() {
  if [ "${DEVICE:-}" = cpu ]; then echo 0; return; fi
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true; else echo 0; fi
}

# http_ok URL: true when GET URL answers 2xx within 2 s (curl, or python3 where curl is missing).
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -sf -m 2 "$1" >/dev/null 2>&1
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" >/dev/null 2>&1
  fi
}

# start NAME LOGFILE command...: runs a command in the background in its own process group.
start() {
  local name=$1 log=$2; shift 2
  setsid "$@" >"$log" 2>&1 < /dev/null &
  PIDS+=($!)
  NAMES+=("$name")
  echo "started $name (pid $!), log: $log"
}

# wait_healthy NAME URL LOG PID: polls URL/health until 200; fails with the log tail if the process dies
# or HEALTH_TIMEOUT passes.
wait_healthy() {
  local name=$1 url=$2 log=$3 pid=$4 deadline=$((SECONDS + HEALTH_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if http_ok "$url/health"; then echo "$name is ready at $url"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $name exited during start-up; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "error: $name not healthy after ${HEALTH_TIMEOUT}s; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

# Stops every process started here: SIGTERM to each process group, then SIGKILL after a grace period.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then
    echo "stopping ${NAMES[*]}"
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    local deadline=$((SECONDS + 15))
    for pid in "${PIDS[@]}"; do
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
  fi
  exit $rc
}

# Splits "--bench a b c" off the script's arguments into BENCH (0/1) and BENCH_ARGS.
parse_bench_args() {
  BENCH=0
  BENCH_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --bench) BENCH=1; shift; BENCH_ARGS=("$@"); break ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown argument '$1' (use --bench [tandem bench serve flags])" ;;
    esac
  done
}

# Runs the benchmark against the proxy, or waits for Ctrl+C.
bench_or_wait() {
  local port=$1
  if [ "$BENCH" = 1 ]; then
    local args=("${BENCH_ARGS[@]}")
    [ ${#args[@]} -eq 0 ] && args=(--dataset-name random --random-input-len 128 --random-output-len 32 \
                                   --num-prompts 20 --request-rate 4 --ignore-eos)
    set +e
    "$TANDEM_BIN" bench serve --host 127.0.0.1 --port "$port" --model "$MODEL" "${args[@]}"
    local rc=$?
    set -e
    exit $rc
  fi
  echo "all up; proxy on http://127.0.0.1:$port (Ctrl+C to stop)"
  while true; do
    for i in "${!PIDS[@]}"; do
      kill -0 "${PIDS[$i]}" 2>/dev/null || die "${NAMES[$i]} exited unexpectedly"
    done
    sleep 1
  done
}
