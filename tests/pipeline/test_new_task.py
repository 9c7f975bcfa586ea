"""Adding a training task takes what the README's recipe says and nothing else: its stage
module, its conf section and the demo's, its dvc.yaml and MLproject entries. In a copy of the
project, a toy task (a linear classifier with a number no other task has, `test/error`) is
added that way, passes the project's own checks (deps, MLproject, layout, both profiles),
composes into params.yaml, runs with its seeds summary by `dvc repro`, and is found in the
report and in `dvc metrics show`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline.conftest import FASHION_MNIST, DvcRepo
from tests.stages.test_report import SEEDS, write_fixture_outputs

pytestmark = pytest.mark.slow

TOY_STAGE = '''"""A toy task: a linear classifier on the prepared MNIST family."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from hw4.config.settings import flatten
from hw4.data.loaders.mnist_batches import MnistFamilyData
from hw4.io import paths
from hw4.io.paths import RunFiles
from hw4.training.image_classifier import ImageClassifier
from hw4.training.run_outputs import RunOutputs
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Fitted, Training, tracked_fit
from hw4.training.tracked_module import OptimSettings

EXPERIMENT = "toy"
HEADLINE = ("test/error", "test/acc")


@dataclass
class ToySettings:
    names: list[str]
    epochs: int
    optim: OptimSettings


def run(s: Settings[ToySettings], name: str) -> dict[str, Any]:
    data = MnistFamilyData(paths.MNIST_FAMILY, 500, 5000, seed=s.seed)
    params = flatten({"name": name, "seed": s.seed, "toy": asdict(s.task), "trainer": asdict(s.trainer)})
    job = Training(EXPERIMENT, f"toy@{name}-{s.seed}", RunFiles(EXPERIMENT, name, s.seed), params, s.seed,
                   s.trainer, s.task.epochs, HEADLINE, dataset=data.meta["dataset"],
                   standin=bool(data.meta.get("standin")), test=True)

    def make_module() -> ImageClassifier:
        return ImageClassifier(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), s.task.optim, data.mean, data.std)

    def outputs(fitted: Fitted) -> RunOutputs:
        acc = next(r["test/acc"] for r in fitted.module.history if "test/acc" in r)
        rows = [{k: v for k, v in r.items() if not k.startswith("test/")} for r in fitted.module.history]
        return RunOutputs({"test/acc": acc, "test/error": 1 - acc}, rows, {"accuracy": ["train/acc", "val/acc"]},
                          f"toy {name}", fitted.module.net.state_dict())

    return tracked_fit(job, make_module, data, outputs)


