#!/usr/bin/env bash
# Run the whole test suite: unit tests, then integration tests that start
# the real Ray Serve server on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m pytest tests/unit -q "$@"
.venv/bin/python -m pytest tests/integration -q -m integration "$@"
