"""`dvc repro` of both transfer modes on the stand-in, in a temporary git repository."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hw4.compose import compose
from hw4.data import standin_hymenoptera
from tests.conftest import REPO

STAGES = ["transfer@finetune", "transfer@freeze"]


def demo_params_shrunk(work: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The demo profile's params (every key dvc.yaml interpolates), transfer made tiny."""
    monkeypatch.setenv("HW4_ROOT", str(REPO))
    params = yaml.safe_load(compose(work / "params.yaml", ["profile=demo"]).read_text())
    monkeypatch.setenv("HW4_ROOT", str(work))
    params["trainer"].update(accelerator="cpu", devices=1, progress_bar=False)
    params["transfer"].update(pretrained="random", epochs=1, batch_size=4, workers=0, image_size=32)
    return params


def dvc(work: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_dvc_repro_runs_both_modes_on_the_standin(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    work = isolated_workdir
    monkeypatch.setenv("TORCH_HOME", str(work / "no_torch_cache"))
    shutil.copy(REPO / "dvc.yaml", work / "dvc.yaml")
    shutil.copytree(REPO / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (work / "params.yaml").write_text(yaml.safe_dump(demo_params_shrunk(work, monkeypatch), sort_keys=False))
    standin_hymenoptera.generate(work / "data/raw/hymenoptera", seed=0, per_class={"train": 6, "val": 4})
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    dvc(work, "init", "-q")

    # --single-item: the stand-in is in place already, so the download stage upstream stays out.
    dvc(work, "repro", "--single-item", *STAGES)

    for mode in ("finetune", "freeze"):
        metrics = json.loads((work / f"metrics/transfer/{mode}.json").read_text())
        assert metrics["standin"] is True and metrics["weights"] == "random" and metrics["epochs"] == 1
        assert (work / f"models/transfer/{mode}_best.pt").is_file()
    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    assert set(STAGES) <= set(lock)  # the matrix names its stages transfer@<mode>
    assert "didn't change" in dvc(work, "repro", "--single-item", *STAGES)
