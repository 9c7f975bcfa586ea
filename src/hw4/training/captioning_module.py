"""The LightningModule around `Captioner`: teacher-forced loss per split, Adam, decay per epoch.

`blind=True` zeroes the image features on the way in, in training and in decoding alike:
the same network then learns captions from the words alone, the baseline that shows how
much the image is worth.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

from hw4.models.captioner import Captioner
from hw4.training.tracked_module import OptimSettings, TrackedModule


class CaptioningModule(TrackedModule):
    """Batches are (captions (B, T) int, features (B, D) float).

    Manual optimisation with one `MeanMetric` per split, as `ImageClassifier`: the steps are
    small, and the epoch means are exact under DDP (the states are summed across ranks).
    """

    def __init__(self, net: Captioner, optim: OptimSettings, blind: bool = False):
        super().__init__(optim)
        self.net = net
        self.blind = blind
        self.loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in ("train", "val")})  # "train" is a Module method

    def image_input(self, features: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(features) if self.blind else features

    def _step(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        captions, features = batch
        loss, _ = self.net.loss(self.image_input(features), captions)
        self.loss[f"{split}_"].update(loss.detach(), weight=captions.shape[0])
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._optimise(self._step("train", batch))

    def on_train_epoch_end(self) -> None:
        self._log_epoch({"train/loss": self._compute("train")})
        self._end_train_epoch()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # A checkpoint mid-epoch (hw4.training.preemption) keeps the epoch's loss so far (the
        # metric's sum and weight, which its state_dict leaves out), so the resumed epoch's
        # train/loss counts every step once; zero at an epoch's end.
        checkpoint["hw4_train_loss"] = {k: v.clone() for k, v in self.loss["train_"].metric_state.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, value in checkpoint.get("hw4_train_loss", {}).items():
            setattr(self.loss["train_"], name, value.to(self.device))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch({"val/loss": self._compute("val")})

    def _compute(self, split: str) -> float:
        metric = self.loss[f"{split}_"]
        value = metric.compute().item()
        metric.reset()
        return value

    @torch.no_grad()
    def caption(self, features: torch.Tensor, max_length: int, beam_width: int) -> torch.Tensor:
        """Decoded tokens (B, max_length) for features (B, D), blind or not as trained."""
        self.net.eval()
        return self.net.decode(self.image_input(features), max_length, beam_width)
