"""A backbone trained on the training captions' words: the offline alternative to ImageNet.

With no download there are no pretrained weights, and a random network's features barely
tell a square from a triangle. Trained for a few epochs to predict which words an image's
captions use (multi-label, over the vocabulary, special tokens left out), the same backbone
learns the colours, shapes and sizes that captions name. Only the training images and
their captions are used, so the validation split stays unseen.

A step of preprocessing, trained like every network of the project: a `TrackedModule` fitted
by `hw4.training.tracked_fit.fit` inside the stage's MLflow run, its loss per epoch there and
the last one in meta.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics import MeanMetric

from hw4.data.formats.coco_text import SPECIAL, Vocabulary
from hw4.features.extractor import imagenet_normalise
from hw4.features.image_features import ImageFiles
from hw4.tracking.runs import StageRun
from hw4.training.tracked_fit import fit
from hw4.training.tracked_module import OptimSettings, TrackedModule
from hw4.training.trainer import TrainerSettings, build_trainer


@dataclass
class WordTraining:
    """params.yaml `preprocess_coco.raw.word_training` (used when weights: caption_words)."""

    epochs: int
    lr: float
    batch_size: int


def word_targets(captions: np.ndarray, image_idxs: np.ndarray, n_images: int, vocab: Vocabulary) -> torch.Tensor:
    """(n_images, V) float: 1 where some caption of the image uses the word."""
    caps = torch.from_numpy(captions).long()  # (N, T)
    rows = torch.from_numpy(image_idxs).long().unsqueeze(1).expand_as(caps)  # (N, T): each token's image
    targets = torch.zeros(n_images, len(vocab))
    targets[rows, caps] = 1
    targets[:, [vocab.word_to_idx[t] for t in SPECIAL]] = 0
    return targets


class _Indexed(Dataset):
    """(image, its index): the index picks the image's row of targets."""

    def __init__(self, images: ImageFiles):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], i


class CaptionWordsModule(TrackedModule):
    """`net` (images -> (B, dim)) with a linear head over the vocabulary, trained with binary
    cross-entropy against each image's row of `targets` (n_images, V). Batches are
    (images (B, 3, H, W) in [0, 1], image indices (B,))."""

    def __init__(self, net: nn.Module, dim: int, targets: torch.Tensor, lr: float):
        # Adam without decay: the schedule's factor 1.0 leaves the rate as it is.
        super().__init__(OptimSettings(name="adam", lr=lr, momentum=0.0, weight_decay=0.0, lr_decay=1.0))
        # In training mode (batch statistics in BatchNorm): Lightning keeps each submodule's
        # mode as it finds it, and backbones come in evaluation mode.
        self.model = nn.Sequential(net, nn.Linear(dim, targets.shape[1])).train()
        self.register_buffer("targets", targets, persistent=False)  # moved to the device with the module
        self.train_loss = MeanMetric()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, idx = batch
        loss = F.binary_cross_entropy_with_logits(self.model(imagenet_normalise(images)), self.targets[idx])
        self.train_loss.update(loss.detach(), weight=len(idx))
        self._optimise(loss)

    def on_train_epoch_end(self) -> None:
        self._log_epoch({"words/loss": self.train_loss.compute().item()})
        self.train_loss.reset()
        self._end_train_epoch()


def train_on_caption_words(
    net: nn.Module,
    dim: int,
    paths: Sequence[Path],
    targets: torch.Tensor,
    settings: WordTraining,
    image_size: int,
    trainer_settings: TrainerSettings,
    run: StageRun,
    workers: int,
    seed: int,
) -> float:
    """Train `net` in place with a linear word head; return the last epoch's mean loss."""
    torch.manual_seed(seed)  # the head's initial weights
    module = CaptionWordsModule(net, dim, targets, settings.lr)
    loader = DataLoader(
        _Indexed(ImageFiles(paths, image_size)), batch_size=settings.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed), num_workers=workers,
    )
    fit(build_trainer(trainer_settings, run, settings.epochs), module, loader)
    net.eval()
    return module.history[-1]["words/loss"]
