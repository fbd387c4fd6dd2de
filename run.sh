#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: the 1P1D disaggregated example with a short
# benchmark (the built-in tiny model on CPU unless MODEL names a model directory; GPUs when present).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
exec scripts/main-job.sh "$@"
