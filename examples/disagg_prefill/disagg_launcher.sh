#!/usr/bin/env bash
# Starts ONE tandem process in the foreground (exec), for the example scripts or by hand:
#   disagg_launcher.sh prefiller|decoder|colocated PORT [extra tandem serve flags]
#   disagg_launcher.sh proxy PORT --prefill URL ... --decode URL ... [extra tandem proxy flags]
# Environment: MODEL (model directory, required), TANDEM_BIN (default: build/bin/tandem of this repo),
# DEVICE (cpu|cuda; default cuda when nvidia-smi sees a GPU and the binary has CUDA, else cpu),
# GPU (CUDA device for this instance), GPU_MEM_UTIL (--gpu-memory-utilization), LOAD_FORMAT (auto|dummy),
# SERVE_FLAGS (extra flags for every engine instance).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TANDEM_BIN=${TANDEM_BIN:-$ROOT/build/bin/tandem}

role=${1:?usage: disagg_launcher.sh prefiller|decoder|colocated|proxy PORT [flags]}
port=${2:?missing PORT}
shift 2

if [ "$role" = proxy ]; then
  exec "$TANDEM_BIN" proxy --host 127.0.0.1 --port "$port" "$@"
fi

: "${MODEL:?set MODEL to a model directory}"
engine_flags=(--host 127.0.0.1 --port "$port" --device "${DEVICE:-cpu}")
[ -n "${GPU_MEM_UTIL:-}" ] && engine_flags+=(--gpu-memory-utilization "$GPU_MEM_UTIL")
[ -n "${LOAD_FORMAT:-}" ] && engine_flags+=(--load-format "$LOAD_FORMAT")
[ -n "${GPU:-}" ] && export CUDA_VISIBLE_DEVICES="$GPU"
# shellcheck disable=SC2206
extra=(${SERVE_FLAGS:-})

case "$role" in
  prefiller) exec "$TANDEM_BIN" serve "$MODEL" "${engine_flags[@]}" \
               --kv-transfer-config "$HERE/configs/prefiller.yaml" "${extra[@]}" "$@" ;;
  decoder)   exec "$TANDEM_BIN" serve "$MODEL" "${engine_flags[@]}" \
               --kv-transfer-config "$HERE/configs/decoder.yaml" "${extra[@]}" "$@" ;;
  colocated) exec "$TANDEM_BIN" serve "$MODEL" "${engine_flags[@]}" "${extra[@]}" "$@" ;;
  *) echo "disagg_launcher.sh: unknown role '$role' (prefiller, decoder, colocated or proxy)" >&2; exit 2 ;;
esac
