"""What every LightningModule of the project shares: the optimiser from params, manual
optimisation with the loss logged every few steps, and an epoch history that survives resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytorch_lightning as pl
import torch

from hw4.tracking.lightning_logger import MLflowRunLogger


Schedule = Literal["exponential", "one_cycle"]
ONE_CYCLE_WARMUP = 0.25  # of the steps, rising from lr/25 to lr; then cosine down to lr/25e4


@dataclass
class OptimSettings:
    """`name: sgd` with `momentum: 0` and `lr_decay: 0.95` is the homework's setting.

    `schedule: one_cycle` (Smith and Topin, 2018) instead warms the rate up to `lr` over the
    first quarter of all optimiser steps and anneals it to nearly zero by the last, per step:
    with BatchNorm it trains the demo's CNN in 5 epochs where the decay needs 13.
    """

    name: Literal["sgd", "adam"]
    lr: float
    momentum: float
    weight_decay: float
    lr_decay: float  # multiplied into the learning rate after every epoch (exponential)
    schedule: Schedule = "exponential"

    def validate(self, where: str) -> None:
        from hw4.config.settings import ConfigError

        if self.lr <= 0:
            raise ConfigError(f"params '{where}.lr': must be positive, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"params '{where}.lr_decay': must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"params '{where}.momentum': must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"params '{where}.weight_decay': must be 0 or more, got {self.weight_decay}")

    def build(self, params, total_steps: int | None = None) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The optimiser over `params` and its schedule, stepped per epoch (exponential) or
        per optimiser step (one_cycle, over `total_steps`, which it needs)."""
        if self.name == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule == "one_cycle":
            if total_steps is None:
                raise ValueError("a one_cycle schedule needs the fit's total optimiser steps")
            # cycle_momentum would also cycle SGD's momentum and Adam's beta1: kept fixed.
            return opt, torch.optim.lr_scheduler.OneCycleLR(
                opt, self.lr, total_steps=total_steps, pct_start=ONE_CYCLE_WARMUP, cycle_momentum=False)
        return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)

    @property
    def per_step(self) -> bool:
        return self.schedule == "one_cycle"


class TrackedModule(pl.LightningModule):
    """Manual optimisation with per-epoch metrics kept in `history` and sent to the logger.

    On a 2-core CPU a small model's step is shorter than Lightning's automatic-optimisation
    closure plus a per-step `self.log` (benchmarks/bench_lightning.py), so subclasses compute
    their metrics once per epoch and the training loss is logged only every
    `trainer.log_every_n_steps` (params `trainer.log_every_n_steps`).
    """

    def __init__(self, optim: OptimSettings):
        super().__init__()
        self.optim = optim
        self.automatic_optimization = False
        self.history: list[dict[str, float]] = []  # epoch metrics, one row per epoch
        self.first_epoch = 0  # the epoch this fit started at: after a resume, the checkpoint's
        self._step_lr = optim.lr  # a per-step schedule's rate at the last optimiser step
        self._loader_state: dict | None = None  # a checkpoint's training loader state, until the fit starts

    def on_train_start(self) -> None:
        self.first_epoch = self.current_epoch  # the checkpoint is restored by now
        if self._loader_state is not None:
            # A checkpoint taken mid-epoch (hw4.training.preemption): the loader goes on from its
            # place. Lightning restores a stateful loader itself only if it sets the loader up
            # after the checkpoint is read, not when a per-step schedule counted its steps first.
            self.trainer.train_dataloader.load_state_dict(self._loader_state)
            self._loader_state = None

    def on_train_epoch_start(self) -> None:
        # A training loader that reshuffles by epoch (TensorBatches) learns it here, before it
        # is iterated, so every epoch, resumed or not, has its own seeded order: Lightning tells
        # only a DataLoader's sampler. A module hook, not a callback: every callback costs a
        # call per hook per step (benchmarks/bench_lightning.py).
        set_epoch = getattr(self.trainer.train_dataloader, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning records the hook it is in (`_current_fx_name`) around every hook call,
        # 14 times per manual optimiser step; nn.Module.__setattr__'s search of parameters,
        # buffers and submodules before storing a plain string costs a small MLP ~30 us a
        # step on two CPU cores (benchmarks/bench_lightning.py). The string is stored as
        # that search would store it. No public API names the hook; the test
        # test_lightning_still_names_the_running_hook_as_tracked_module_expects fails when
        # a Lightning release renames the attribute.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _optimise(self, loss: torch.Tensor) -> None:
        # Lightning's optimizer wrapper counts global_step, which checkpoints and resume rely on.
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        if self.optim.per_step:
            self._step_lr = opt.param_groups[0]["lr"]  # the rate this step took, for `history`
            self.lr_schedulers().step()
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0 and self.logger is not None:
            self.logger.log_metrics({"train/loss_step": loss.item()}, step=self.global_step)

    def _end_train_epoch(self) -> None:
        """Step the per-epoch schedule, keeping the rate the epoch trained with (its last
        step's, for a per-step schedule) in `history` (LearningRateMonitor logs it to MLflow)."""
        if self.optim.per_step:
            self._history_row()["lr"] = self._step_lr
        else:
            self._history_row()["lr"] = self.optimizers().param_groups[0]["lr"]
            self.lr_schedulers().step()

    def _history_row(self) -> dict[str, float]:
        if not self.history or self.history[-1]["epoch"] != self.current_epoch:
            self.history.append({"epoch": self.current_epoch})
        return self.history[-1]

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        """Epoch metrics go into `history`, into `trainer.callback_metrics` (for Lightning's
        callbacks: EarlyStopping, ModelCheckpoint's monitor) and to the logger at the epoch's
        step; the logger writes out what it holds (the step losses too) here at most once a
        second (`MLflowRunLogger.save`), never per step."""
        self._history_row().update(metrics)
        # The values are global already (torchmetrics sums the ranks' states) and the same on
        # every rank: "max" passes them through unchanged, where a mean of n copies can round.
        # logger=False: Lightning would log them at the batch count; MLflow's step is the epoch.
        self.log_dict(metrics, logger=False, sync_dist=True, reduce_fx="max")
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.current_epoch)
            self.logger.save()

    def configure_optimizers(self):
        opt, schedule = self.build_optimiser()
        # Named "lr", LearningRateMonitor's metric name for it (its own would be "lr-Adam").
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "name": "lr"}}

    def build_optimiser(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        # Only a per-step schedule needs the count, which sets the training loader up early.
        return self.optim.build(self.parameters(), self.optimiser_steps() if self.optim.per_step else None)

    def optimiser_steps(self) -> int:
        """Optimiser steps of the whole fit on this rank: a training loader that stacks
        several steps per item (TensorBatches) says how many it takes per epoch."""
        calls = self.trainer.estimated_stepping_batches  # sets the training loader up
        loader = self.trainer.train_dataloader
        per_epoch = getattr(loader, "steps_per_epoch", None)
        return int(calls if per_epoch is None else per_epoch * self.trainer.max_epochs)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["hw4_history"] = self.history
        checkpoint["hw4_step_lr"] = self._step_lr  # history's `lr` of an epoch resumed after its last step
        loader = self.trainer.train_dataloader
        if hasattr(loader, "state_dict"):
            checkpoint["hw4_train_loader"] = loader.state_dict()
        if isinstance(self.logger, MLflowRunLogger):
            self.logger.flush()  # every epoch a resume would skip is in MLflow first

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = checkpoint.get("hw4_history", [])
        self._step_lr = checkpoint.get("hw4_step_lr", self._step_lr)
        self._loader_state = checkpoint.get("hw4_train_loader")
