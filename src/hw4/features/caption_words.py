"""A backbone trained on the training captions' words: the offline alternative to ImageNet.

With no download there are no pretrained weights, and a random network's features barely
tell a square from a triangle. Trained for a few epochs to predict which words an image's
captions use (multi-label, over the vocabulary, special tokens left out), the same backbone
learns the colours, shapes and sizes that captions name. Only the training images and
their captions are used, so the validation split stays unseen.

This is a fixed step of preprocessing, not an experiment: a plain loop, seeded, whose final
loss goes into meta.json.
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
from tqdm import tqdm

from hw4.data.formats.coco_text import SPECIAL, Vocabulary
from hw4.features.image_features import ImageFiles, normalise


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


def train_on_caption_words(
    net: nn.Module,
    dim: int,
    paths: Sequence[Path],
    targets: torch.Tensor,
    settings: WordTraining,
    image_size: int,
    device: torch.device,
    workers: int,
    seed: int,
) -> float:
    """Train `net` (images -> (B, dim)) in place with a linear word head; return the last epoch's mean loss."""
    torch.manual_seed(seed)
    model = nn.Sequential(net, nn.Linear(dim, targets.shape[1])).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    loader = DataLoader(
        _Indexed(ImageFiles(paths, image_size)), batch_size=settings.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed), num_workers=workers,
    )
    targets = targets.to(device)
    epoch_loss = float("nan")
    for _ in (bar := tqdm(range(settings.epochs), desc="backbone on caption words", unit="epoch")):
        total = 0.0
        for images, idx in loader:
            idx = idx.to(device)
            loss = F.binary_cross_entropy_with_logits(model(normalise(images.to(device))), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch_loss = total / len(paths)
        bar.set_postfix(loss=f"{epoch_loss:.4f}")
    net.eval()
    return epoch_loss
