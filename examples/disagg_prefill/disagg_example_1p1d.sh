#!/usr/bin/env bash
# 1 prefill + 1 decode instance + the proxy, as the vLLM/LMCache example does:
#   decoder on 7200, prefiller on 7100, proxy on 9100 (PREFILL_PORT, DECODE_PORT, PROXY_PORT override);
#   logs prefiller.log, decoder.log, proxy.log in LOG_DIR (default: the current directory).
# Usage: disagg_example_1p1d.sh [--bench [tandem bench serve flags]]
#   MODEL=DIR selects a model directory (without it: the built-in tiny model on CPU).
#   With 2+ GPUs prefill runs on GPU 0 and decode on GPU 1; with one GPU both share it (memory split).
#   On one shared GPU under CUDA MPS the decode instance runs at CUDA_MPS_CLIENT_PRIORITY=1 (below the
#   prefills): decodes barely progress during a long prefill either way, and the prefill then loses less
#   time to them (docs/benchmarks.md); without MPS the variable does nothing.
#   PREFILL_ENV / DECODE_ENV: extra VAR=VALUE assignments (space separated) for that instance's process,
#   applied last (DECODE_ENV="CUDA_MPS_CLIENT_PRIORITY=0" restores equal priorities).
# Runs until Ctrl+C; with --bench runs the benchmark against the proxy, prints its block and exits with
# its status. Every process started here is stopped on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}"; }
parse_bench_args "$@"
trap cleanup EXIT INT TERM

PREFILL_PORT=${PREFILL_PORT:-7100}
DECODE_PORT=${DECODE_PORT:-7200}
PROXY_PORT=${PROXY_PORT:-9100}
[ -x "$TANDEM_BIN" ] || die "no tandem binary at $TANDEM_BIN (run ./run.sh or scripts/build.sh)"
resolve_model
mkdir -p "$LOG_DIR"

ngpu=$(gpu_count)
if [ "$ngpu" -ge 2 ]; then
  P_ENV=(DEVICE=cuda GPU=0); D_ENV=(DEVICE=cuda GPU=1)
elif [ "$ngpu" -eq 1 ]; then
  # Both instances share GPU 0: split its memory (weights + KV of each must fit).
  P_ENV=(DEVICE=cuda GPU=0 GPU_MEM_UTIL=${PREFILL_GPU_MEM_UTIL:-0.45})
  D_ENV=(DEVICE=cuda GPU=0 GPU_MEM_UTIL=${DECODE_GPU_MEM_UTIL:-0.45} CUDA_MPS_CLIENT_PRIORITY=1)
else
  P_ENV=(DEVICE=cpu); D_ENV=(DEVICE=cpu)
fi

# shellcheck disable=SC2206
P_ENV+=(${PREFILL_ENV:-}); D_ENV+=(${DECODE_ENV:-})
start decoder "$LOG_DIR/decoder.log" env "${D_ENV[@]}" "$HERE/disagg_launcher.sh" decoder "$DECODE_PORT"
start prefiller "$LOG_DIR/prefiller.log" env "${P_ENV[@]}" "$HERE/disagg_launcher.sh" prefiller "$PREFILL_PORT"
wait_healthy decoder "http://127.0.0.1:$DECODE_PORT" "$LOG_DIR/decoder.log" "${PIDS[0]}"
wait_healthy prefiller "http://127.0.0.1:$PREFILL_PORT" "$LOG_DIR/prefiller.log" "${PIDS[1]}"
start proxy "$LOG_DIR/proxy.log" "$HERE/disagg_launcher.sh" proxy "$PROXY_PORT" \
  --prefill "http://127.0.0.1:$PREFILL_PORT" --decode "http://127.0.0.1:$DECODE_PORT"
wait_healthy proxy "http://127.0.0.1:$PROXY_PORT" "$LOG_DIR/proxy.log" "${PIDS[2]}"
bench_or_wait "$PROXY_PORT"
