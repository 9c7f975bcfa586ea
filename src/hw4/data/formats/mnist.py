"""An MNIST-family dataset directory (the four IDX files) -> validated, split uint8 tensors.

The split is the homework's: the last `val_size` training images are the validation set,
the rest train, and the test file is the test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from hw4.data.formats.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, read_idx
from hw4.data.standins.marker import is_standin
from hw4.io import atomic
from hw4.io.checksums import file_sha256

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10


def load_split(
    raw_dir: Path, part: str, sizes: Mapping[str, int | None] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) and labels (N,) of `part` ("train" or "test"), both uint8, checked.

    `sizes`: file name -> the most bytes its content may decompress to (the registry's)."""
    sizes = sizes or {}
    images_path = Path(raw_dir) / FILES[f"{part}_images"]
    labels_path = Path(raw_dir) / FILES[f"{part}_labels"]
    images = read_idx(images_path, IMAGES_MAGIC, sizes.get(images_path.name))
    labels = read_idx(labels_path, LABELS_MAGIC, sizes.get(labels_path.name))
    _check_images(images, images_path.name)
    _check_labels(labels, labels_path.name)
    if len(images) != len(labels):
        raise IdxError(
            f"{images_path.name} has {len(images)} images but {labels_path.name} has {len(labels)} labels"
        )
    return images, labels


def split_train_val(
    images: torch.Tensor, labels: torch.Tensor, val_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_x, train_y, val_x, val_y): the first N - val_size for training, the last for validation."""
    n = len(images)
    if not 0 < val_size < n:
        raise ValueError(f"val_size {val_size} must be between 1 and {n - 1} (the training file has {n} images)")
    cut = n - val_size
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def prepare(
    raw_dir: Path, dataset: str, classes: list[str], val_size: int, sizes: Mapping[str, int | None] | None = None
) -> dict:
    """The dict saved as `data/prepared/mnist_family.pt` (see `save`); `sizes` as for `load_split`."""
    raw_dir = Path(raw_dir)
    if len(classes) != NUM_CLASSES:
        raise ValueError(f"{dataset}: expected {NUM_CLASSES} class names, got {classes}")
    train_images, train_labels = load_split(raw_dir, "train", sizes)
    test_x, test_y = load_split(raw_dir, "test", sizes)
    train_x, train_y, val_x, val_y = split_train_val(train_images, train_labels, val_size)
    meta = {
        "dataset": dataset,
        "classes": list(classes),
        "standin": is_standin(raw_dir),
        "sha256": {name: file_sha256(raw_dir / name) for name in FILES.values()},
    }
    return {
        "train_x": train_x, "train_y": train_y,
        "val_x": val_x, "val_y": val_y,
        "test_x": test_x, "test_y": test_y,
        "meta": meta,
    }  # fmt: skip


def save(data: dict, path: Path) -> None:
    """Write atomically: a reader never sees a half-written file."""
    with atomic.replacing(Path(path)) as tmp:
        # clone(): saved slices would load back as views of one shared storage.
        torch.save({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in data.items()}, tmp)


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != IMAGE_SIZE:
        raise IdxError(f"{name}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {tuple(images.shape)}")


def _check_labels(labels: torch.Tensor, name: str) -> None:
    if labels.dtype != torch.uint8 or labels.dim() != 1:
        raise IdxError(f"{name}: expected uint8 labels of shape (N,), got {labels.dtype} {tuple(labels.shape)}")
    bad = labels >= NUM_CLASSES
    if bad.any():
        index = int(bad.nonzero()[0])
        raise IdxError(f"{name}: label {int(labels[index])} at index {index} is outside 0..{NUM_CLASSES - 1}")

