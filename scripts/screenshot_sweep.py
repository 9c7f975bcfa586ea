"""The README's picture of the MLflow UI comparing the MLP sweep's children, from a real run.

    .venv/bin/python scripts/screenshot_sweep.py [--store sqlite:///mlflow.db] [--out docs/mlflow-sweep-val-acc.png]

Starts `mlflow server` on 127.0.0.1 over the store, finds the newest sweep parent in the
experiment `mlp` (tag sweep.role=parent) and its children, and photographs the UI's metric
page for `val/acc` of those children with headless Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from mlflow.tracking import MlflowClient

METRIC = "val/acc"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_children(client: MlflowClient) -> tuple[str, list[str]]:
    """(experiment id, the child run ids of the newest sweep parent, ordered by hidden size)."""
    experiment = client.get_experiment_by_name("mlp")
    if experiment is None:
        raise SystemExit("no MLflow experiment 'mlp' in this store: run the pipeline first")
    ids = [experiment.experiment_id]
    parents = client.search_runs(ids, "tags.`sweep.role` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit("no sweep parent run (tag sweep.role=parent) in experiment 'mlp'")
    children = client.search_runs(ids, f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    children.sort(key=lambda r: int(r.data.params.get("hidden", 0)))
    return experiment.experiment_id, [r.info.run_id for r in children]


def metric_page(base: str, experiment_id: str, run_ids: list[str]) -> str:
    """The UI's metric view of several runs, step on the x axis, points shown."""
    metric = quote(json.dumps(METRIC), safe="")
    return (f"{base}/#/metric?runs={json.dumps(run_ids)}&metric={metric}&experiments={json.dumps([experiment_id])}"
            f"&plot_metric_keys={quote(json.dumps([METRIC]), safe='')}&plot_layout={{}}&x_axis=step"
            "&y_axis_scale=linear&line_smoothness=1&show_point=true&deselected_curves=[]&last_linear_y_axis_range=[]")


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow server did not answer at {url}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite:///mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow-sweep-val-acc.png"))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    experiment_id, run_ids = sweep_children(MlflowClient(args.store))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", args.store, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"{base}/health")
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                            "--window-size=1920,1000", "--virtual-time-budget=20000",
                            f"--screenshot={args.out.resolve()}", metric_page(base, experiment_id, run_ids)],
                           check=True, capture_output=True, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{args.out}: {METRIC} of {len(run_ids)} sweep children")


if __name__ == "__main__":
    main()
