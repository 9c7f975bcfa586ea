"""The LightningModule shared by the MLP and the CNN: loss, accuracy per split, optimiser."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from hw4.data.loaders.batches import normalise
from hw4.training.tracked_module import OptimSettings, TrackedModule

SPLITS = ("train", "val", "test")
Augment = Literal["none", "hflip"]


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Mirror a random half of the batch (B, H, W): right for clothes, wrong for digits."""
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None], images.flip(-1), images)


class ImageClassifier(TrackedModule):
    """Cross-entropy training of `net` on uint8 images normalised on the batch.

    Accuracy and loss per split are torchmetrics, fed once per epoch (see `_record`); their
    states are summed across ranks when computed, so epoch metrics are exact under DDP.
    """

    def __init__(
        self, net: nn.Module, optim: OptimSettings, mean: float, std: float,
        num_classes: int = 10, augment: Augment = "none", label_smoothing: float = 0.0,
    ):
        super().__init__(optim)
        self.net = net
        self.augment = augment
        # Training targets only: validation and test losses stay the plain cross-entropy.
        self.label_smoothing = label_smoothing
        self.mean, self.std = mean, std  # of the training pixels in [0, 1]
        acc = lambda: MulticlassAccuracy(num_classes, average="micro", validate_args=False)  # noqa: E731
        self.acc = nn.ModuleDict({f"{s}_": acc() for s in SPLITS})  # "train" is a Module method
        self.loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in SPLITS})
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # a resumed run keeps its best-so-far
        # per split, this epoch's (predictions, labels, mean losses) of every call
        self._outputs: dict[str, list[tuple[torch.Tensor, ...]]] = {s: [] for s in SPLITS}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalise(images, self.mean, self.std)
        return self.net(x.unsqueeze(1))  # (B, 28, 28) -> (B, 1, 28, 28) -> (B, classes)

    def _loss(self, images: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(images)
        return F.cross_entropy(logits, labels, label_smoothing=smoothing), logits

    def _record(self, split: str, logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor) -> None:
        """Keeps the predictions of `logits` (n, C), `labels` (n,) and the mean `losses` (m,)
        of the m equal batches they came in, for torchmetrics once per epoch: an update per
        step costs more than the MLP's whole step on a CPU."""
        self._outputs[split].append((logits.argmax(-1), labels, losses))

    def _compute(self, split: str) -> dict[str, float]:
        loss, acc = self.loss[f"{split}_"], self.acc[f"{split}_"]
        outputs = self._outputs[split]
        if outputs:
            preds, labels, losses = zip(*outputs)
            acc.update(torch.cat(preds), torch.cat(labels))
            batch_sizes = [torch.full_like(m, len(l) / len(m)) for l, m in zip(labels, losses)]
            loss.update(torch.cat(losses), weight=torch.cat(batch_sizes))
            outputs.clear()
        metrics = {f"{split}/loss": loss.compute().item(), f"{split}/acc": acc.compute().item()}
        loss.reset()
        acc.reset()
        return metrics

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """`batch` stacks k steps' batches, images (k, B, H, W) and labels (k, B): k optimiser
        steps per call. Lightning's loop costs about as much per call as a small MLP's whole
        step on a CPU (benchmarks/bench_lightning.py), so the MLP takes several per call; the
        steps and their order are those of k = 1, and so are the weights, bit for bit."""
        images, labels = batch[0], batch[1].long()
        logits, losses = [], []
        for x, y in zip(images, labels):
            if self.augment == "hflip":
                x = random_hflip(x)
            loss, out = self._loss(x, y, self.label_smoothing)
            self._optimise(loss)
            logits.append(out.detach())
            losses.append(loss.detach())
        self._record("train", torch.cat(logits), labels.flatten(), torch.stack(losses))

    def _evaluate(self, split: str, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        images, labels = batch[0], batch[1].long()
        loss, logits = self._loss(images, labels)
        self._record(split, logits, labels, loss[None])

    def on_train_epoch_end(self) -> None:
        self._log_epoch(self._compute("train"))
        self._end_train_epoch()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # A checkpoint mid-epoch (hw4.training.preemption) keeps the epoch's steps so far, so
        # the resumed epoch's train/loss and train/acc count every step once; empty at an epoch's end.
        checkpoint["hw4_train_outputs"] = self._outputs["train"]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._outputs["train"] = checkpoint.get("hw4_train_outputs", [])

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self._compute("val")
        self.val_acc_best.update(torch.tensor(metrics["val/acc"]))
        self._log_epoch(metrics | {"val/acc_best": self.val_acc_best.compute().item()})

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self._compute("test"))
