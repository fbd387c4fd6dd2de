#!/usr/bin/env bash
# The main job run by ./run.sh: the 1P1D disaggregated example (prefill instance, decode instance,
# proxy) with a short `tandem bench serve` against the proxy. MODEL=DIR selects a model directory;
# without it the built-in tiny model runs on the CPU. Extra arguments replace the benchmark flags.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOG_DIR=${LOG_DIR:-$PWD/build/logs}
if [ $# -gt 0 ]; then
  exec examples/disagg_prefill/disagg_example_1p1d.sh --bench "$@"
fi
exec examples/disagg_prefill/disagg_example_1p1d.sh --bench --dataset-name random --random-input-len 256 \
  --random-output-len 32 --num-prompts 20 --request-rate 4 --ignore-eos
