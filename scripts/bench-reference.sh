#!/usr/bin/env bash
# The reference benchmark (shared/reference/seed-disagg-prefill.txt) with tandem in place of
# vLLM + LMCache + NIXL: Llama-3.1-8B (dummy weights), 30 prompts of 7500 input / 200 output tokens,
# burstiness 100, at each request rate; first through the 1P1D example (proxy on 9100), then against one
# colocated instance. Writes each printed block and JSON result to OUT_DIR.
# Usage: scripts/bench-reference.sh [--model DIR] [--out DIR] [--rates "1 2 4"] [--mps] [--num-prompts N]
#                                   [--skip-colocated] [--skip-1p1d]
# --mps starts the CUDA MPS control daemon for the run (both instances then share the GPU through MPS).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODEL_DIR="$ROOT/../shared/models/llama-3.1-8b"
OUT_DIR="$ROOT/out/bench-reference"
RATES="1"
MPS=0
NUM_PROMPTS=30
RUN_COLOCATED=1
RUN_1P1D=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL_DIR=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --mps) MPS=1; shift ;;
    --num-prompts) NUM_PROMPTS=$2; shift 2 ;;
    --skip-colocated) RUN_COLOCATED=0; shift ;;
    --skip-1p1d) RUN_1P1D=0; shift ;;
    *) echo "bench-reference.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
TANDEM_BIN=${TANDEM_BIN:-$ROOT/build/bin/tandem}
[ -x "$TANDEM_BIN" ] || { echo "no tandem binary at $TANDEM_BIN" >&2; exit 1; }
[ -f "$MODEL_DIR/config.json" ] || { echo "no model directory at $MODEL_DIR (config.json missing)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
export TANDEM_BIN MODEL="$MODEL_DIR" LOAD_FORMAT=dummy
source "$ROOT/examples/disagg_prefill/common.sh"  # http_ok

if [ "$MPS" = 1 ]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/tandem-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/tandem-mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d
  trap 'echo quit | nvidia-cuda-mps-control || true' EXIT
fi
tag=$([ "$MPS" = 1 ] && echo mps || echo nomps)

bench_flags() {  # bench_flags RATE LABEL (the 1P1D example adds --model itself)
  echo --dataset-name random --random-input-len 7500 --random-output-len 200 \
       --num-prompts "$NUM_PROMPTS" --burstiness 100 --request-rate "$1" --ignore-eos --seed 0 \
       --save-result --result-dir "$OUT_DIR" --result-filename "$2.json" --label "$2" --disable-tqdm
}

for rate in $RATES; do
  if [ "$RUN_1P1D" = 1 ]; then
    label="1p1d-$tag-rate$rate"
    echo "== $label"
    # shellcheck disable=SC2046
    LOG_DIR="$OUT_DIR/logs-$label" "$ROOT/examples/disagg_prefill/disagg_example_1p1d.sh" \
      --bench $(bench_flags "$rate" "$label") | tee "$OUT_DIR/$label.txt"
  fi
  if [ "$RUN_COLOCATED" = 1 ]; then
    label="colocated-$tag-rate$rate"
    echo "== $label"
    port=${COLOCATED_PORT:-7300}
    log="$OUT_DIR/colocated-$tag-rate$rate.log"
    setsid "$TANDEM_BIN" serve "$MODEL_DIR" --port "$port" --load-format dummy --gpu-memory-utilization 0.9 \
      >"$log" 2>&1 < /dev/null &
    pid=$!
    ok=0
    for _ in $(seq 1 1200); do
      if http_ok "http://127.0.0.1:$port/health"; then ok=1; break; fi
      kill -0 $pid 2>/dev/null || break
      sleep 0.5
    done
    if [ $ok = 1 ]; then
      # shellcheck disable=SC2046
      "$TANDEM_BIN" bench serve --host 127.0.0.1 --port "$port" --model "$MODEL_DIR" $(bench_flags "$rate" "$label") | tee "$OUT_DIR/$label.txt" || true
    else
      echo "colocated instance failed to start; log tail:" >&2; tail -n 30 "$log" >&2
    fi
    kill -TERM -- -$pid 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- -$pid 2>/dev/null || true
  fi
done
echo "results in $OUT_DIR"
