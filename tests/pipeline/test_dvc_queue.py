"""Queued DVC experiments (`dvc exp run --queue`, `dvc queue start -j 2`): each runs in a copy
under .dvc/tmp/exps/ that DVC deletes afterwards, yet its MLflow runs land in the repository's
store and its data comes from the repository's data/raw."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time

import pytest
from dvc.repo import Repo

from hw4.tracking.runs import client
from tests.pipeline.conftest import BIN, DvcRepo, sh, tiny_mlp_pipeline, venv_env

pytestmark = pytest.mark.slow


SCORES = r"^Experiment$|^\w+\.\w+/\w+(?<!_std)$"  # docs/scaling.md's recipe for the scores alone


def _commit(root) -> None:
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "baseline", cwd=root)


def _start_workers(dvc_repo: DvcRepo, jobs: int) -> None:
    """`dvc queue start`, its output in a file: the workers it forks inherit its stdout, so a
    captured pipe would stay open (and the call blocked) until the last worker exits."""
    with open(dvc_repo.root.parent / "queue-start.log", "w") as log:
        subprocess.run([str(BIN / "dvc"), "queue", "start", "--jobs", str(jobs)], cwd=dvc_repo.root, env=venv_env(),
                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=True)


def _wait_for_queue(dvc_repo: DvcRepo, timeout_s: float) -> list[dict]:
    """The queue's entries once none is queued or running; if it does not get there, what each
    experiment printed and which processes were still up."""
    started = time.monotonic()
    while time.monotonic() < started + timeout_s:
        with Repo(str(dvc_repo.root)) as repo:  # `dvc queue status` has no --json
            entries = repo.experiments.celery_queue.status()
        if entries and all(e["status"] not in ("Queued", "Running") for e in entries):
            return entries
        if time.monotonic() > started + 60 and not _workers_of(dvc_repo):
            break  # nothing left to run what is queued
        time.sleep(5)
    logs = [subprocess.run([str(BIN / "dvc"), "queue", "logs", e["name"] or e["rev"]], cwd=dvc_repo.root,
                           capture_output=True, text=True, timeout=60).stdout[-3000:] for e in entries]
    ps = subprocess.run(["ps", "-eo", "pid,ppid,etime,time,args"], capture_output=True, text=True).stdout
    raise AssertionError(f"the queue did not finish (workers: {len(_workers_of(dvc_repo))}) in {timeout_s} s: {entries}\n" + "\n".join(logs)
                         + "\n" + "\n".join(line for line in ps.splitlines() if "dvc" in line or "hw4" in line))


def _stop_workers(dvc_repo: DvcRepo) -> None:
    """Workers exit ~10 s after the queue empties; a failed test must not leave them running."""
    subprocess.run([str(BIN / "dvc"), "queue", "stop", "--kill"], cwd=dvc_repo.root, capture_output=True, timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not _workers_of(dvc_repo):
            return
        time.sleep(1)


def _workers_of(dvc_repo: DvcRepo) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "dvc" in line and "queue" in line and "worker" in line]


@pytest.mark.timeout(900)
def test_two_queued_experiments_log_into_the_repository_store(dvc_repo: DvcRepo, monkeypatch: pytest.MonkeyPatch):
    # As a user runs it: no HW4_ROOT, no MLFLOW_TRACKING_URI; the store is found from the repository.
    monkeypatch.delenv("HW4_ROOT")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    dvc_repo.write_params(tiny_mlp_pipeline([4], [0]))
    _commit(dvc_repo.root)
    dvc_repo.repro("download")  # the workspace's data/raw holds verified files now

    # No mirror in the experiments: their only source is the workspace's data/raw.
    for hidden in (20, 40):
        dvc_repo.dvc("exp", "run", "--queue", "-n", f"h{hidden}", "-S", f"mlp.hidden_sizes=[{hidden}]",
                     "-S", "download.mirror_dirs=[]", "mlp_select")
    try:
        _start_workers(dvc_repo, jobs=2)
        entries = _wait_for_queue(dvc_repo, 600)
    finally:
        _stop_workers(dvc_repo)
    logs = {name: dvc_repo.dvc("queue", "logs", name) for name in ("h20", "h40")}
    assert {e["name"]: e["status"] for e in entries} == {"h20": "Success", "h40": "Success"}, logs
    for log in logs.values():  # the data came from the workspace, not a mirror or the network
        assert f"<- {dvc_repo.root / 'data/raw/fashion_mnist'}/" in log, log

    shown = json.loads(dvc_repo.dvc("exp", "show", "--json"))
    names = {exp["name"] for rev in shown for exp in rev.get("experiments") or [] if exp.get("name")}
    assert {"h20", "h40"} <= names
    # The comparison docs/scaling.md shows: which experiment, what it changed, what it scored,
    # in a 200-column terminal with no column left out.
    compare = ["exp", "show", "--only-changed", "--drop", r"^[\w-]+/"]  # the recipe: no file-dependency columns
    header = dvc_repo.dvc(*compare, "--csv").splitlines()[0].split(",")
    table = [c for c in header if c not in ("rev", "typ", "parent")]  # the CSV's extras, not the table's columns
    assert {"Experiment", "Created", "mlp.hidden_sizes", "select.hidden", "select.val/acc"} <= set(table) and len(table) <= 30
    assert not any(c.startswith(("data/", "results/", "src/")) for c in table), table
    wide = sh(str(BIN / "dvc"), *compare, "--no-pager", cwd=dvc_repo.root, stderr=False, env={"COLUMNS": "200"})
    assert "…" not in wide and max(map(len, wide.splitlines())) <= 200, wide
    # The scores alone (after the demo, whose profile changes most params): each evaluation's
    # headline numbers with a split in their name, no spreads.
    scores = dvc_repo.dvc("exp", "show", "--drop", ".", "--keep", SCORES, "--csv").splitlines()[0].split(",")
    assert [c for c in scores if c not in ("rev", "typ", "parent")] == ["Experiment", "select.val/acc"], scores

    store = dvc_repo.root / "mlflow.db"
    assert store.is_file(), "the experiments made no tracking store in the repository"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    mlp = client().get_experiment_by_name("mlp")
    runs = client().search_runs([mlp.experiment_id])
    points = {r.data.params.get("hidden"): r for r in runs if r.data.tags.get("dvc.stage", "").startswith("mlp@")}
    assert set(points) == {"20", "40"}
    for hidden, run in points.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc.experiment"] == f"h{hidden}"
        assert run.data.tags["dvc.baseline_rev"] == sh("git", "rev-parse", "HEAD", cwd=dvc_repo.root).strip()
        assert run.info.artifact_uri.startswith((dvc_repo.root / "mlartifacts").as_uri())
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
