#!/usr/bin/env bash
# The main job run by ./run.sh. Until the disaggregated example lands: an offline generation on the
# built-in tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${MODEL:-build/models/tiny}
if [ -z "${MODEL:-}" ] && [ ! -f "$MODEL_DIR/config.json" ]; then
  build/bin/tandem make-model --preset tiny --out "$MODEL_DIR"
fi
exec build/bin/tandem generate --model "$MODEL_DIR" --prompt "The quick brown fox" --max-tokens 32 "$@"
