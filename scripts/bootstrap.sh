#!/usr/bin/env bash
# Create .venv (if missing) and install microbandit with its development
# extras and the Open Bandit Dataset sample. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.microbandit-installed ] || [ pyproject.toml -nt .venv/.microbandit-installed ]; then
    echo "microbandit: installing into .venv (about a minute the first time)..." >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    # The obp wheel carries the Open Bandit Dataset sample. Its code does not
    # import with current pandas, so it is installed without its dependencies
    # and only its data files are read.
    .venv/bin/python -m pip install --quiet --no-deps "obp==0.4.1"
    touch .venv/.microbandit-installed
    echo "microbandit: installed" >&2
fi
