"""Transfer learning on a ResNet: the LightningModule and the freezing callback.

`finetune` trains every parameter; `freeze` adds `FreezeBackbone`, so only the new head
trains. The module itself does not know the mode: its optimizer takes whatever parameters
still require gradients when the Trainer asks for it, which is after callbacks' `setup`.
"""

from __future__ import annotations

import time
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from hw4.models.resnet import backbone_modules
from hw4.training.image_classifier import ImageClassifier
from hw4.training.tracked_module import OptimSettings

Mode = Literal["finetune", "freeze"]
MODES: tuple[Mode, ...] = ("finetune", "freeze")


class TransferClassifier(ImageClassifier):
    """ImageClassifier's loss, metrics and epoch history, with the tutorial's optimisation:
    SGD with momentum over the trainable parameters, the rate cut by `gamma` every
    `step_size` epochs (StepLR), and the wall time of each epoch (training + validation).
    """

    def __init__(self, net: nn.Module, optim: OptimSettings, step_size: int, gamma: float, num_classes: int):
        # The transforms already normalised the images with ImageNet's statistics, so the
        # parent's per-batch normalisation (mean 0, std 1 here) is not used: see `forward`.
        super().__init__(net, optim, mean=0.0, std=1.0, num_classes=num_classes)
        self.step_size = step_size
        self.gamma = gamma
        self._epoch_start = 0.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)  # (B, 3, H, W) -> (B, classes)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch  # one step's batch, from a DataLoader: k = 1
        super().training_step((images[None], labels[None]), batch_idx)

    def build_optimiser(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        trainable = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(trainable, lr=self.optim.lr, momentum=self.optim.momentum, weight_decay=self.optim.weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=self.step_size, gamma=self.gamma)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()  # validation has run by now: the time covers both
        self._log_epoch({"epoch_time_s": time.perf_counter() - self._epoch_start})


class FreezeBackbone(Callback):
    """`freeze` mode: the backbone takes no gradients, is in no optimizer, and keeps its
    batch-norm statistics; only the head trains.

    `setup` runs before the Trainer calls `configure_optimizers`, so the optimizer holds the
    head alone. Batch norm would update its running statistics in training mode even with
    frozen weights, so the backbone goes to eval mode at every epoch's start (validation
    puts each submodule back in the mode it found it in, so once per epoch suffices).
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for module in backbone_modules(pl_module.net):
            module.requires_grad_(False)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for module in backbone_modules(pl_module.net):
            module.eval()


def mode_callbacks(mode: Mode) -> list[Callback]:
    return [FreezeBackbone()] if mode == "freeze" else []
