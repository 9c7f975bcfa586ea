#!/usr/bin/env bash
# The whole test suite, slow tests included (plain `pytest` runs only the fast ones).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One pytest worker per core (pytest-xdist); work stealing keeps both busy to the end, when
# the long pipeline tests would otherwise leave one idle.
exec .venv/bin/python -m pytest -m "not gpu" -n auto --dist worksteal "$@"
