"""Problem 2: the MLP's hidden-size sweep: its points and the final run.

    python -m hw4 mlp --hidden 150 --seed 0   # train on train, validate every epoch
    python -m hw4 mlp_select                  # pick the best size (hw4.stages.mlp_select)
    python -m hw4 mlp_final --seed 0          # retrain the chosen size on train + val, test once

Each point and the final run repeat once per seed of params `seeds` (DVC: `mlp@150-0`,
`mlp_final@0`); `--seed` defaults to the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hw4.config.settings import ConfigError, flatten
from hw4.io import paths
from hw4.io.outputs import read_json
from hw4.io.paths import RunFiles, per_seed, record_path
from hw4.models.mlp import MLP, Impl, MLPConfig
from hw4.models.nets import NetSpec
from hw4.training.image_classification import ImageClassification, train_classifier
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Training
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings

EXPERIMENT = "mlp"
HEADLINE = ("val/acc", "test/acc")  # in `dvc exp show` and `dvc metrics show`: a point's val/acc, the final run's test/acc
SERVED_BY = "hw4.serving.image_classifier"  # its logged models: images in, classes out


@dataclass
class MLPSettings:
    """params.yaml `mlp`. The sweep list drives the DVC matrix; each point reads the rest."""

    hidden_sizes: list[int]
    impl: Impl
    epochs: int
    batch_size: int
    eval_batch_size: int
    # Optimiser steps per Lightning training_step: a small MLP's step is shorter than Lightning's
    # loop around it, which several steps share (benchmarks/bench_lightning.py); the weights are the same.
    steps_per_call: int
    optim: OptimSettings
    early_stopping: EarlyStoppingSettings  # the sweep's points; the final run trains every epoch

    def validate(self, where: str) -> None:
        if not self.hidden_sizes:
            raise ConfigError(f"params '{where}.hidden_sizes': the sweep is empty; list at least one size")
        bad = [h for h in self.hidden_sizes if h <= 0]
        if bad:
            raise ConfigError(f"params '{where}.hidden_sizes': sizes must be positive, got {bad}")
        if len(set(self.hidden_sizes)) != len(self.hidden_sizes):
            raise ConfigError(f"params '{where}.hidden_sizes': duplicate sizes in {self.hidden_sizes}")
        if min(self.epochs, self.batch_size, self.eval_batch_size, self.steps_per_call) < 1:
            raise ConfigError(f"params '{where}': epochs, batch sizes and steps_per_call must be at least 1")


def _point_params(s: Settings[MLPSettings], hidden: int) -> dict[str, Any]:
    """What one run depends on: the training settings and this size, not the sweep list."""
    mlp = {k: v for k, v in asdict(s.task).items() if k != "hidden_sizes"}
    return flatten({"hidden": hidden, "seed": s.seed, "mlp": mlp, "trainer": asdict(s.trainer)})


def _job(s: Settings[MLPSettings], hidden: int, files: RunFiles, stage: str, test: bool, tags: dict[str, str]) -> Training:
    """The run of `hidden` units under seed `s.seed`, writing `files` (a point's, or the final run's)."""
    return Training(EXPERIMENT, stage, files, _point_params(s, hidden), s.seed, s.trainer, s.task.epochs, HEADLINE,
                    tags=tags, test=test)


def _classification(s: Settings[MLPSettings], hidden: int, **choices: Any) -> ImageClassification:
    return ImageClassification(
        NetSpec(MLP, MLPConfig(hidden=hidden), s.task.impl), SERVED_BY, paths.MNIST_FAMILY, s.task.optim, s.task.batch_size,
        s.task.eval_batch_size, steps_per_call=s.task.steps_per_call, early_stopping=s.task.early_stopping, **choices)


def run_point(s: Settings[MLPSettings], hidden: int) -> dict[str, Any]:
    if hidden not in s.task.hidden_sizes:
        raise ConfigError(f"hidden size {hidden} is not in params mlp.hidden_sizes {s.task.hidden_sizes}")
    job = _job(s, hidden, paths.mlp_point(hidden, s.seed), f"mlp@{hidden}-{s.seed}", test=False, tags={"sweep.role": "point"})
    return train_classifier(job, _classification(s, hidden, extra_metrics={"hidden": hidden}))


def run_final(s: Settings[MLPSettings]) -> dict[str, Any]:
    chosen = read_json(record_path(paths.MLP_SELECTION), "mlp_final")
    tags = {"sweep.role": "final", "sweep.run_id": str(chosen["sweep_run_id"])}
    hidden = int(chosen["hidden"])
    job = _job(s, hidden, RunFiles(EXPERIMENT, "final", s.seed), f"mlp_final@{s.seed}", test=True, tags=tags)
    task = _classification(
        s, hidden,
        train_on_val=True,  # the validation split has chosen the size; the retraining learns from it too
        curve_csv=per_seed(paths.MLP_FINAL_CSV, s.seed),
        extra_metrics={"hidden": hidden, "sweep_run_id": chosen["sweep_run_id"], "val_acc_selected": chosen["val/acc"]},
        score="val_acc_selected",  # the chosen size's mean over seeds: this run trains on val
    )
    return train_classifier(job, task)


STAGE = TrainingStage(EXPERIMENT, MLPSettings, run_point, matrix={"hidden": int}, headline=HEADLINE)
FINAL = TrainingStage(EXPERIMENT, MLPSettings, run_final, matrix={}, headline=HEADLINE, command="mlp_final")
load_settings, main, main_final = STAGE.load_settings, STAGE.main, FINAL.main

