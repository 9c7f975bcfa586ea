"""The docs' pictures of the MLflow UI, taken from a real store with headless Chromium.

    .venv/bin/python scripts/screenshot_mlflow.py [--store sqlite:///mlflow.db] [--out-dir docs] [--pages sweep runs registry]

Starts `mlflow server` on 127.0.0.1 over the store and photographs, with Playwright driving the
system's Chromium (`apt-get install chromium`, `.venv/bin/pip install playwright`: no browser
download):
- sweep:    the metric page of `val/acc` for the newest MLP sweep's children (mlflow-sweep-val-acc.png);
- runs:     the runs view of experiment `cnn`, its summary runs expanded to show the seeds'
            runs with their Dataset and Models columns (mlflow-runs-cnn.png);
- registry: the CNN's registered model (hw4-cnn-<dataset>), its versions and the `champion` alias (mlflow-registry-hw4-cnn.png).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from mlflow.tracking import MlflowClient

METRIC = "val/acc"
FILES = {"sweep": "mlflow-sweep-val-acc.png", "runs": "mlflow-runs-cnn.png", "registry": "mlflow-registry-hw4-cnn.png"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {name!r} in this store: run the pipeline first")
    return experiment.experiment_id


def sweep_page(client: MlflowClient, base: str) -> str:
    """The UI's metric view of the newest sweep parent's children, by hidden size, step on the x axis."""
    ids = [experiment_id(client, "mlp")]
    parents = client.search_runs(ids, "tags.`sweep.role` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit("no sweep parent run (tag sweep.role=parent) in experiment 'mlp'")
    children = client.search_runs(ids, f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    children.sort(key=lambda r: int(r.data.params.get("hidden", 0)))
    run_ids = [r.info.run_id for r in children]
    metric = quote(json.dumps(METRIC), safe="")
    return (f"{base}/#/metric?runs={json.dumps(run_ids)}&metric={metric}&experiments={json.dumps(ids)}"
            f"&plot_metric_keys={quote(json.dumps([METRIC]), safe='')}&plot_layout={{}}&x_axis=step"
            "&y_axis_scale=linear&line_smoothness=1&show_point=true&deselected_curves=[]&last_linear_y_axis_range=[]")


def runs_page(client: MlflowClient, base: str) -> str:
    return f"{base}/#/experiments/{experiment_id(client, 'cnn')}/runs"


def registry_page(client: MlflowClient, base: str) -> str:
    """The CNN's registered model (one per dataset: the demo has hw4-cnn-fashion-mnist alone)."""
    models = client.search_registered_models("name LIKE 'hw4-cnn-%'", order_by=["name"])
    if not models:
        raise SystemExit("no registered CNN model (hw4-cnn-<dataset>) in this store: run the pipeline first")
    return f"{base}/#/models/{models[0].name}"


PAGES = {"sweep": sweep_page, "runs": runs_page, "registry": registry_page}
# The run-name cell's +/- button: the seeds' runs (which log datasets and models) are nested.
EXPAND = "button[data-component-id$='runnamecellrenderer.tsx_46']"


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
    parser.add_argument("--out-dir", type=Path, default=Path("docs"))
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("headless Chromium is needed: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("Playwright is needed: .venv/bin/pip install playwright (it drives the system's Chromium)") from None
    client = MlflowClient(args.store)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = {page: PAGES[page](client, base) for page in args.pages}  # every page found before the server starts
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", args.store, "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"{base}/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for page_name, url in urls.items():
                page = browser.new_page(viewport={"width": 1920, "height": 1000})
                page.goto(url)
                page.wait_for_timeout(6000)  # the UI's requests and rendering
                expand = page.locator(EXPAND) if page_name == "runs" else None
                for i in range(expand.count() if expand else 0):
                    expand.nth(i).click()
                    page.wait_for_timeout(1500)
                out = (args.out_dir / FILES[page_name]).resolve()
                page.screenshot(path=str(out))
                page.close()
                print(f"{out}: {page_name}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
