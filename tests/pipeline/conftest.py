"""A throwaway DVC project made from this repository's dvc.yaml, conf/ and src/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hw4.config.compose import compose
from tests.conftest import REPO, tiny_mlp_params

BIN = Path(sys.executable).parent
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # the Debian package's files, the download stage's mirror


def tiny_mlp_pipeline(hidden_sizes: list[int], seeds: list[int]) -> dict:
    """Params overrides for download, prepare and the MLP stages: Fashion-MNIST from the local
    mirror, one epoch of tiny networks, on one CPU thread."""
    return {
        "seeds": seeds,
        "trainer": {"accelerator": "cpu", "devices": 1, "progress_bar": False, "threads": 1},
        "download": {"datasets": ["fashion_mnist"], "generate": [], "mirror_dirs": [FASHION_MNIST], "retries": 0, "timeout_s": 5},
        "prepare": {"dataset": "fashion_mnist", "val_size": 5000},
        "mlp": tiny_mlp_params(hidden_sizes=hidden_sizes, epochs=1, batch_size=500, eval_batch_size=5000),
    }


def venv_env() -> dict[str, str]:
    """A user's shell: this venv's bin first on PATH (DVC runs `dvc` for queue workers and the
    stages' `python` from PATH, which `bash scripts/test.sh` and CI do not activate) and Python
    writing bytecode, its default, whatever the shell running the tests sets."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    # DVC_NO_ANALYTICS: `dvc init` would report itself (a file left in /tmp per repository)
    # before the repository's config can say no.
    return {**env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def sh(*cmd: str, cwd: Path, stderr: bool = True, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=venv_env() | (env or {}), capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout + (result.stderr if stderr else "")


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


class DvcRepo:
    def __init__(self, root: Path):
        self.root = root

    def write_params(self, overrides: dict) -> None:
        """The demo profile's params (every section dvc.yaml interpolates), with `overrides` merged in."""
        params = yaml.safe_load(compose(self.root / "params.yaml", ["profile=demo"]).read_text())
        (self.root / "params.yaml").write_text(yaml.safe_dump(_merge(params, overrides), sort_keys=False))

    def repro(self, *targets: str) -> str:
        return sh(str(BIN / "dvc"), "repro", *targets, cwd=self.root)

    def dvc(self, *args: str) -> str:
        return sh(str(BIN / "dvc"), *args, cwd=self.root, stderr=False)

    @staticmethod
    def ran(output: str) -> set[str]:
        """Stages a `dvc repro` output says it ran."""
        return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture
def dvc_repo(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> DvcRepo:
    """A git+DVC repo in the test's work dir holding copies of dvc.yaml, conf/ and src/."""
    root = isolated_workdir
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    sh("git", "init", "-q", cwd=root)
    sh(str(BIN / "dvc"), "init", "-q", cwd=root)
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    sh(str(BIN / "dvc"), "config", "core.analytics", "false", cwd=root)
    sh(str(BIN / "dvc"), "config", "core.check_update", "false", cwd=root)
    monkeypatch.setenv("HW4_ROOT", str(root))
    return DvcRepo(root)
