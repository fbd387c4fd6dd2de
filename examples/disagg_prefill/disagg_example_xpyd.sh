#!/usr/bin/env bash
# X prefill + Y decode instances + the proxy. Prefill instance i listens on PREFILL_PORT+i (7100...),
# decode instance j on DECODE_PORT+j (7200...), the proxy on PROXY_PORT (9100).
# Usage: disagg_example_xpyd.sh [-x X] [-y Y] [--bench [tandem bench serve flags]]   (default 2P2D)
#   MODEL=DIR selects a model directory (without it: the built-in tiny model on CPU). GPUs, when
#   present, are assigned round-robin (prefills first); instances sharing a GPU split its memory.
# Logs: prefiller<i>.log, decoder<j>.log, proxy.log in LOG_DIR. Stops everything on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage() { sed -n '2,8p' "${BASH_SOURCE[0]}"; }
X=2; Y=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -x) X=${2:?}; shift 2 ;;
    -y) Y=${2:?}; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[[ "$X" =~ ^[1-9][0-9]*$ && "$Y" =~ ^[1-9][0-9]*$ ]] || die "-x and -y need positive integers"
parse_bench_args "${args[@]+"${args[@]}"}"
trap cleanup EXIT INT TERM

PREFILL_PORT=${PREFILL_PORT:-7100}
DECODE_PORT=${DECODE_PORT:-7200}
PROXY_PORT=${PROXY_PORT:-9100}
[ -x "$TANDEM_BIN" ] || die "no tandem binary at $TANDEM_BIN"
resolve_model
mkdir -p "$LOG_DIR"
ngpu=$(gpu_count)
total=$((X + Y))

instance_env() {  # instance_env INDEX -> env assignments for the k-th instance
  local k=$1
  if [ "$ngpu" -eq 0 ]; then echo "DEVICE=cpu"; return; fi
  local gpu=$((k % ngpu)) per_gpu=$(( (total + ngpu - 1) / ngpu ))
  local util; util=$(awk -v n="$per_gpu" 'BEGIN { printf "%.2f", 0.9 / n }')
  echo "DEVICE=cuda GPU=$gpu GPU_MEM_UTIL=$util"
}

proxy_args=()
k=0
for ((i = 0; i < X; i++)); do
  # shellcheck disable=SC2046
  start "prefiller$i" "$LOG_DIR/prefiller$i.log" env $(instance_env $k) "$HERE/disagg_launcher.sh" prefiller $((PREFILL_PORT + i))
  proxy_args+=(--prefill "http://127.0.0.1:$((PREFILL_PORT + i))"); k=$((k + 1))
done
for ((j = 0; j < Y; j++)); do
  # shellcheck disable=SC2046
  start "decoder$j" "$LOG_DIR/decoder$j.log" env $(instance_env $k) "$HERE/disagg_launcher.sh" decoder $((DECODE_PORT + j))
  proxy_args+=(--decode "http://127.0.0.1:$((DECODE_PORT + j))"); k=$((k + 1))
done
for ((i = 0; i < X; i++)); do
  wait_healthy "prefiller$i" "http://127.0.0.1:$((PREFILL_PORT + i))" "$LOG_DIR/prefiller$i.log" "${PIDS[$i]}"
done
for ((j = 0; j < Y; j++)); do
  wait_healthy "decoder$j" "http://127.0.0.1:$((DECODE_PORT + j))" "$LOG_DIR/decoder$j.log" "${PIDS[$((X + j))]}"
done
start proxy "$LOG_DIR/proxy.log" "$HERE/disagg_launcher.sh" proxy "$PROXY_PORT" "${proxy_args[@]}"
wait_healthy proxy "http://127.0.0.1:$PROXY_PORT" "$LOG_DIR/proxy.log" "${PIDS[$total]}"
bench_or_wait "$PROXY_PORT"
