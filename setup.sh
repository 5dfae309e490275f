#!/usr/bin/env bash
# Set up icsim in ./.venv (idempotent). torch 2.13.0 first: on the project's CPU machines pip
# takes a CPU build already on disk; on a GPU machine it takes PyPI's CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
