"""The one place a Lightning Trainer is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar

from hw4.tracking import StageRun


@dataclass
class TrainerSettings:
    """params.yaml `trainer`: where and how every training stage runs.

    `batch_size` in each stage is global: with N devices each takes batch_size / N, so the
    optimisation is the same whatever the hardware (logged as `batch_size_semantics`).
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    progress_bar: bool = True
    threads: int = 0  # torch intra-op threads on the CPU; 0 leaves torch's default

    def validate(self, where: str) -> None:
        from hw4.config import ConfigError

        if self.num_nodes < 1:
            raise ConfigError(f"params '{where}.num_nodes': must be at least 1")


def trainer_and_seed(params: dict) -> tuple[TrainerSettings, int]:
    """The two top-level settings every training stage reads besides its own section."""
    from hw4.config import ConfigError, section

    seed = params.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"params 'seed': every training stage needs an integer seed, got {seed!r}")
    return section(params, "trainer", TrainerSettings), seed


def build_trainer(
    settings: TrainerSettings,
    run: StageRun,
    max_epochs: int,
    checkpoint_dir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    log_every_n_steps: int = 50,
    **overrides,
) -> pl.Trainer:
    """A Trainer on whatever accelerators are present, logging into `run`.

    Determinism: Lightning seeds nothing itself, so stages call `pl.seed_everything` first;
    on the CPU `deterministic=True` makes repeated runs bit-identical.
    """
    if settings.threads:
        torch.set_num_threads(settings.threads)
    all_callbacks = list(callbacks)
    if settings.progress_bar:
        # Redrawn every 20 steps: at every step, the bar costs more than a small model's step.
        all_callbacks.append(TQDMProgressBar(refresh_rate=20))
    if checkpoint_dir is not None:
        # Overwritten every epoch: what a killed run resumes from (ResumeState.checkpoint).
        all_callbacks.append(
            ModelCheckpoint(dirpath=checkpoint_dir, filename="last", save_top_k=1, enable_version_counter=False)
        )
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
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=log_every_n_steps,
        # The in-memory batch loaders shard by rank themselves, without padding, so every
        # validation and test sample is seen exactly once (Lightning#7929).
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        **overrides,
    )
