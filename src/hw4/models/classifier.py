"""The LightningModule shared by the MLP and the CNN: loss, accuracy per split, optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

SPLITS = ("train", "val", "test")


@dataclass
class OptimSettings:
    """`name: sgd` with `momentum: 0` and `lr_decay: 0.95` is the homework's setting."""

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 1.0  # multiplied into the learning rate after every epoch

    def validate(self, where: str) -> None:
        from hw4.config import ConfigError

        if self.lr <= 0:
            raise ConfigError(f"params '{where}.lr': must be positive, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"params '{where}.lr_decay': must be in (0, 1], got {self.lr_decay}")


Augment = Literal["none", "hflip"]


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Mirror a random half of the batch (B, H, W): right for clothes, wrong for digits."""
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None], images.flip(-1), images)


class ImageClassifier(pl.LightningModule):
    """Cross-entropy training of `net` on uint8 images normalised on the batch.

    Optimisation is manual, metrics are computed once per epoch and the loss is logged only
    every `log_every_n_steps`: on a 2-core CPU the MLP's step is so short that Lightning's
    automatic-optimisation closure, a per-step `self.log` or a per-step metric update cost
    more than the step itself (benchmarks/bench_lightning.py). torchmetrics states are
    summed across ranks when computed, so epoch metrics are exact under DDP.
    """

    def __init__(
        self, net: nn.Module, optim: OptimSettings, mean: float, std: float,
        num_classes: int = 10, log_every_n_steps: int = 50, augment: Augment = "none",
    ):
        super().__init__()
        self.net = net
        self.augment = augment
        self.optim = optim
        self.log_every_n_steps = log_every_n_steps
        self.automatic_optimization = False
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)
        acc = lambda: MulticlassAccuracy(num_classes, average="micro", validate_args=False)  # noqa: E731
        self.acc = nn.ModuleDict({f"{s}_": acc() for s in SPLITS})  # "train" is a Module method
        self.loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in SPLITS})
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # a resumed run keeps its best-so-far
        self.history: list[dict[str, float]] = []  # epoch metrics, one row per epoch
        # per split, this epoch's (predictions, labels, mean loss) of every batch
        self._outputs: dict[str, list[tuple[torch.Tensor, ...]]] = {s: [] for s in SPLITS}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255).sub_(self.mean).div_(self.std)
        return self.net(x.unsqueeze(1))  # (B, 28, 28) -> (B, 1, 28, 28) -> (B, classes)

    def _step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        labels = labels.long()
        if split == "train" and self.augment == "hflip":
            images = random_hflip(images)
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        # Kept as tensors and handed to torchmetrics once per epoch: a metric update per
        # step costs more than the MLP's whole step on a CPU.
        self._outputs[split].append((logits.detach().argmax(1), labels, loss.detach()))
        return loss

    def _compute(self, split: str) -> dict[str, float]:
        loss, acc = self.loss[f"{split}_"], self.acc[f"{split}_"]
        outputs = self._outputs[split]
        if outputs:
            preds, labels, losses = zip(*outputs)
            acc.update(torch.cat(preds), torch.cat(labels))
            loss.update(torch.stack(losses), weight=torch.tensor([len(l) for l in labels], device=self.device))
            outputs.clear()
        metrics = {f"{split}/loss": loss.compute().item(), f"{split}/acc": acc.compute().item()}
        loss.reset()
        acc.reset()
        return metrics

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Lightning's optimizer wrapper counts global_step, which checkpoints and resume rely on.
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        loss = self._step("train", batch)
        self.manual_backward(loss)
        opt.step()
        if (self.global_step + 1) % self.log_every_n_steps == 0 and self.logger is not None:
            self.logger.log_metrics({"train/loss_step": loss.item()}, step=self.global_step)

    def on_train_epoch_end(self) -> None:
        lr = self.optimizers(use_pl_optimizer=False).param_groups[0]["lr"]
        self.lr_schedulers().step()
        self._log_epoch(self._compute("train") | {"lr": lr})

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self._compute("val")
        self.val_acc_best.update(torch.tensor(metrics["val/acc"]))
        self._log_epoch(metrics | {"val/acc_best": self.val_acc_best.compute().item()})

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self._compute("test"))

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        """Epoch metrics go to the logger at the epoch's step, and into `history`."""
        if not self.history or self.history[-1]["epoch"] != self.current_epoch:
            self.history.append({"epoch": self.current_epoch})
        self.history[-1].update(metrics)
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.current_epoch)

    def configure_optimizers(self):
        o = self.optim
        if o.name == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        else:
            opt = torch.optim.Adam(self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=o.lr_decay)]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["hw4_history"] = self.history

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = checkpoint.get("hw4_history", [])
