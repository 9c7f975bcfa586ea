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
from functools import partial
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hw4.classify import ClassifierJob, train_classifier
from hw4.config import ConfigError, flatten, load_params, section
from hw4.models.classifier import Augment
from hw4.models.tracked_module import OptimSettings
from hw4.models.cnn import CNN, CNNConfig, Impl
from hw4.seeds import add_seed_argument, per_seed
from hw4.tracking import is_global_rank_zero
from hw4.training import EarlyStoppingSettings, TrainerSettings, trainer_and_seed

EXPERIMENT = "cnn"
DATA = Path("data/prepared/mnist_family.pt")
METRICS = Path("metrics/cnn")  # <impl>/seed<k>.json; the full record in results/cnn
FIGURES = Path("plots/cnn/figures")  # <impl>/seed<k>.png, the learning curves


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

    def validate(self, where: str) -> None:
        if not self.impls or len(set(self.impls)) != len(self.impls):
            raise ConfigError(f"params '{where}.impls': list each of torch, scratch at most once, at least one")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"params '{where}': epochs and batch sizes must be at least 1")


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
        build_net=partial(CNN, s.cnn.arch, impl=impl),
        params=flatten({"impl": impl, "seed": s.seed, "cnn": cnn, "trainer": asdict(s.trainer)}),
        data_path=DATA,
        trainer=s.trainer,
        optim=s.cnn.optim,
        epochs=s.cnn.epochs,
        batch_size=s.cnn.batch_size,
        eval_batch_size=s.cnn.eval_batch_size,
        seed=s.seed,
        checkpoint_dir=per_seed(Path("checkpoints/cnn") / impl, s.seed),
        curve_csv=per_seed(Path("plots/cnn/curves") / f"{impl}.csv", s.seed),
        curve_png=per_seed(FIGURES / f"{impl}.png", s.seed),
        weights_path=per_seed(Path("models/cnn") / f"{impl}.pt", s.seed),
        metrics_path=per_seed(METRICS / f"{impl}.json", s.seed),
        extra_metrics={"impl": impl},
        test=True,
        augment=s.cnn.augment,
        early_stopping=s.cnn.early_stopping,
    )
    return train_classifier(job).metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 cnn")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--impl", choices=["torch", "scratch"], required=True)
    add_seed_argument(parser)
    args = parser.parse_args(argv)
    metrics = run(load_settings(args.params, args.seed), args.impl)
    if is_global_rank_zero():
        print({k: v for k, v in metrics.items() if "/" in k or k == "train_time_s"})
