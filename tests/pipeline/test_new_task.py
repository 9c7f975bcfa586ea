"""Adding a training task takes what the README's recipe says and nothing else: its stage
module, its conf section, its dvc.yaml entries. In a copy of the project, a toy task (a linear
classifier with a number no other task has, `test/error`) is added that way, run with its
seeds summary by `dvc repro`, and found in the report and in `dvc metrics show`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.pipeline.conftest import FASHION_MNIST, DvcRepo
from tests.stages.test_report import SEEDS, write_fixture_outputs

pytestmark = pytest.mark.slow

TOY_STAGE = '''"""A toy task: a linear classifier on the prepared MNIST family."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from hw4.config.seeds import add_seed_argument
from hw4.config.settings import flatten, load_params, section
from hw4.data.loaders.mnist_batches import MnistFamilyData
from hw4.io import paths
from hw4.io.paths import RunFiles
from hw4.training.image_classifier import ImageClassifier
from hw4.training.tracked_fit import Fitted, RunOutputs, Training, tracked_fit
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import TrainerSettings, trainer_and_seed

EXPERIMENT = "toy"
HEADLINE = ("test/error", "test/acc")


@dataclass
class ToySettings:
    names: list[str]
    epochs: int
    optim: OptimSettings


@dataclass
class Settings:
    toy: ToySettings
    trainer: TrainerSettings
    seed: int


def load_settings(params_path: Path, seed: int | None = None) -> Settings:
    params = load_params(params_path)
    return Settings(section(params, "toy", ToySettings), *trainer_and_seed(params, seed))


def run(s: Settings, name: str) -> dict[str, Any]:
    data = MnistFamilyData(paths.MNIST_FAMILY, 500, 5000, seed=s.seed)
    params = flatten({"name": name, "seed": s.seed, "toy": asdict(s.toy), "trainer": asdict(s.trainer)})
    training = Training(EXPERIMENT, f"toy@{name}-{s.seed}", RunFiles(EXPERIMENT, name, s.seed), params, s.seed,
                        s.trainer, s.toy.epochs, data.meta["dataset"], bool(data.meta.get("standin")), HEADLINE, test=True)

    def make_module() -> ImageClassifier:
        return ImageClassifier(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), s.toy.optim, data.mean, data.std)

    def outputs(fitted: Fitted) -> RunOutputs:
        acc = next(r["test/acc"] for r in fitted.module.history if "test/acc" in r)
        rows = [{k: v for k, v in r.items() if not k.startswith("test/")} for r in fitted.module.history]
        return RunOutputs({"test/acc": acc, "test/error": 1 - acc}, rows, {"accuracy": ["train/acc", "val/acc"]},
                          f"toy {name}", fitted.module.net.state_dict())

    return tracked_fit(training, make_module, data, outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 toy")
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    parser.add_argument("--name", required=True)
    add_seed_argument(parser)
    args = parser.parse_args(argv)
    print(run(load_settings(args.params, args.seed), args.name))
'''

TOY_CONF = """
toy:
  names: [linear]
  epochs: 1
  optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0, lr_decay: 1.0}
"""

TRAINING_CODE = ("[src/hw4/__main__.py, src/hw4/cli.py, src/hw4/config, src/hw4/io, src/hw4/tracking, src/hw4/data/loaders, "
                 "src/hw4/models, src/hw4/layers, src/hw4/training, src/hw4/stages/toy.py, data/prepared/mnist_family.pt]")
TOY_DVC = f"""
  toy:
    matrix: {{name: "${{toy.names}}", seed: "${{seeds}}"}}
    cmd: python -m hw4 toy --name ${{item.name}} --seed ${{item.seed}}
    deps: {TRAINING_CODE}
    params: [trainer, toy.epochs, toy.optim]
    outs:
      - models/toy/${{item.name}}/seed${{item.seed}}.pt
      - results/toy/${{item.name}}/seed${{item.seed}}.json: {{cache: false}}
      - metrics/toy/${{item.name}}/seed${{item.seed}}.json: {{cache: false}}
    plots:
      - plots/toy/curves/${{item.name}}/seed${{item.seed}}.csv: {{cache: false}}
      - plots/toy/figures/${{item.name}}/seed${{item.seed}}.png: {{cache: false}}

  toy_seeds:
    matrix: {{name: "${{toy.names}}"}}
    cmd: python -m hw4 seeds toy/${{item.name}}
    deps: [src/hw4/__main__.py, src/hw4/cli.py, src/hw4/config, src/hw4/io, src/hw4/tracking,
           src/hw4/training/numerics.py, src/hw4/stages/seeds.py, "results/toy/${{item.name}}"]
    params: [seeds]
    outs:
      - results/toy/${{item.name}}.json: {{cache: false}}
    metrics:
      - metrics/toy/${{item.name}}.json: {{cache: false}}
"""


def add_toy_task(repo: DvcRepo) -> None:
    """The recipe: the stage module, its conf section, its dvc.yaml entries."""
    (repo.root / "src/hw4/stages/toy.py").write_text(TOY_STAGE)
    with (repo.root / "conf/config.yaml").open("a") as f:
        f.write(TOY_CONF)
    dvc_yaml = (repo.root / "dvc.yaml").read_text()
    stages_end = dvc_yaml.index("\nplots:")
    (repo.root / "dvc.yaml").write_text(dvc_yaml[:stages_end] + TOY_DVC + dvc_yaml[stages_end:])


@pytest.mark.timeout(900)
def test_a_task_added_by_the_recipe_reaches_the_report_and_dvc_metrics(dvc_repo: DvcRepo, monkeypatch: pytest.MonkeyPatch):
    add_toy_task(dvc_repo)
    monkeypatch.setenv("PYTHONPATH", str(dvc_repo.root / "src"))  # the stages run the copy's code, toy.py included
    write_fixture_outputs()  # every homework problem's outputs, as their stages write them
    params = yaml.safe_load((dvc_repo.root / "params.yaml").read_text())
    params |= {
        "toy": yaml.safe_load(TOY_CONF)["toy"],
        "download": params["download"] | {"datasets": ["fashion_mnist"], "generate": [], "mirror_dirs": [FASHION_MNIST]},
        "prepare": {"dataset": "fashion_mnist", "val_size": 5000},
    }
    (dvc_repo.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    ran = DvcRepo.ran(dvc_repo.repro("toy_seeds"))
    assert {f"toy@linear-{k}" for k in SEEDS} | {"toy_seeds@linear"} <= ran
    subprocess.run([sys.executable, "-m", "hw4", "report"], cwd=dvc_repo.root, check=True, capture_output=True)

    summary = json.loads((dvc_repo.root / "results/toy/linear.json").read_text())
    assert summary["seeds"] == SEEDS and 0 < summary["test/error"] < 0.5
    report = (dvc_repo.root / "reports/report.md").read_text()
    section = report[report.index("Task `toy`"):]
    assert "test/error" in section and f"{summary['test/error']:.4f} ± {summary['test/error_std']:.4f}" in section
    metrics = json.loads(dvc_repo.dvc("metrics", "show", "--json"))
    files = next(iter(metrics.values()))["data"]
    assert files["metrics/toy/linear.json"]["data"]["linear"]["test/error"] == pytest.approx(summary["test/error"])
    assert "metrics/toy/linear/seed0.json" not in files  # a seed's headline file: an output, not a DVC metric
    assert (REPO / "src/hw4/stages/toy.py").exists() is False  # the project itself is untouched
