"""Image features of many files, in batches on the accelerator, through a backbone of
hw4.features.extractor; and the PCA and standardisation fitted on the training split."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor
from tqdm import tqdm

from hw4.data.formats.coco_features import CocoDataError
from hw4.features.extractor import Reduction, apply_pca, imagenet_normalise


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


@torch.no_grad()
def extract(
    net: nn.Module, paths: Sequence[Path], size: int, batch_size: int, device: torch.device, workers: int, desc: str
) -> np.ndarray:
    """Features (len(paths), D) float32, in the order of `paths`."""
    net = net.to(device).eval()
    loader = DataLoader(ImageFiles(paths, size), batch_size=batch_size, num_workers=workers)
    out = [net(imagenet_normalise(images.to(device))).float().cpu() for images in tqdm(loader, desc=desc, unit="batch")]
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
