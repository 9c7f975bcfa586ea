"""Image folders (`<split>/<class>/<file>`) read as the PyTorch transfer-learning tutorial does.

Like torchvision's ImageFolder: classes are the sorted sub-directory names, and only files
with an image extension are samples. Unlike it, the files left out are returned (and the
stage logs them: hymenoptera's train/ants holds a .gif), and a file with an image extension
that PIL cannot read stops the stage with its path, before training or when decoded.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from hw4.data.loaders.image_transforms import eval_transform, train_transform
from hw4.data.loaders.resumable import EpochOrder, ResumableLoader, seeded_draws
from hw4.io.checksums import file_sha256
from hw4.io.paths import RAW_MISSING

SPLITS = ("train", "val")


class ImageFolderError(ValueError):
    """An image folder that cannot be trained on as it is."""


@dataclass(frozen=True)
class FolderScan:
    """One split: (path, label) per image, the class names, and the files that are not images."""

    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[Path, int], ...]
    skipped: tuple[Path, ...]


def scan(root: Path) -> FolderScan:
    """Every file under `root/<class>/`, sorted; images checked readable, the rest set aside."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"{root}: no such directory (fix the data directory in params; {RAW_MISSING})")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir()))
    if not classes:
        raise ImageFolderError(f"{root}: no class directories; expected {root}/<class>/<image files>")
    samples, skipped = [], []
    for label, name in enumerate(classes):
        for path in sorted(p for p in (root / name).rglob("*") if p.is_file()):
            if path.suffix.lower() in IMG_EXTENSIONS:
                check_readable(path)
                samples.append((path, label))
            else:
                skipped.append(path)
    counts = Counter(label for _, label in samples)
    empty = [name for label, name in enumerate(classes) if not counts[label]]
    if empty:
        raise ImageFolderError(f"{root}: class folder(s) {empty} hold no images")
    return FolderScan(root, classes, tuple(samples), tuple(skipped))


def check_readable(path: Path) -> None:
    """Header and structure only (cheap); a truncated file is caught when decoded (`load_rgb`)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... depending on the format
        raise ImageFolderError(f"{path}: not a readable image ({type(e).__name__}: {e}); remove or replace it") from None


def load_rgb(path: Path) -> Image.Image:
    """The decoded image as RGB (torchvision's pil_loader), or an error naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as e:
        raise ImageFolderError(f"{path}: cannot decode image ({type(e).__name__}: {e}); remove or replace it") from None


def tree_sha256(scans: dict[str, FolderScan]) -> str:
    """One digest of every file the splits hold (images and skipped files), by relative path."""
    digest = hashlib.sha256()
    for split, s in sorted(scans.items()):
        for path in sorted([p for p, _ in s.samples] + list(s.skipped)):
            digest.update(f"{split}/{path.relative_to(s.root)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


class ImageFolderDataset(Dataset):
    """(image (3, S, S) normalised float, label) per sample of a scanned split: by index, or by
    (index, epoch) from an `EpochOrder`, whose random transforms then draw from that pair and
    `seed` (hw4.data.loaders.resumable)."""

    def __init__(self, folder: FolderScan, transform: transforms.Compose, seed: int = 0):
        self.folder = folder
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, int):
            return self._sample(key)
        i, epoch = key
        with seeded_draws(self.seed, epoch, i):
            return self._sample(i)

    def _sample(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.folder.samples[i]
        return self.transform(load_rgb(path)), label


class ImageFolderData(pl.LightningDataModule):
    """`root/train` and `root/val` as loaders with the tutorial's transforms.

    Scanned when built, so a missing folder or an unreadable image stops the stage before
    the MLflow run opens. `batch_size` is global: under DDP each of N ranks takes
    batch_size / N, and validation is split across ranks without padding, so every
    validation image counts exactly once (Lightning#7929).
    """

    def __init__(self, root: Path, image_size: int, batch_size: int, workers: int, seed: int):
        super().__init__()
        self.scans = {split: scan(Path(root) / split) for split in SPLITS}
        train, val = self.scans["train"].classes, self.scans["val"].classes
        if train != val:
            raise ImageFolderError(f"{root}: train classes {list(train)} differ from val classes {list(val)}")
        self.classes = train
        self.image_size = image_size
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed

    def train_dataloader(self) -> ResumableLoader:
        data = ImageFolderDataset(self.scans["train"], train_transform(self.image_size), self.seed)
        # A permutation drawn from (seed, epoch), and each image's crop and flip from (seed,
        # epoch, index): the same batches whether or not a run resumed, with any workers.
        sampler = EpochOrder(data, self.trainer.world_size, self.trainer.global_rank, shuffle=True, seed=self.seed, drop_last=True)
        return self._loader(data, sampler, ResumableLoader)

    def val_dataloader(self) -> DataLoader:
        data = ImageFolderDataset(self.scans["val"], eval_transform(self.image_size))
        return self._loader(data, range(self.trainer.global_rank, len(data), self.trainer.world_size))

    def _loader(self, data: Dataset, sampler, loader: type[DataLoader] = DataLoader) -> DataLoader:
        world = self.trainer.world_size
        if self.batch_size % world:
            raise ImageFolderError(f"batch size {self.batch_size} does not split evenly across {world} devices")
        return loader(
            data,
            batch_size=self.batch_size // world,
            sampler=sampler,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,  # not re-spawned (and re-importing torch) every epoch
            pin_memory=self.trainer.strategy.root_device.type == "cuda",
        )
