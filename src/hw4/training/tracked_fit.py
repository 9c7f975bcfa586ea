"""The one tracked fit: every Lightning training of the project runs through here.

`tracked_fit` is one training as one stage run: resume from the run's last checkpoint into
the same MLflow run, the `StageRun`, seeding, the Trainer, the timed fit (and test), the
record every results file carries (seed, run id, dataset, stand-in, provenance, time) and, on
rank 0 only, the run's files (`write_run_outputs`). A stage passes its names and settings
(`Training`), a factory for its LightningModule, its data, and what to make of the fitted
module (`RunOutputs`). `fit` is the Trainer part alone, for a training inside a run that
something else opened (the caption-word pretraining of `preprocess_coco`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from hw4.io.paths import RunFiles
from hw4.tracking.logged_models import log_model
from hw4.tracking.runs import DatasetRef, ResumeState, StageRun, params_hash
from hw4.training.checkpoint_io import checkpoint_to_resume
from hw4.training.preemption import preempted
from hw4.training.run_outputs import RunOutputs, write_run_outputs
from hw4.training.tracked_module import TrackedModule
from hw4.training.trainer import Monitor, TrainerSettings, build_trainer


@dataclass
class Training:
    """One training run: its names, what it depends on, and how the Trainer runs it."""

    experiment: str  # the MLflow experiment: the task (mlp, cnn, captioning, transfer)
    stage: str  # the DVC stage name, e.g. "mlp@150-0" (hidden size, seed): the run's `dvc.stage`
    files: RunFiles  # where its checkpoints, record, curves and weights go
    params: Mapping[str, Any]  # flattened settings: the run's MLflow params, and what a resume must match
    seed: int
    trainer: TrainerSettings
    epochs: int
    headline: Sequence[str]  # the task's numbers in `dvc exp show` (hw4.io.outputs.write_results)
    dataset: str = "unknown"  # the registered model's name carries it: hw4-<task>-<dataset>
    standin: bool = False  # trained on generated data (hw4.data.standins)
    data_files: Sequence[Path] = ()  # their sha256s become tags
    tags: Mapping[str, str] = field(default_factory=dict)
    run_name: str | None = None
    best: Monitor | None = None  # kept as best.ckpt
    callbacks: Sequence[Callback] = ()
    test: bool = False  # `trainer.test` after the fit
    trainer_options: Mapping[str, Any] = field(default_factory=dict)  # further pl.Trainer arguments
    datasets: Sequence[DatasetRef] = ()  # logged as the run's inputs (the MLflow UI's Dataset column)


@dataclass
class Fitted:
    """What a stage turns into its outputs, on rank 0, once the fit (and test) is done."""

    run: StageRun
    module: TrackedModule
    trainer: pl.Trainer
    train_time_s: float  # this invocation's: a resumed run's part

    @property
    def epochs_run(self) -> int:
        """The epochs this invocation trained (a resumed run's part, as `train_time_s`)."""
        return self.trainer.current_epoch - self.module.first_epoch

    def samples_per_s(self, samples_per_epoch: int) -> int:
        return round(self.epochs_run * samples_per_epoch / max(self.train_time_s, 1e-9))


def tracked_fit(
    job: Training,
    make_module: Callable[[], TrackedModule],
    data: pl.LightningDataModule,
    outputs: Callable[[Fitted], RunOutputs],
) -> dict[str, Any]:
    """Train `make_module()` on `data` as one MLflow run; on rank 0 write the run's files and
    return its record (on every other rank: {})."""
    resume = ResumeState(job.files.checkpoints)
    ckpt_path = checkpoint_to_resume(resume, params_hash(job.params), make_module)
    with StageRun(job.experiment, job.stage, job.params, job.data_files, job.standin, resume, job.tags, job.run_name) as run:
        run.log_datasets(job.datasets)
        pl.seed_everything(job.seed, workers=True)  # the initial weights follow the seed
        module = make_module()
        trainer = build_trainer(job.trainer, run, job.epochs, checkpoint_dir=job.files.checkpoints, best=job.best,
                                callbacks=job.callbacks, **job.trainer_options)
        with run.system_metrics(job.trainer.system_metrics_s):
            reset_gpu_peak_memory()
            train_time = fit(trainer, module, data, ckpt_path)
            if job.test:
                trainer.test(module, datamodule=data, verbose=False)
        if not trainer.is_global_zero:
            return {}
        memory = gpu_peak_memory(trainer)
        out = outputs(Fitted(run, module, trainer, train_time))
        record = out.record | memory | {
            "train_time_s": round(train_time, 2), "seed": job.seed, "run_id": run.run_id, "dataset": job.dataset,
            "standin": job.standin, "provenance": run.provenance, "headline": list(job.headline),
        }
        write_run_outputs(run, job.files, record, out)
        run.log_metrics({**out.logged, **memory, "train_time_s": train_time}, step=out.logged_step)
        if out.model is not None and run.active:
            tags = {"seed": str(job.seed), **out.model.tags}  # on its registered version
            log_model(run.run_id, replace(out.model, tags=tags, dataset=job.dataset, standin=job.standin))
        return record


def reset_gpu_peak_memory() -> None:
    for device in range(torch.cuda.device_count()):
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_memory(trainer: pl.Trainer) -> dict[str, float]:
    """The fit's (and test's) peak GPU memory on this rank's device in MiB, where it ran on a
    GPU: what a batch size or a model can grow into (scripts/gpu_check.py prints it)."""
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return {}
    return {"gpu_peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}


def fit(trainer: pl.Trainer, module: TrackedModule, data: Any, ckpt_path: Path | None = None) -> float:
    """`trainer.fit` on a datamodule or a training DataLoader; the seconds it took."""
    start = time.perf_counter()
    try:
        if isinstance(data, pl.LightningDataModule):
            trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        else:
            trainer.fit(module, train_dataloaders=data, ckpt_path=ckpt_path)
    except SIGTERMException:
        raise preempted(trainer) from None
    return time.perf_counter() - start
