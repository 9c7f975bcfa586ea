"""Image features from a torchvision CNN backbone, in batches on the accelerator, and PCA.

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
from typing import Literal, Sequence

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor
from tqdm import tqdm

from hw4.data.formats.coco_features import CocoDataError
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


class ImageFiles(Dataset):
    """Images decoded, resized to (S, S) and returned as uint8 (3, S, S); a bad file names itself."""

    def __init__(self, paths: Sequence[Path], size: int):
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.paths[i]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        except OSError as e:  # UnidentifiedImageError (not an image at all) is one
            raise CocoDataError(f"{path}: unreadable image ({e})") from None
        return pil_to_tensor(image)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, S, S) -> float, standardised as torchvision's ImageNet models expect."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


@torch.no_grad()
def extract(
    net: nn.Module, paths: Sequence[Path], size: int, batch_size: int, device: torch.device, workers: int, desc: str
) -> np.ndarray:
    """Features (len(paths), D) float32, in the order of `paths`."""
    net = net.to(device).eval()
    loader = DataLoader(ImageFiles(paths, size), batch_size=batch_size, num_workers=workers)
    out = [net(normalise(images.to(device))).float().cpu() for images in tqdm(loader, desc=desc, unit="batch")]
    return torch.cat(out).numpy()  # (N, D)


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fit_pca(train: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (dim, D)) of the training features, largest variance first."""
    if dim > min(train.shape):
        raise ValueError(f"PCA to {dim} dimensions needs at least that many images and features, got {train.shape}")
    x = torch.from_numpy(train).double()
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)  # vh (min(N, D), D)
    return mean.float().numpy(), vh[:dim].float().numpy()


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


def reduce(features: dict[str, np.ndarray], pca_dim: int, standardised: bool) -> tuple[dict[str, np.ndarray], Reduction]:
    """PCA to `pca_dim` dimensions (0: none), then standardisation, each fitted on the training
    split only; the features of every split, and the fitted `Reduction`."""
    reduction = Reduction()
    if pca_dim:
        reduction.pca_mean, reduction.pca_components = fit_pca(features["train"], pca_dim)
        features = {s: apply_pca(f, reduction.pca_mean, reduction.pca_components) for s, f in features.items()}
    if standardised:
        reduction.mean = features["train"].mean(0)
        reduction.std = features["train"].std(0) + 1e-6  # a dimension constant over the training images stays 0
        features = {s: ((f - reduction.mean) / reduction.std).astype(np.float32) for s, f in features.items()}
    return features, reduction
