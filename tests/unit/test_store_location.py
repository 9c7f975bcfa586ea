"""Where the default tracking store is, and that several processes may open it at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw4.io.paths import home_root, raw_input
from hw4.tracking import runs, sqlite_store


def test_a_queued_experiment_copy_tracks_into_its_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo = tmp_path / "repo"
    copy = repo / ".dvc/tmp/exps/tmpk3x9"  # where `dvc exp run --queue` runs an experiment
    monkeypatch.setenv("HW4_ROOT", str(copy))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert home_root() == repo
    assert runs.tracking_uri() == f"sqlite:///{repo / 'mlflow.db'}"
    monkeypatch.setenv("HW4_ROOT", str(repo / "exps/tmpk3x9"))  # not DVC's copy: its own root
    assert home_root() == repo / "exps/tmpk3x9"


def test_a_queued_experiment_copy_reads_the_repository_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # data/raw is no DVC output, so the copy starts without it and its download stage does not rerun.
    repo = tmp_path / "repo"
    copy = repo / ".dvc/tmp/exps/tmpk3x9"
    (repo / "data/raw/hymenoptera").mkdir(parents=True)
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("HW4_ROOT", str(copy))
    assert raw_input(Path("data/raw/hymenoptera")) == repo / "data/raw/hymenoptera"
    assert raw_input(Path("data/raw/coco2014")) == Path("data/raw/coco2014")  # in neither: the stage says so
    (copy / "data/raw/hymenoptera").mkdir(parents=True)  # downloaded again in the copy (other download params)
    assert raw_input(Path("data/raw/hymenoptera")) == Path("data/raw/hymenoptera")


@pytest.mark.slow
def test_processes_that_open_a_new_store_together_all_succeed(tmp_path: Path):
    """Plain MLflow fails here: each process finds no tables and creates (migrates) them, and
    all but one fail (benchmarks/bench_store_writers.py: 9 of 12 writers)."""
    db = tmp_path / "mlflow.db"
    start_at = time.time() + 6  # past the imports, so that they race to create the tables
    code = (
        "import os, time; os.environ['MLFLOW_TRACKING_URI'] = f'sqlite:///{os.environ[\"DB\"]}'\n"
        "from hw4.tracking import runs\n"
        f"time.sleep(max(0, {start_at} - time.time()))\n"
        "c = runs.client(); c.create_run(c.get_experiment_by_name('Default').experiment_id)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], env={"DB": str(db), "PATH": ""}, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    assert sqlite_store.is_wal(db)
    from mlflow.tracking import MlflowClient

    assert len(MlflowClient(f"sqlite:///{db}").search_runs(["0"])) == 4
