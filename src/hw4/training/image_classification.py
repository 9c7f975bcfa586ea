"""Training an image classifier on the prepared MNIST-family data, as one tracked fit.

Shared by the MLP points, the MLP's final run and the CNN: the stages differ only in the
network they build and the files they write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from hw4.data.loaders.mnist_batches import MnistFamilyData
from hw4.io.checksums import arrays_sha256
from hw4.models.nets import NetSpec
from hw4.tracking.logged_models import ModelToLog
from hw4.tracking.runs import DatasetRef
from hw4.training.image_classifier import Augment, ImageClassifier
from hw4.training.run_outputs import RunOutputs
from hw4.training.tracked_fit import Fitted, Training, tracked_fit
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings, Monitor


@dataclass
class ImageClassification:
    """What an image classifier's run adds to its `Training`: the network, its data and how it learns."""

    net: NetSpec  # built after seeding, so the initial weights follow the seed
    flavor: str  # the hw4.serving module its logged model runs (ModelToLog.flavor): the stage names it
    data_path: Path
    optim: OptimSettings
    batch_size: int
    eval_batch_size: int
    extra_metrics: Mapping[str, Any] = field(default_factory=dict)  # into the record
    augment: Augment = "none"
    label_smoothing: float = 0.0  # of the training loss's targets
    train_on_val: bool = False  # train on train + val, validate on nothing (a final retraining)
    steps_per_call: int = 1  # optimiser steps per training_step (ImageClassifier.training_step)
    curve_csv: Path | None = None  # instead of files.curve_csv
    early_stopping: EarlyStoppingSettings | None = None  # ignored with train_on_val: nothing to monitor
    # An evaluation run's: the record's validation score its registered model is ranked by
    # (hw4.tracking.logged_models); None: the model is logged, not registered.
    score: str | None = None


def train_classifier(job: Training, task: ImageClassification) -> dict[str, Any]:
    """`job` with what the data says of itself (data set, stand-in, splits) and what the task
    validates on; the run's record on rank 0 (its metrics, for later stages and the report), {} elsewhere."""
    data = MnistFamilyData(task.data_path, task.batch_size, task.eval_batch_size, seed=job.seed,
                           train_on_val=task.train_on_val, steps_per_call=task.steps_per_call)
    dataset = data.meta.get("dataset", "unknown")
    params = {
        **job.params,
        "data.dataset": dataset,
        "data.train_splits": "train+val" if task.train_on_val else "train",
        "batch_size_semantics": "global",
    }
    if task.train_on_val:
        validation: dict[str, Any] = {"trainer_options": {"limit_val_batches": 0}}
    else:
        stopping = task.early_stopping.callbacks() if task.early_stopping else []
        validation = {"best": Monitor("val/acc", "max"), "callbacks": stopping}
    job = replace(job, params=params, dataset=dataset, standin=bool(data.meta.get("standin", False)),
                  data_files=[task.data_path], datasets=inputs(data, task, job.test, dataset), **validation)

    def make_module() -> ImageClassifier:
        return ImageClassifier(task.net.build(), task.optim, data.mean, data.std, augment=task.augment,
                               label_smoothing=task.label_smoothing)

    def outputs(fitted: Fitted) -> RunOutputs:
        history = fitted.module.history
        rows = [{k: v for k, v in r.items() if not k.startswith("test/")} for r in history]
        record = epoch_summary(history, fitted, len(data.data["train_x"])) | dict(task.extra_metrics)
        return RunOutputs(
            record=record,
            rows=rows, panels={"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]},
            title=job.stage, weights=fitted.module.net.state_dict(), curve_csv=task.curve_csv,
            model=logged_model(job, task, data, record),
        )

    return tracked_fit(job, make_module, data, outputs)


def inputs(data: MnistFamilyData, task: ImageClassification, test: bool, dataset: str) -> list[DatasetRef]:
    """The splits the run learns from, validates and tests on, each named and digested by its
    content (in a final run the training split is train + val). Read before `setup`: on the CPU."""
    used = [("train", "train+val" if task.train_on_val else "train", "train")]  # (split, name, context)
    if not task.train_on_val:
        used.append(("val", "val", "validation"))
    if test:
        used.append(("test", "test", "test"))
    return [DatasetRef(f"{dataset}/{name}", arrays_sha256(data.data[f"{split}_x"], data.data[f"{split}_y"])[:32],
                       f"{task.data_path}#{name}", context) for split, name, context in used]


def logged_model(job: Training, task: ImageClassification, data: MnistFamilyData, record: Mapping[str, Any]) -> ModelToLog:
    """The network as an MLflow Model that takes images (hw4.serving.image_classifier)."""
    spec = {"net": task.net.to_json(), "mean": data.mean, "std": data.std,
            "classes": list(data.meta.get("classes", range(task.net.config.num_classes))),
            "dataset": data.meta.get("dataset", "unknown")}
    return ModelToLog(
        flavor=task.flavor, files={"weights": job.files.weights}, specs={"spec": spec},
        example=data.data["test_x"][:2].cpu().numpy(),
        task=job.experiment if task.score else None,
        score=record.get(task.score) if task.score else None, score_name=task.score or "",
    )


def epoch_summary(history: list[dict[str, float]], fitted: Fitted, train_samples: int) -> dict[str, Any]:
    """Last epoch's metrics, the best validation accuracy, and the test metrics if any."""
    fitted_rows = [row for row in history if "train/loss" in row]
    summary: dict[str, Any] = {k: v for k, v in (fitted_rows[-1] if fitted_rows else {}).items() if k != "epoch"}
    summary["epochs"] = fitted.trainer.current_epoch
    summary["epochs_trained"] = fitted.epochs_run
    summary["train_samples_per_s"] = fitted.samples_per_s(train_samples)
    for row in history:
        summary.update({k: v for k, v in row.items() if k.startswith("test/")})
    return summary
