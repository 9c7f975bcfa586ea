"""The prepared COCO layout as a LightningDataModule of in-memory (captions, features) batches.

Captions and image features stay as tensors (on the accelerator once `setup` has run); a
batch is one gather of caption rows and one of the feature rows they point at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytorch_lightning as pl
import torch

from hw4.data.formats.coco_features import META_FILE, PREPARED_FEATURE_FILES, SPLITS, CaptionData, read_layout, subsample_train
from hw4.data.loaders.batches import TensorBatches


@dataclass
class CaptionBatches(TensorBatches):
    """Batches of (captions (B, T), features (B, D)) from tensors (captions, image_idxs)."""

    features: torch.Tensor | None = None  # (images, D)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for captions, image_idxs in super().__iter__():
            yield captions, self.features[image_idxs]


def load_prepared(directory: Path) -> tuple[CaptionData, dict]:
    """The layout preprocess_coco wrote (checked again: it is cheap) and its meta.json."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: not found; run `dvc repro preprocess_coco` first")
    return read_layout(directory, PREPARED_FEATURE_FILES), json.loads(meta_path.read_text())


class CocoCaptions(pl.LightningDataModule):
    """Train and val caption batches; `max_train` > 0 keeps that many training captions (seeded)."""

    def __init__(self, directory: Path, batch_size: int, eval_batch_size: int, max_train: int = 0, seed: int = 0):
        super().__init__()
        data, self.meta = load_prepared(directory)
        self.data = subsample_train(data, max_train, seed)
        self.vocab = self.data.vocab
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.tensors = {
            s: {
                "captions": torch.from_numpy(self.data.captions[s]).long(),  # (N, T)
                "image_idxs": torch.from_numpy(self.data.image_idxs[s]).long(),  # (N,)
                "features": torch.from_numpy(self.data.features[s]),  # (images, D)
            }
            for s in SPLITS
        }

    @property
    def feature_dim(self) -> int:
        return self.tensors["train"]["features"].shape[1]

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device
        self.tensors = {s: {k: t.to(device) for k, t in ts.items()} for s, ts in self.tensors.items()}

    def _batches(self, split: str, batch_size: int, shuffle: bool) -> CaptionBatches:
        t = self.tensors[split]
        return CaptionBatches(
            (t["captions"], t["image_idxs"]),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            features=t["features"],
        )

    def train_dataloader(self) -> CaptionBatches:
        return self._batches("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> CaptionBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)
