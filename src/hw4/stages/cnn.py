"""Problem 3: the CNN on the MNIST family, one run per implementation of its layers.

    python -m hw4 cnn --impl torch      # torch.nn layers
    python -m hw4 cnn --impl scratch    # the hand-derived backward passes of hw4.layers
    python -m hw4 cnn --impl torch --seed 1   # one of params `seeds` (DVC: stage cnn@torch-1)

Both train through the same code with the same settings, so their MLflow runs compare
directly (experiment `cnn`, params `impl` and `seed`); `python -m hw4 seeds cnn/<impl>`
summarises an implementation's seeds.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hw4.config.seeds import add_seed_argument
from hw4.config.settings import ConfigError, flatten, load_params, section
from hw4.io import paths
from hw4.io.paths import RunFiles
from hw4.models.cnn import CNN, CNNConfig, Impl
from hw4.models.nets import NetSpec
from hw4.tracking.runs import is_global_rank_zero
from hw4.training.classifier_job import ClassifierJob, train_classifier
from hw4.training.image_classifier import Augment
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings, TrainerSettings, trainer_and_seed

EXPERIMENT = "cnn"
HEADLINE = ("test/acc",)  # in `dvc exp show` and `dvc metrics show`


@dataclass
class CNNSettings:
    """params.yaml `cnn`. `impls` drives the DVC matrix; each run reads the rest."""

    impls: list[Impl]
    arch: CNNConfig
    epochs: int
    batch_size: int
    eval_batch_size: int
    optim: OptimSettings
    early_stopping: EarlyStoppingSettings
    augment: Augment  # hflip: random horizontal mirroring (Fashion-MNIST, not digits)
    label_smoothing: float  # the training targets' weight spread over the other classes

    def validate(self, where: str) -> None:
        if not self.impls or len(set(self.impls)) != len(self.impls):
            raise ConfigError(f"params '{where}.impls': list each of torch, scratch at most once, at least one")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"params '{where}': epochs and batch sizes must be at least 1")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"params '{where}.label_smoothing': must be in [0, 1), got {self.label_smoothing}")


@dataclass
class Settings:
    cnn: CNNSettings
    trainer: TrainerSettings
    seed: int


def load_settings(params_path: Path, seed: int | None = None) -> Settings:
    params = load_params(params_path)
    return Settings(section(params, "cnn", CNNSettings), *trainer_and_seed(params, seed))


def run(s: Settings, impl: Impl) -> dict[str, Any]:
    if impl not in s.cnn.impls:
        raise ConfigError(f"impl {impl!r} is not in params cnn.impls {s.cnn.impls}")
    cnn = {k: v for k, v in asdict(s.cnn).items() if k != "impls"}
    job = ClassifierJob(
        experiment=EXPERIMENT,
        stage=f"cnn@{impl}-{s.seed}",
        net=NetSpec(CNN, s.cnn.arch, impl),
        params=flatten({"impl": impl, "seed": s.seed, "cnn": cnn, "trainer": asdict(s.trainer)}),
        data_path=paths.MNIST_FAMILY,
        trainer=s.trainer,
        optim=s.cnn.optim,
        epochs=s.cnn.epochs,
        batch_size=s.cnn.batch_size,
        eval_batch_size=s.cnn.eval_batch_size,
        seed=s.seed,
        files=RunFiles(EXPERIMENT, impl, s.seed),
        headline=HEADLINE,
        extra_metrics={"impl": impl},
        test=True,
        augment=s.cnn.augment,
        label_smoothing=s.cnn.label_smoothing,
        early_stopping=s.cnn.early_stopping,
        score="val/acc",  # the last epoch's, whose weights are saved
    )
    return train_classifier(job)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 cnn")
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    parser.add_argument("--impl", choices=["torch", "scratch"], required=True)
    add_seed_argument(parser)
    args = parser.parse_args(argv)
    metrics = run(load_settings(args.params, args.seed), args.impl)
    if is_global_rank_zero():
        print({k: v for k, v in metrics.items() if "/" in k or k == "train_time_s"})
