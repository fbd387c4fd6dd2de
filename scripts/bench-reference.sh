#!/usr/bin/env bash
# The reference benchmark (shared/reference/seed-disagg-prefill.txt) with tandem in place of
# vLLM + LMCache + NIXL: Llama-3.1-8B (dummy weights), 30 prompts of 7500 input / 200 output tokens,
# burstiness 100, at each request rate; first through the 1P1D example (proxy on 9100), then against one
# colocated instance. Writes each printed block and JSON result to OUT_DIR.
# Usage: scripts/bench-reference.sh [--model DIR] [--out DIR] [--rates "1 2 4"] [--mps] [--num-prompts N]
#                                   [--skip-colocated] [--skip-1p1d] [--colocated-instances N]
#                                   [--goodput "ttft:500 tpot:10"] [--prefill-env "VAR=VALUE ..."]
#                                   [--decode-env "VAR=VALUE ..."] [--tag NAME]
# --colocated-instances N: the colocated comparison runs N instances (one per GPU where possible) behind
#   `tandem proxy --colocated ... --routing round_robin` instead of a single instance.
# INPUT_LEN / OUTPUT_LEN (env) override 7500 / 200, e.g. for a smoke test on the tiny CPU model.
# --prefill-env / --decode-env: extra environment for the 1P1D instances (e.g. CUDA_MPS_CLIENT_PRIORITY=1 or
#   CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=80 for the prefill instance under MPS); --tag adds NAME to the labels.
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
COLOCATED_N=1
TAG_EXTRA=
BENCH_EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL_DIR=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --mps) MPS=1; shift ;;
    --num-prompts) NUM_PROMPTS=$2; shift 2 ;;
    --skip-colocated) RUN_COLOCATED=0; shift ;;
    --skip-1p1d) RUN_1P1D=0; shift ;;
    --colocated-instances) COLOCATED_N=$2; shift 2 ;;
    --goodput) BENCH_EXTRA+=(--goodput $2); shift 2 ;;
    --prefill-env) export PREFILL_ENV=$2; shift 2 ;;
    --decode-env) export DECODE_ENV=$2; shift 2 ;;
    --tag) TAG_EXTRA=-$2; shift 2 ;;
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
tag=$([ "$MPS" = 1 ] && echo mps || echo nomps)$TAG_EXTRA

# run_colocated RATE LABEL: COLOCATED_N instances that each do both phases (one per GPU when there are
# enough GPUs), behind `tandem proxy --colocated` in round-robin mode when COLOCATED_N > 1; runs the
# benchmark against it and stops everything (in a subshell, so the example helpers' clean-up trap is local).
run_colocated() (
  local rate=$1 label=$2 logs="$OUT_DIR/logs-$2" port=${COLOCATED_PORT:-7300}
  mkdir -p "$logs"
  trap cleanup EXIT INT TERM
  local ngpu; ngpu=$(gpu_count)
  local util; util=$(awk -v n="$COLOCATED_N" -v g="$ngpu" 'BEGIN { per = (g >= n || g == 0) ? 1 : n / g; printf "%.2f", 0.9 / per }')
  local urls=()
  for ((i = 0; i < COLOCATED_N; i++)); do
    local gpu=0; [ "$ngpu" -gt 0 ] && gpu=$((i % ngpu))
    local dev=cuda; [ "$ngpu" -eq 0 ] && dev=cpu
    start "colocated$i" "$logs/colocated$i.log" env DEVICE=$dev GPU=$gpu GPU_MEM_UTIL="$util" \
      "$ROOT/examples/disagg_prefill/disagg_launcher.sh" colocated $((port + i))
    urls+=(--colocated "http://127.0.0.1:$((port + i))")
  done
  for ((i = 0; i < COLOCATED_N; i++)); do
    wait_healthy "colocated$i" "http://127.0.0.1:$((port + i))" "$logs/colocated$i.log" "${PIDS[$i]}" || return 1
  done
  local target=$port
  if [ "$COLOCATED_N" -gt 1 ]; then
    target=$((port + 100))
    start proxy "$logs/proxy.log" "$ROOT/examples/disagg_prefill/disagg_launcher.sh" proxy "$target" \
      --routing round_robin "${urls[@]}"
    wait_healthy proxy "http://127.0.0.1:$target" "$logs/proxy.log" "${PIDS[$COLOCATED_N]}" || return 1
  fi
  # shellcheck disable=SC2046
  "$TANDEM_BIN" bench serve --host 127.0.0.1 --port "$target" --model "$MODEL_DIR" $(bench_flags "$rate" "$label") \
    | tee "$OUT_DIR/$label.txt"
)

bench_flags() {  # bench_flags RATE LABEL (the 1P1D example adds --model itself)
  echo --dataset-name random --random-input-len "${INPUT_LEN:-7500}" --random-output-len "${OUTPUT_LEN:-200}" \
       --num-prompts "$NUM_PROMPTS" --burstiness 100 --request-rate "$1" --ignore-eos --seed 0 \
       --save-result --result-dir "$OUT_DIR" --result-filename "$2.json" --label "$2" --disable-tqdm \
       --percentile-metrics ttft,tpot,itl,e2el ${BENCH_EXTRA[@]+"${BENCH_EXTRA[@]}"}
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
    label="colocated$([ "$COLOCATED_N" -gt 1 ] && echo "x$COLOCATED_N" || true)-$tag-rate$rate"
    echo "== $label"
    run_colocated "$rate" "$label" || echo "colocated run $label failed" >&2
  fi
done
echo "results in $OUT_DIR"
