#!/usr/bin/env bash
# Acceptance check of the CUDA backend against HF transformers at Llama-3.1-8B shape (GPU machine only):
#   1. tools/make_llama8b_reference.py writes a random bf16 checkpoint (save_pretrained, sharded
#      safetensors) and HF reference logits into REF_DIR (skipped when REF_DIR/reference/manifest.json
#      exists already; a partial REF_DIR is regenerated);
#   2. TANDEM_HF_REF_DIR=REF_DIR <build>/bin/test_cuda --gtest_filter='HfReference*' loads it with tandem's
#      loader on the CUDA backend and compares teacher-forced logits (cosine >= 0.999, top-1 >= 98%) and
#      prints the load throughput.
# Usage (from the repo root, after building with CUDA): scripts/gpu-8b-check.sh [BUILD_DIR] [MODEL_DIR]
#   BUILD_DIR  default build-gpu
#   MODEL_DIR  a Llama-3.1-8B directory (config.json + tokenizer files; weights not needed); default
#              ../shared/models/llama-3.1-8b or shared/models/llama-3.1-8b
# Env: REF_DIR (default /tmp/llama8b-ref), PYTHON (default python3), SEED (default 0),
#      OUT: when set, logs (and the reference manifest) are written there.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR=${1:-build-gpu}
MODEL_DIR=${2:-}
if [ -z "$MODEL_DIR" ]; then
  for d in "$ROOT/../shared/models/llama-3.1-8b" "$ROOT/shared/models/llama-3.1-8b"; do
    if [ -f "$d/config.json" ]; then MODEL_DIR=$d; break; fi
  done
fi
REF_DIR=${REF_DIR:-/tmp/llama8b-ref}
PYTHON=${PYTHON:-python3}
SEED=${SEED:-0}
LOG_DIR=${OUT:-$ROOT/out/gpu-8b-check}
mkdir -p "$LOG_DIR"

TEST_BIN="$BUILD_DIR/bin/test_cuda"
if [ ! -x "$TEST_BIN" ]; then
  echo "gpu-8b-check: $TEST_BIN not found; build first (cmake -B $BUILD_DIR -DTANDEM_CUDA=ON && cmake --build $BUILD_DIR --target test_cuda)" >&2
  exit 2
fi
if [ ! -f "$REF_DIR/reference/manifest.json" ]; then
  if [ -z "$MODEL_DIR" ] || [ ! -f "$MODEL_DIR/config.json" ]; then
    echo "gpu-8b-check: no model directory with config.json (pass it as the second argument)" >&2
    exit 2
  fi
  echo "gpu-8b-check: writing the HF reference into $REF_DIR (log: $LOG_DIR/make_reference.log)"
  "$PYTHON" "$ROOT/tools/make_llama8b_reference.py" --config-dir "$MODEL_DIR" --out "$REF_DIR" --seed "$SEED" --force \
    2>&1 | tee "$LOG_DIR/make_reference.log"
else
  echo "gpu-8b-check: reusing the reference in $REF_DIR"
fi
cp "$REF_DIR/reference/manifest.json" "$LOG_DIR/reference_manifest.json"

echo "gpu-8b-check: running $TEST_BIN --gtest_filter='HfReference*' (log: $LOG_DIR/hf_reference_test.log)"
rc=0
TANDEM_HF_REF_DIR="$REF_DIR" "$TEST_BIN" --gtest_filter='HfReference*' 2>&1 | tee "$LOG_DIR/hf_reference_test.log" || rc=$?
if grep -q "\[  SKIPPED \]" "$LOG_DIR/hf_reference_test.log"; then
  echo "gpu-8b-check: the test was SKIPPED (see the log): this is not a pass" >&2
  [ "$rc" -eq 0 ] && rc=3
fi
echo "gpu-8b-check: exit $rc"
exit "$rc"
