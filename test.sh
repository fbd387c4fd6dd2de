#!/usr/bin/env bash
# Installs dependencies, builds (warnings as errors) and runs every test: C++ unit/integration tests
# through ctest, then the Python end-to-end tests (real processes on loopback) through pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh -DTANDEM_WERROR=ON -DTANDEM_TESTS=ON
(cd build && ctest --output-on-failure -j "$(nproc)")
if compgen -G "tests/e2e/test_*.py" >/dev/null; then
  TANDEM_BIN="$PWD/build/bin/tandem" .venv/bin/python -m pytest -q tests/e2e
fi
