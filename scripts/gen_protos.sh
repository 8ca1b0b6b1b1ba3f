#!/usr/bin/env bash
# Regenerate the Python modules of protos/ from the .proto files.
# Run from anywhere: bash scripts/gen_protos.sh
# The output is committed; tests/unit/test_protos_generated.py checks that it
# matches what this script produces.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m grpc_tools.protoc \
    --proto_path=. \
    --python_out=. \
    --pyi_out=. \
    --grpc_python_out=. \
    protos/microbandit/v1/decision_service.proto
