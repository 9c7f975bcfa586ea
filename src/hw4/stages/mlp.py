"""Problem 2: one point of the MLP hidden-size sweep, the selection, and the final run.

    python -m hw4 mlp --hidden 150 --seed 0   # train on train, validate every epoch
    python -m hw4 mlp_select                  # pick the best size from the points' results files
    python -m hw4 mlp_final --seed 0          # retrain the chosen size on train + val, test once

Each point and the final run repeat once per seed of params `seeds` (DVC: `mlp@150-0`,
`mlp_final@0`); `--seed` defaults to the first.
"""

from __future__ import annotations

import argparse
from functools import partial
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hw4.classify import ClassifierJob, train_classifier
from hw4.config import ConfigError, flatten, load_params, section
from hw4.models.mlp import MLP, Impl, MLPConfig
from hw4.models.tracked_module import OptimSettings
from hw4.outputs import read_json, record_path
from hw4.seeds import add_seed_argument, per_seed
from hw4.tracking import is_global_rank_zero
from hw4.training import EarlyStoppingSettings, TrainerSettings, trainer_and_seed

EXPERIMENT = "mlp"
DATA = Path("data/prepared/mnist_family.pt")
POINTS = Path("metrics/mlp/points")  # h<hidden>/seed<k>.json
SELECTION = Path("metrics/mlp/select.json")
FINAL = Path("metrics/mlp/final.json")  # the seeds' summary (stage mlp_final_seeds); final/seed<k>.json each seed


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


@dataclass
class Settings:
    mlp: MLPSettings
    trainer: TrainerSettings
    seed: int


def load_settings(params_path: Path, seed: int | None = None) -> Settings:
    params = load_params(params_path)
    return Settings(section(params, "mlp", MLPSettings), *trainer_and_seed(params, seed))


def _point_params(s: Settings, hidden: int) -> dict[str, Any]:
    """What one run depends on: the training settings and this size, not the sweep list."""
    mlp = {k: v for k, v in asdict(s.mlp).items() if k != "hidden_sizes"}
    return flatten({"hidden": hidden, "seed": s.seed, "mlp": mlp, "trainer": asdict(s.trainer)})


def point_metrics(hidden: int, seed: int) -> Path:
    return per_seed(POINTS / f"h{hidden}.json", seed)


def _job(s: Settings, hidden: int, name: str, stage: str, test: bool, tags: dict[str, str]) -> ClassifierJob:
    """The run of `hidden` units under seed `s.seed`; `name` is h<hidden> (a point) or final."""
    metrics = point_metrics(hidden, s.seed) if name != "final" else per_seed(FINAL, s.seed)
    return ClassifierJob(
        experiment=EXPERIMENT,
        stage=stage,
        build_net=partial(MLP, MLPConfig(hidden=hidden), impl=s.mlp.impl),
        params=_point_params(s, hidden),
        data_path=DATA,
        trainer=s.trainer,
        optim=s.mlp.optim,
        epochs=s.mlp.epochs,
        batch_size=s.mlp.batch_size,
        eval_batch_size=s.mlp.eval_batch_size,
        steps_per_call=s.mlp.steps_per_call,
        seed=s.seed,
        checkpoint_dir=per_seed(Path("checkpoints/mlp") / name, s.seed),
        curve_csv=per_seed(Path("plots/mlp/curves") / f"{name}.csv", s.seed),
        curve_png=per_seed(Path("plots/mlp/figures") / f"{name}.png", s.seed),
        weights_path=per_seed(Path("models/mlp") / f"{name}.pt", s.seed),
        metrics_path=metrics,
        extra_metrics={"hidden": hidden},
        test=test,
        early_stopping=s.mlp.early_stopping,
        tags=tags,
    )


def run_point(s: Settings, hidden: int) -> dict[str, Any]:
    if hidden not in s.mlp.hidden_sizes:
        raise ConfigError(f"hidden size {hidden} is not in params mlp.hidden_sizes {s.mlp.hidden_sizes}")
    job = _job(s, hidden, f"h{hidden}", f"mlp@{hidden}-{s.seed}", test=False, tags={"sweep.role": "point"})
    return train_classifier(job).metrics


def run_final(s: Settings) -> dict[str, Any]:
    chosen = read_json(record_path(SELECTION), "mlp_final")
    tags = {"sweep.role": "final", "sweep.run_id": str(chosen["sweep_run_id"])}
    hidden = int(chosen["hidden"])
    job = replace(
        _job(s, hidden, "final", f"mlp_final@{s.seed}", test=True, tags=tags),
        train_on_val=True,  # the validation split has chosen the size; the retraining learns from it too
        # No validation curve, which plots/mlp/curves draws.
        curve_csv=per_seed(Path("plots/mlp/final.csv"), s.seed),
        extra_metrics={"hidden": hidden, "sweep_run_id": chosen["sweep_run_id"], "val_acc_selected": chosen["val/acc"]},
    )
    return train_classifier(job).metrics


def main(argv: list[str] | None = None, final: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 mlp_final" if final else "python -m hw4 mlp")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    if not final:
        parser.add_argument("--hidden", type=int, required=True, help="hidden units of this sweep point")
    add_seed_argument(parser)
    args = parser.parse_args(argv)
    settings = load_settings(args.params, args.seed)
    metrics = run_final(settings) if final else run_point(settings, args.hidden)
    if is_global_rank_zero():
        print({k: v for k, v in metrics.items() if "/" in k})


def main_final(argv: list[str] | None = None) -> None:
    main(argv, final=True)
