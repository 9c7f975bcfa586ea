"""The one place a Lightning Trainer is built."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

import pytorch_lightning as pl
from pytorch_lightning.accelerators import AcceleratorRegistry
from pytorch_lightning.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.strategies import StrategyRegistry

from hw4.io.paths import BEST_CHECKPOINT, LAST_CHECKPOINT
from hw4.tracking.runs import StageRun
from hw4.training.checkpoint_io import AtomicCheckpointIO
from hw4.training.preemption import Preemption
from hw4.config import numerics

# Lightning's precision names: its list is private (lightning_fabric.connector._PRECISION_INPUT_STR and
# _ALIAS); tests/unit/test_trainer_settings.py fails when a release changes it.
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
              "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16")


# What Lightning prints in every stage that its reader can do nothing about, each left out by its
# exact text, so that every other warning and line still shows: that the checkpoint folder is not
# empty (it never is: run.json, the resume state, is written there before the fit, even on a fresh
# clone's first run), a deprecation inside Lightning's own calls to torch, and an advertisement.
CHATTER = (r"Checkpoint directory .* exists and is not empty", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
ADVERT = "💡 Tip: For seamless cloud logging"


@dataclass
class TrainerSettings:
    """params.yaml `trainer`: where and how every training stage runs.

    `batch_size` in each stage is global: with N devices each takes batch_size / N, so the
    optimisation is the same whatever the hardware (logged as `batch_size_semantics`).
    """

    accelerator: str
    devices: int | str
    num_nodes: int
    strategy: str
    precision: str
    deterministic: bool
    progress_bar: bool
    log_every_n_steps: int  # train/loss_step every this many optimiser steps
    threads: int  # torch intra-op threads on the CPU; 0 leaves torch's default (fast only)
    numerics: numerics.Mode  # portable: the same floats on any x86-64 CPU
    system_metrics_s: float  # CPU, memory, disk, network (and GPU) sampled this often into the run; 0: off

    def for_device(self, on_cpu: bool) -> "TrainerSettings":
        """The settings a stage trains with: CPU-only ones (`numerics` pinning the CPU's code
        paths, the `threads` cap) apply on the CPU only. On a GPU the floats that matter are the
        GPU's, and the loaders and the host's share of the work get torch's own thread count."""
        return self if on_cpu else replace(self, numerics="fast", threads=0)

    def validate(self, where: str) -> None:
        from hw4.config.settings import ConfigError

        accelerators = ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
        if self.accelerator not in accelerators:
            raise ConfigError(f"params '{where}.accelerator': {self.accelerator!r} is not one of {accelerators}")
        strategies = ["auto", *StrategyRegistry.available_strategies()]
        if self.strategy not in strategies:
            raise ConfigError(f"params '{where}.strategy': {self.strategy!r} is not one of {strategies}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"params '{where}.precision': {self.precision!r} is not one of {list(PRECISIONS)}")
        if self.precision in ("16-mixed", "16") and numerics.trains_on_cpu(self.accelerator):
            raise ConfigError(
                f"params '{where}.precision': {self.precision} is float16 autocast with loss scaling, for GPUs "
                f"without bfloat16; this stage trains on the CPU: use bf16-mixed or 32-true"
            )
        if not _valid_devices(self.devices):
            raise ConfigError(
                f"params '{where}.devices': {self.devices!r} is not a device count; use auto, -1 (all), "
                f"a number from 1, or a list of device indices such as '0,1'"
            )
        if self.log_every_n_steps < 1:
            raise ConfigError(f"params '{where}.log_every_n_steps': must be at least 1")
        if self.num_nodes < 1:
            raise ConfigError(f"params '{where}.num_nodes': must be at least 1")
        if self.system_metrics_s < 0:
            raise ConfigError(f"params '{where}.system_metrics_s': seconds between samples, or 0 for none; got {self.system_metrics_s}")
        if self.threads < 0:
            raise ConfigError(f"params '{where}.threads': must be 0 (torch's default) or a thread count, got {self.threads}")
        if self.numerics != "fast" and self.threads == 0:
            raise ConfigError(
                f"params '{where}.threads': portable numerics need a fixed thread count (reductions "
                f"depend on it); set 1 or more, the same on every machine"
            )


class Monitor(NamedTuple):
    """An epoch metric the modules log (`val/acc`, `val/loss`, ...) and which way is better."""

    metric: str
    mode: Literal["min", "max"]


@dataclass
class EarlyStoppingSettings:
    """A training stage's `early_stopping`: Lightning's EarlyStopping on an epoch metric the
    stage logs (`val/acc`, `val/loss`, `train/loss`, ...). `monitor: null` trains every
    epoch, as the homework does."""

    monitor: str | None
    mode: Literal["min", "max"]
    patience: int  # epochs without an improvement of more than min_delta before stopping
    min_delta: float

    def validate(self, where: str) -> None:
        from hw4.config.settings import ConfigError

        if self.patience < 1 or self.min_delta < 0:
            raise ConfigError(f"params '{where}': patience must be at least 1 and min_delta 0 or more")

    def callbacks(self) -> list[Callback]:
        if self.monitor is None:
            return []
        return [EarlyStopping(self.monitor, min_delta=self.min_delta, patience=self.patience, mode=self.mode)]


def _valid_devices(devices: int | str) -> bool:
    if isinstance(devices, int):
        return devices >= 1 or devices == -1
    return devices == "auto" or all(part.strip().isdigit() for part in devices.split(","))


def slurm_without_requeue() -> list[SLURMEnvironment]:
    """Under SLURM, Lightning's environment without its auto-requeue, whose SIGUSR1 handler
    would save `hpc_ckpt_N.ckpt` into the working directory mid-step and resume every later
    fit there from it. The stage's own checkpoint at the signal (hw4.training.preemption) and
    the batch script's requeue (docs/scaling.md) take its place."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def build_trainer(
    settings: TrainerSettings,
    run: StageRun,
    max_epochs: int,
    checkpoint_dir: Path | None = None,
    best: Monitor | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides,
) -> pl.Trainer:
    """A Trainer on whatever accelerators are present, logging into `run`.

    In `checkpoint_dir`: `last.ckpt`, what a killed run resumes from, and with `best` the
    weights of the epoch best by that metric (the first to reach it), `best.ckpt`; each
    written whole or not at all (AtomicCheckpointIO). The
    learning rate goes to MLflow through LearningRateMonitor, as `lr`.

    Determinism: Lightning seeds nothing itself, so stages call `pl.seed_everything` first;
    on the CPU `deterministic=True` makes repeated runs bit-identical.
    """
    settings = settings.for_device(numerics.trains_on_cpu(settings.accelerator))
    numerics.configure(settings.numerics, settings.threads)
    leave_out_chatter()
    run.provenance = numerics.provenance(settings.numerics)  # what the run's floats depend on
    run.set_tags(run.provenance)
    all_callbacks = [*callbacks, LearningRateMonitor(logging_interval="epoch")]
    if settings.progress_bar:
        # Redrawn every 20 steps: at every step, the bar costs more than a small model's step.
        all_callbacks.append(TQDMProgressBar(refresh_rate=20))
    if checkpoint_dir is not None:
        if best is not None:  # first: it is `trainer.checkpoint_callback`, with `best_model_path`
            all_callbacks.insert(0, ModelCheckpoint(
                dirpath=checkpoint_dir, filename=Path(BEST_CHECKPOINT).stem, monitor=best.metric, mode=best.mode, save_top_k=1,
                save_weights_only=True, enable_version_counter=False,
            ))
        # Overwritten every epoch, and at a SIGTERM or SIGUSR1: what a stopped run resumes from (ResumeState.checkpoint).
        all_callbacks.append(
            ModelCheckpoint(dirpath=checkpoint_dir, filename=Path(LAST_CHECKPOINT).stem, save_top_k=1, enable_version_counter=False)
        )
        all_callbacks.append(Preemption(checkpoint_dir / LAST_CHECKPOINT))
    return pl.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        deterministic=settings.deterministic,
        max_epochs=max_epochs,
        logger=run.lightning_logger(),
        callbacks=all_callbacks,
        enable_checkpointing=checkpoint_dir is not None,
        plugins=[AtomicCheckpointIO(), *slurm_without_requeue()],
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=settings.log_every_n_steps,
        # The in-memory batch loaders shard by rank themselves, without padding, so every
        # validation and test sample is seen exactly once (Lightning#7929).
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        **overrides,
    )


def leave_out_chatter() -> None:
    for message in CHATTER:
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_not_the_advert)  # a no-op once added


def _not_the_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(ADVERT)
