"""The LightningModule around `Captioner`: teacher-forced loss per split, Adam, decay per epoch.

`blind=True` zeroes the image features on the way in, in training and in decoding alike:
the same network then learns captions from the words alone, the baseline that shows how
much the image is worth.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from hw4.models.captioner import Captioner
from hw4.models.classifier import OptimSettings


class CaptioningModule(pl.LightningModule):
    """Batches are (captions (B, T) int, features (B, D) float).

    Manual optimisation with one `MeanMetric` per split, as `ImageClassifier`: the steps are
    small, and the epoch means are exact under DDP (the states are summed across ranks).
    """

    def __init__(self, net: Captioner, optim: OptimSettings, blind: bool = False, log_every_n_steps: int = 50):
        super().__init__()
        self.net = net
        self.optim = optim
        self.blind = blind
        self.log_every_n_steps = log_every_n_steps
        self.automatic_optimization = False
        self.loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in ("train", "val")})  # "train" is a Module method
        self.history: list[dict[str, float]] = []  # one row of epoch metrics per epoch

    def image_input(self, features: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(features) if self.blind else features

    def _step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        captions, features = batch
        loss, _ = self.net.loss(self.image_input(features), captions)
        self.loss[f"{split}_"].update(loss.detach(), weight=captions.shape[0])
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        loss = self._step("train", batch)
        self.manual_backward(loss)
        opt.step()
        if (self.global_step + 1) % self.log_every_n_steps == 0 and self.logger is not None:
            self.logger.log_metrics({"train/loss_step": loss.item()}, step=self.global_step)

    def on_train_epoch_end(self) -> None:
        lr = self.optimizers().param_groups[0]["lr"]
        self.lr_schedulers().step()
        self._log_epoch({"train/loss": self._compute("train"), "lr": lr})

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch({"val/loss": self._compute("val")})

    def _compute(self, split: str) -> float:
        metric = self.loss[f"{split}_"]
        value = metric.compute().item()
        metric.reset()
        return value

    def _log_epoch(self, metrics: dict[str, float]) -> None:
        """Epoch metrics go to the logger at the epoch's step, and into `history`."""
        if not self.history or self.history[-1]["epoch"] != self.current_epoch:
            self.history.append({"epoch": self.current_epoch})
        self.history[-1].update(metrics)
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=self.current_epoch)

    @torch.no_grad()
    def caption(self, features: torch.Tensor, max_length: int, beam_width: int) -> torch.Tensor:
        """Decoded tokens (B, max_length) for features (B, D), blind or not as trained."""
        self.net.eval()
        return self.net.decode(self.image_input(features), max_length, beam_width)

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
