"""Training an image classifier on the prepared MNIST-family data, as one tracked stage run.

Shared by the MLP points, the MLP's final run and the CNN: the stages differ only in the
network they build and the files they write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
from torch import nn

from hw4.data.loaders.mnist_batches import MnistFamilyData
from hw4.io.paths import RunFiles
from hw4.tracking.runs import ResumeState, StageRun, params_hash
from hw4.training.image_classifier import Augment, ImageClassifier
from hw4.training.run_outputs import write_run_outputs
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings, Monitor, TrainerSettings, build_trainer


@dataclass
class ClassifierJob:
    experiment: str
    stage: str  # the DVC stage name, e.g. "mlp@150-0" (hidden size, seed)
    build_net: Callable[[], nn.Module]  # called after seeding, so the initial weights follow the seed
    params: Mapping[str, Any]  # flattened settings, logged as MLflow params
    data_path: Path
    trainer: TrainerSettings
    optim: OptimSettings
    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int
    files: RunFiles  # where its metrics, curves, weights and checkpoints go
    extra_metrics: Mapping[str, Any] = field(default_factory=dict)
    test: bool = False
    augment: Augment = "none"
    tags: Mapping[str, str] = field(default_factory=dict)
    train_on_val: bool = False  # train on train + val, validate on nothing (a final retraining)
    steps_per_call: int = 1  # optimiser steps per training_step (ImageClassifier.training_step)
    curve_csv: Path | None = None  # instead of files.curve_csv
    early_stopping: EarlyStoppingSettings | None = None  # ignored with train_on_val: nothing to monitor


@dataclass
class ClassifierResult:
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    run_id: str | None
    is_global_zero: bool


def train_classifier(job: ClassifierJob) -> ClassifierResult:
    pl.seed_everything(job.seed, workers=True)
    data = MnistFamilyData(job.data_path, job.batch_size, job.eval_batch_size, seed=job.seed,
                           train_on_val=job.train_on_val, steps_per_call=job.steps_per_call)
    standin = bool(data.meta.get("standin", False))
    params = {
        **job.params,
        "data.dataset": data.meta.get("dataset", "unknown"),
        "data.train_splits": "train+val" if job.train_on_val else "train",
        "batch_size_semantics": "global",
    }
    resume = ResumeState(job.files.checkpoints)
    ckpt_path = resume.checkpoint_to_resume(params_hash(params))
    with StageRun(job.experiment, job.stage, params, [job.data_path], standin, resume, job.tags) as run:
        net = job.build_net()
        module = ImageClassifier(net, job.optim, data.mean, data.std, augment=job.augment)
        if job.train_on_val:
            validation = {"limit_val_batches": 0}
        else:
            stopping = job.early_stopping.callbacks() if job.early_stopping else []
            validation = {"best": Monitor("val/acc", "max"), "callbacks": stopping}
        trainer = build_trainer(job.trainer, run, job.epochs, checkpoint_dir=job.files.checkpoints, **validation)
        start = time.perf_counter()
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        train_time = time.perf_counter() - start
        if job.test:
            trainer.test(module, datamodule=data, verbose=False)
        metrics = summarise(module.history, train_time, trainer, data)
        metrics.update(job.extra_metrics, seed=job.seed, run_id=run.run_id, dataset=data.meta.get("dataset", "unknown"), standin=standin,
                       provenance=run.provenance)
        if trainer.is_global_zero:
            _write_outputs(job, run, module, net, metrics)
            run.log_metrics({"train_time_s": train_time})
        return ClassifierResult(metrics, module.history, run.run_id, trainer.is_global_zero)


def summarise(history: list[dict[str, float]], train_time: float, trainer: pl.Trainer, data: MnistFamilyData) -> dict[str, Any]:
    """Last epoch's metrics, the best validation accuracy, and the test metrics if any."""
    fitted = [row for row in history if "train/loss" in row]
    summary: dict[str, Any] = {k: v for k, v in (fitted[-1] if fitted else {}).items() if k != "epoch"}
    summary["epochs"] = trainer.current_epoch
    summary["train_time_s"] = round(train_time, 2)
    # Only the epochs this invocation trained: `train_time` is this invocation's (a resume's part).
    epochs_run = trainer.current_epoch - trainer.lightning_module.first_epoch
    summary["epochs_trained"] = epochs_run
    summary["train_samples_per_s"] = round(epochs_run * len(data.data["train_x"]) / max(train_time, 1e-9))
    for row in history:
        summary.update({k: v for k, v in row.items() if k.startswith("test/")})
    return summary


def _write_outputs(job: ClassifierJob, run: StageRun, module: ImageClassifier, net: nn.Module,
                   metrics: Mapping[str, Any]) -> None:
    rows = [{k: v for k, v in r.items() if not k.startswith("test/")} for r in module.history]
    panels = {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]}
    write_run_outputs(run, job.files, metrics, rows, panels, job.stage, net.state_dict(), job.curve_csv)
