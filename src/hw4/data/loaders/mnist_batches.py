"""The prepared MNIST-family tensors as a LightningDataModule of in-memory batches."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from hw4.data.loaders.batches import TensorBatches

SPLITS = ("train", "val", "test")


def load_prepared(path: Path) -> dict:
    """`data/prepared/mnist_family.pt`: {train,val,test}_{x,y} uint8 tensors and `meta`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: prepared data not found; run `dvc repro prepare` first")
    data = torch.load(path, weights_only=True)
    missing = [f"{s}_{k}" for s in SPLITS for k in "xy" if f"{s}_{k}" not in data]
    if missing:
        raise ValueError(f"{path}: missing {missing}; re-run the prepare stage")
    return data


class MnistFamilyData(pl.LightningDataModule):
    """Batches of (uint8 images, uint8 labels): (B, 28, 28) and (B,) for validation and test;
    for training, `steps_per_call` steps' batches stacked, (k, B, 28, 28) and (k, B), k <= steps_per_call.

    The tensors move to the accelerator once, in `setup`; every item is then one gather.
    `batch_size` is global: each of N ranks takes batch_size / N of every step's samples.
    """

    def __init__(self, path: Path, batch_size: int, eval_batch_size: int = 1000, seed: int = 0,
                 train_on_val: bool = False, steps_per_call: int = 1):
        super().__init__()
        self.data = load_prepared(path)
        self.meta = self.data.get("meta", {})
        if train_on_val:  # a final retraining: the validation split has chosen, now it trains
            for k in "xy":
                self.data[f"train_{k}"] = torch.cat([self.data[f"train_{k}"], self.data[f"val_{k}"]])
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.steps_per_call = steps_per_call
        train = self.data["train_x"].float().div(255)
        self.mean, self.std = train.mean().item(), train.std().item()

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device
        for key in [f"{s}_{k}" for s in SPLITS for k in "xy"]:
            self.data[key] = self.data[key].to(device)

    def _batches(self, split: str, batch_size: int, shuffle: bool, steps_per_item: int | None = None) -> TensorBatches:
        return TensorBatches(
            (self.data[f"{split}_x"], self.data[f"{split}_y"]),
            batch_size=batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            steps_per_item=steps_per_item,
        )

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, shuffle=True, steps_per_item=self.steps_per_call)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size, shuffle=False)
