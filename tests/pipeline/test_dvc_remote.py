"""A DVC remote round trip: the pipeline on tiny data, `dvc push`, a fresh clone, `dvc pull`,
and the clone is up to date; the raw downloads travel only when a user adds them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hw4.data.sources.manifest import describe
from tests.pipeline.conftest import BIN, DvcRepo, sh, tiny_mlp_pipeline

pytestmark = pytest.mark.slow
TARGET = "mlp_final_seeds"  # download, prepare, the sweep, the selection and the final run: data, a model, metrics


def _commit(root: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", message, cwd=root)


def _dvc(root: Path, *args: str) -> str:
    return sh(str(BIN / "dvc"), *args, cwd=root, stderr=False)


def _md5s(directory: Path) -> set[str]:
    return {hashlib.md5(p.read_bytes()).hexdigest() for p in directory.rglob("*") if p.is_file()}


def _stored(remote: Path) -> set[str]:
    """The md5s a local DVC remote holds (files/md5/ab/cdef...)."""
    return {p.parent.name + p.name for p in (remote / "files/md5").glob("*/*") if not p.name.endswith(".dir")}


def test_a_clone_that_pulls_from_the_remote_is_up_to_date(dvc_repo: DvcRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    origin = dvc_repo.root
    dvc_repo.write_params(tiny_mlp_pipeline([4], [0]))
    dvc_repo.repro(TARGET)
    remote = tmp_path / "remote"
    _dvc(origin, "remote", "add", "-d", "storage", str(remote))  # the one command (README)
    _commit(origin, "pipeline on tiny data")
    _dvc(origin, "push")

    # What the remote carries: the prepared data and the models, not the raw downloads.
    stored = _stored(remote)
    assert hashlib.md5((origin / "data/prepared/mnist_family.pt").read_bytes()).hexdigest() in stored
    assert hashlib.md5((origin / "models/mlp/final/seed0.pt").read_bytes()).hexdigest() in stored
    assert not _md5s(origin / "data/raw") & stored

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    monkeypatch.setenv("HW4_ROOT", str(clone))
    # The stages this tiny pipeline ran (the others never ran: nothing to pull, and out of date).
    _dvc(clone, "pull", "--with-deps", TARGET)
    assert json.loads(_dvc(clone, "status", "--json", "--with-deps", TARGET)) == {}  # nothing changed, nothing missing
    rerun = sh(str(BIN / "dvc"), "repro", TARGET, cwd=clone)
    assert DvcRepo.ran(rerun) == set() and "Stage 'mlp_final@0' didn't change" in rerun, rerun
    assert json.loads(_dvc(clone, "metrics", "show", "--json")) == json.loads(_dvc(origin, "metrics", "show", "--json"))
    assert (clone / "models/mlp/final/seed0.pt").read_bytes() == (origin / "models/mlp/final/seed0.pt").read_bytes()
    assert not (clone / "data/raw").exists()

    # A user who wants the raw downloads shared too adds them; the clone's are then what the manifest says.
    _dvc(origin, "add", "data/raw")
    _commit(origin, "raw downloads in the remote")
    _dvc(origin, "push")
    sh("git", "pull", "-q", cwd=clone)
    _dvc(clone, "pull", "data/raw.dvc")
    manifest = json.loads((clone / "data/manifests/fashion_mnist.json").read_text())
    assert describe(clone / "data/raw/fashion_mnist") == manifest
    assert json.loads(_dvc(clone, "status", "--json", "--with-deps", TARGET, "data/raw.dvc")) == {}
