#!/usr/bin/env bash
# The whole test suite, slow tests included (plain `pytest` runs only the fast ones).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -m "not gpu" "$@"