STAGE = TrainingStage(EXPERIMENT, ToySettings, run, matrix={"name": str}, headline=HEADLINE)
load_settings, main = STAGE.load_settings, STAGE.main
'''

TOY_CONF = """
toy:
  names: [linear]
  epochs: 3
  optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0, lr_decay: 1.0}
"""
TOY_DEMO = """
toy:
  epochs: 1
"""

# The house style: the prefix every stage shares, then the modules the stage's command imports
# (tests/unit/test_dvc_deps.py names any missing or unused), then its data.
TOY_DVC = """
  toy:
    matrix: {name: "${toy.names}", seed: "${seeds}"}
    cmd: python -m hw4 toy --name ${item.name} --seed ${item.seed}
    deps: [src/hw4/__main__.py, src/hw4/cli.py, src/hw4/config, src/hw4/io, src/hw4/tracking,
           src/hw4/data/loaders/batches.py, src/hw4/data/loaders/mnist_batches.py, src/hw4/stages/toy.py,
           src/hw4/training/checkpoint_io.py, src/hw4/training/image_classifier.py,
           src/hw4/training/preemption.py, src/hw4/training/run_outputs.py, src/hw4/training/stage.py,
           src/hw4/training/tracked_fit.py, src/hw4/training/tracked_module.py, src/hw4/training/trainer.py,
           data/prepared/mnist_family.pt]
    params: [trainer, toy.epochs, toy.optim]
    outs:
      - models/toy/${item.name}/seed${item.seed}.pt
      - results/toy/${item.name}/seed${item.seed}.json: {cache: false}
      - metrics/toy/${item.name}/seed${item.seed}.json: {cache: false}
    plots:
      - plots/toy/curves/${item.name}/seed${item.seed}.csv: {cache: false}
      - plots/toy/figures/${item.name}/seed${item.seed}.png: {cache: false}

  toy_seeds:
    matrix: {name: "${toy.names}"}
    cmd: python -m hw4 seeds toy/${item.name}
    deps: [src/hw4/__main__.py, src/hw4/cli.py, src/hw4/config, src/hw4/io, src/hw4/tracking,
           src/hw4/stages/seeds.py, "results/toy/${item.name}"]
    params: [seeds]
    outs:
      - results/toy/${item.name}.json: {cache: false}
    metrics:
      - metrics/toy/${item.name}.json: {cache: false}
"""

TOY_MLPROJECT = """
  toy:
    parameters:
      name: {type: string}
      seed: {type: string}
      params: {type: string, default: params.yaml}
    command: "python -m hw4 toy --name {name} --seed {seed} --params {params}"

  toy_seeds:
    parameters:
      name: {type: string}
      params: {type: string, default: params.yaml}
    command: "python -m hw4 seeds toy/{name} --params {params}"
"""

# The project's own checks of a stage, run on the copy: its deps, its MLproject entry, its
# imports, its settings under both profiles.
CHECKS = ["tests/unit/test_dvc_deps.py", "tests/unit/test_mlproject.py", "tests/unit/test_layout.py",
          "tests/unit/test_profiles_load.py"]


RECIPE_FILES = ("src/hw4/stages/toy.py", "conf/config.yaml", "conf/profile/demo.yaml", "dvc.yaml", "MLproject")


def _contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts}


def add_toy_task(root: Path) -> None:
    """The README's recipe, step by step: the files it names and nothing else."""
    (root / "src/hw4/stages/toy.py").write_text(TOY_STAGE)  # 1. the stage module
    with (root / "conf/config.yaml").open("a") as f:  # 2. its conf section and the demo's
        f.write(TOY_CONF)
    with (root / "conf/profile/demo.yaml").open("a") as f:
        f.write(TOY_DEMO)
    dvc_yaml = (root / "dvc.yaml").read_text()  # 3. its dvc.yaml entries, before the report
    at = dvc_yaml.index("\n  report:")
    (root / "dvc.yaml").write_text(dvc_yaml[:at] + TOY_DVC + dvc_yaml[at:])
    with (root / "MLproject").open("a") as f:  # 4. its MLproject entries
        f.write(TOY_MLPROJECT)


@pytest.mark.timeout(900)
def test_a_task_added_by_the_recipe_passes_the_checks_and_reaches_the_report_and_dvc_metrics(
        dvc_repo: DvcRepo, monkeypatch: pytest.MonkeyPatch):
    root = dvc_repo.root
    for name in ("MLproject", "pyproject.toml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "tests", root / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    before = _contents(root)
    add_toy_task(root)
    after = _contents(root)
    assert {p for p in after if after[p] != before.get(p)} == set(RECIPE_FILES)

    monkeypatch.setenv("PYTHONPATH", f"{root / 'src'}{os.pathsep}{root}")  # the copy's code and tests, toy.py included
    checks = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=", *CHECKS],
                            cwd=root, capture_output=True, text=True)
    assert checks.returncode == 0, checks.stdout[-4000:]
    for check in ("test_a_stage_depends_on_exactly_the_code_it_runs[toy]", "test_a_stage_depends_on_exactly_the_code_it_runs[toy_seeds]",
                  "test_a_training_stage_reruns_for_every_setting_it_reads[toy]", "test_imports_go_one_way[stages/toy.py]"):
        assert f"{check} PASSED" in checks.stdout, check

    write_fixture_outputs()  # every homework problem's outputs, as their stages write them (and a params.yaml)
    subprocess.run([sys.executable, "-m", "hw4", "compose", "profile=demo", f"seeds=[{','.join(map(str, SEEDS))}]",
                    "download.datasets=[fashion_mnist]", "download.generate=[]", f"download.mirror_dirs=[{FASHION_MNIST}]",
                    "prepare.dataset=fashion_mnist", "prepare.val_size=5000", "trainer.threads=1"],
                   cwd=root, check=True, capture_output=True)
    assert yaml.safe_load((root / "params.yaml").read_text())["toy"]["epochs"] == 1  # the demo's

    ran = DvcRepo.ran(dvc_repo.repro("toy_seeds"))
    assert {f"toy@linear-{k}" for k in SEEDS} | {"toy_seeds@linear"} <= ran
    subprocess.run([sys.executable, "-m", "hw4", "report"], cwd=root, check=True, capture_output=True)

    summary = json.loads((root / "results/toy/linear.json").read_text())
    assert summary["seeds"] == SEEDS and 0 < summary["test/error"] < 0.5
    report = (root / "reports/report.md").read_text()
    section = report[report.index("Task `toy`"):]
    assert "test/error" in section and f"{summary['test/error']:.4f} ± {summary['test/error_std']:.4f}" in section
    metrics = json.loads(dvc_repo.dvc("metrics", "show", "--json"))
    files = next(iter(metrics.values()))["data"]
    assert files["metrics/toy/linear.json"]["data"]["linear"]["test/error"] == pytest.approx(summary["test/error"])
    assert "metrics/toy/linear/seed0.json" not in files  # a seed's headline file: an output, not a DVC metric
    assert (REPO / "src/hw4/stages/toy.py").exists() is False  # the project itself is untouched
