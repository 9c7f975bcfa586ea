"""Shared fixtures: every test runs in its own directory with its own MLflow store."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, TypeVar

import pytest
import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_only  # importing it sets the process's rank

from hw4.config.allocator import keep_freed_memory
from hw4.config.compose import default_params
from hw4.config.settings import from_dict
from hw4.data.standins import digits as standin_digits

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# Torch's CPU threads in every stage a test runs: results depend on it, and
# scripts/numerics_spread.sh runs the suite's numeric assertions at 1 and 2. Under pytest-xdist
# (scripts/test.sh: a worker per core) one each, so that workers do not fight over the cores.
THREADS = int(os.environ.get("HW4_TEST_THREADS", "1" if "PYTEST_XDIST_WORKER" in os.environ else "2"))
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(THREADS)  # the tests' own tensors too
# The stages a test runs in this process reuse freed memory as `python -m hw4` makes them do
keep_freed_memory()
TEST_TRAINER = {"accelerator": "cpu", "devices": 1, "progress_bar": False, "numerics": "fast", "threads": THREADS}


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """TMPDIR, for this process and every process a test starts, is a folder of pytest's own
    (kept for its last three sessions, as tmp_path is): what the libraries leave in the
    temporary folder (MLflow's model downloads and `db_init_lock-*` files, torch's
    `torchelastic_*` and `torchinductor_*` folders) stays out of /tmp. One short path per
    worker: a Unix socket's path (multiprocessing's) must stay under 108 characters."""
    folder = tmp_path_factory.mktemp("tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(folder))
        mp.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it found first
        yield folder


@pytest.fixture(autouse=True)
def isolated_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a fresh directory that plays the repository root, with SQLite MLflow in it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HW4_ROOT", str(work))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    # mlflow.pyfunc.load_model puts the model's code (a copy of hw4) first on sys.path for good:
    # a later test's subprocess given this sys.path would import that copy.
    monkeypatch.setattr(sys, "path", list(sys.path))
    # Lightning keeps the process's rank in one global that a DDP Trainer sets and never resets:
    # a test that builds a rank-1 Trainer would silence every later test's logger in this worker.
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    return work


def tiny_mnist_family(n_train: int = 600, n_val: int = 200, n_test: int = 200, seed: int = 0) -> dict:
    return standin_digits.generate(n_train, n_val, n_test, seed)


@pytest.fixture
def tiny_prepared(isolated_workdir: Path) -> Path:
    path = isolated_workdir / "data/prepared/mnist_family.pt"
    path.parent.mkdir(parents=True)
    torch.save(tiny_mnist_family(), path)
    return path


@functools.cache
def _conf_defaults() -> str:
    return json.dumps(default_params())


def conf_defaults() -> dict:
    """conf/'s composition (the real profile): the one source of every setting's default."""
    return json.loads(_conf_defaults())


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` merged in, mapping by mapping; any other value replaces."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def conf_values(name: str, **overrides) -> dict:
    """A section of conf/'s defaults with `overrides` merged in."""
    return merged(conf_defaults()[name], overrides)


def conf_section(name: str, cls: type[T], **overrides) -> T:
    """A section's settings, checked: conf/'s defaults with `overrides` merged in."""
    return from_dict(cls, conf_values(name, **overrides), name)


def write_params(path: Path, **sections) -> Path:
    """conf/'s defaults, on the CPU with one seed, with `sections` merged in."""
    import yaml

    params = merged(conf_defaults(), {"seeds": [0], "trainer": TEST_TRAINER})
    path.write_text(yaml.safe_dump(merged(params, sections), sort_keys=False))
    return path


def tiny_mlp_params(**overrides) -> dict:
    mlp = {
        "hidden_sizes": [8, 16, 32],
        "epochs": 2,
        "batch_size": 50,
        "eval_batch_size": 100,
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "lr_decay": 0.9},
    }
    mlp.update(overrides)
    return mlp


def artifact_paths(client, run_id: str, folder: str | None = None) -> set[str]:
    """Every artifact file of a run, with its folders (MLflow lists one level at a time)."""
    paths: set[str] = set()
    for a in client.list_artifacts(run_id, folder):
        paths |= artifact_paths(client, run_id, a.path) if a.is_dir else {a.path}
    return paths
