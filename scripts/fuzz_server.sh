#!/usr/bin/env bash
# Long version of the server fuzz test: tests/integration/test_fuzz.py with
# more Hypothesis examples per method (CI runs 100).
# Usage: bash scripts/fuzz_server.sh [EXAMPLES_PER_METHOD] [REPORT_JSON]
# It starts one local server (about 20 s), sends the requests to a decider
# replica's port, and writes the count of calls by method and status code
# to REPORT_JSON (default: fuzz-report.json in the working directory).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export MICROBANDIT_FUZZ_EXAMPLES="${1:-2000}"
export MICROBANDIT_FUZZ_REPORT="$(realpath -m "${2:-fuzz-report.json}")"
exec "$PYTHON" -m pytest -q -p no:cacheprovider tests/integration/test_fuzz.py
