#!/usr/bin/env bash
# The whole pipeline: `bash scripts/pipeline.sh` (offline demo) or `bash scripts/pipeline.sh real`.
# DVC composes params.yaml from conf/ with the chosen profile and records it in dvc.lock;
# every training stage logs to MLflow (sqlite:///mlflow.db unless MLFLOW_TRACKING_URI is set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
profile=${1:-demo}
shift || true
export PATH="$PWD/.venv/bin:$PATH"   # the stages' `python -m hw4` is the venv's
python -m hw4 pipeline --profile "$profile" "$@"
echo
echo "Done. Results: reports/report.html, 'dvc metrics show', 'dvc plots show'."
echo "MLflow UI:     .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"
