"""What turns an image into the features a captioner was trained on: the backbone, ImageNet
normalisation, and the reduction fitted on the training split.

Apart from the extraction (hw4.features.image_features) because a logged captioner runs this
at serving: it imports torch, torchvision and numpy, and nothing that trains.

The backbone is the network up to its global average pool (the classifier head removed).
Its weights:
- `imagenet`: a torchvision ImageNet state dict from a local file (the download stage
  fetches ResNet-18's), checked against the hash in its name;
- `random`: a seeded random initialisation. Its features keep colour but little shape: on
  the stand-in a linear probe tells a square from a triangle barely better than chance;
- `caption_words`: the offline choice that works: the random initialisation trained on the
  training images to predict which words their captions use (hw4.features.caption_words).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torchvision
from torch import nn

from hw4.data.formats.images import IMAGENET_MEAN, IMAGENET_STD
from hw4.models.resnet import load_verified

BACKBONES = ("resnet18", "resnet34", "resnet50")
Weights = Literal["imagenet", "random", "caption_words"]


def build_backbone(name: str, weights: Weights, weights_file: Path | None, seed: int) -> tuple[nn.Module, int]:
    """(backbone, D): the network with its head replaced by the identity, images (B, 3, S, S) -> (B, D).

    `caption_words` starts from the random initialisation; `train_on_caption_words` trains it.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {list(BACKBONES)}")
    torch.manual_seed(seed)  # the random initialisation is part of the data: make it repeatable
    net = getattr(torchvision.models, name)(weights=None)
    if weights == "imagenet":
        if weights_file is None or not Path(weights_file).is_file():
            raise FileNotFoundError(
                f"ImageNet weights for {name} not found at {weights_file}; fetch them (download stage) "
                f"or set preprocess_coco.raw.weights to random or caption_words"
            )
        state_dict, _ = load_verified(Path(weights_file))  # refuses a file whose sha256 is not its name's
        net.load_state_dict(state_dict)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net.eval(), dim


def imagenet_normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, S, S) -> float, standardised as torchvision's ImageNet models expect."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def apply_pca(features: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return ((features - mean) @ components.T).astype(np.float32)  # (N, D) -> (N, dim)


@dataclass
class Reduction:
    """What `reduce` fitted on the training split, to apply to any image's features later
    (the captioner's MLflow Model): PCA (mean (D,), components (dim, D)) and standardisation
    (mean, std (dim,)), each None when not used.

    Standardisation evens out the scales: features of a backbone without ImageNet weights
    share a large common offset and vary little around it, and the captioner's initial hidden
    state (tanh) then hardly depends on the image.
    """

    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def apply(self, features: np.ndarray) -> np.ndarray:
        if self.pca_components is not None:
            features = apply_pca(features, self.pca_mean, self.pca_components)
        if self.std is not None:
            features = ((features - self.mean) / self.std).astype(np.float32)
        return features

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_tensors(cls, saved: dict[str, torch.Tensor]) -> "Reduction":
        return cls(**{k: v.numpy() for k, v in saved.items()})


