"""Batches taken by index from tensors held in memory (on the accelerator when there is one).

No per-sample Python: one gather per batch. Under DDP each rank takes its own share:
- training: a shared seeded permutation per epoch, cut to a whole number of batches per rank
  so every rank steps the same number of times;
- evaluation: contiguous, unpadded shards, so each sample is counted exactly once when the
  metric states are summed across ranks (DistributedSampler would repeat samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


@dataclass
class TensorBatches:
    """An iterable of batches `tuple(t[idx] for t in tensors)`; `batch_size` is global.

    Each batch is an `index_select`: on a CPU, advanced indexing `t[idx]` of a batch of 100
    MNIST images takes about five times as long (benchmarks/bench_data.py).
    """

    tensors: Sequence[torch.Tensor]
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    # Training only: an item stacks up to this many steps' batches, (k, B, ...); see
    # `ImageClassifier.training_step`. None yields one batch (B, ...) per item.
    steps_per_item: int | None = None

    def __post_init__(self) -> None:
        n = len(self.tensors[0])
        if any(len(t) != n for t in self.tensors):
            raise ValueError(f"tensors disagree in length: {[len(t) for t in self.tensors]}")
        if self.shuffle and self.batch_size % self.world_size:
            raise ValueError(
                f"global batch size {self.batch_size} is not divisible by {self.world_size} devices"
            )
        if self.steps_per_item is not None and (not self.shuffle or self.steps_per_item < 1):
            raise ValueError(f"steps_per_item={self.steps_per_item}: a positive count, for training batches only")
        self.epoch = 0  # the training order's; set by `set_epoch` (TrackedModule.on_train_epoch_start)
        self.items_done = 0  # of this epoch's training items, handed out (at a save mid-epoch: trained on)
        self._skip = 0  # items of a resumed epoch trained before the checkpoint

    @property
    def num_samples(self) -> int:
        return len(self.tensors[0])

    def _train_shape(self) -> tuple[int, int]:
        """(steps, per-rank batch); a dataset smaller than one batch is one batch."""
        n = self.num_samples
        return max(1, n // self.batch_size), min(self.batch_size, n) // self.world_size

    def _eval_range(self) -> tuple[int, int]:
        bounds = torch.linspace(0, self.num_samples, self.world_size + 1).round().long()
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        if self.shuffle:
            steps, local = self._train_shape()
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.num_samples, generator=g)
            # (steps, world, local): rank r takes its slice of every global batch.
            mine = perm[: steps * self.world_size * local].view(steps, self.world_size, local)
            order = mine[:, self.rank].to(device)  # (steps, local): this rank's samples, step by step
            items = order.unbind(0) if self.steps_per_item is None else order.split(self.steps_per_item)
            items, self.items_done, self._skip = items[self._skip :], self._skip, 0
        else:
            lo, hi = self._eval_range()
            items = torch.arange(lo, hi, device=device).split(self.batch_size)
        for idx in items:
            if self.shuffle:
                self.items_done += 1
            yield self._gather(idx)

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One index_select per tensor for a batch (B,) or a stack of steps (k, B)."""
        if idx.dim() == 1:  # the common case, kept free of the reshaping
            return tuple(t.index_select(0, idx) for t in self.tensors)
        flat = idx.flatten()
        return tuple(t.index_select(0, flat).view(*idx.shape, *t.shape[1:]) for t in self.tensors)

    @property
    def steps_per_epoch(self) -> int:
        """Training: the optimiser steps an epoch takes (the items of several steps count each)."""
        return self._train_shape()[0]

    def __len__(self) -> int:
        if self.shuffle:
            steps = self._train_shape()[0]
            return steps if self.steps_per_item is None else -(-steps // self.steps_per_item)
        lo, hi = self._eval_range()
        return -(-(hi - lo) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # Lightning saves a training loader that has these two in the checkpoint and restores it
    # before iterating: a fit stopped mid-epoch (hw4.training.preemption) resumes with the
    # epoch's order and the items it had not trained on.
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "items_done": self.items_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = state["epoch"]
        self._skip = items_to_skip(state, len(self))

    def to(self, device: torch.device) -> "TensorBatches":
        self.tensors = [t.to(device) for t in self.tensors]
        return self


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 pixels (B, H, W) -> float32 (x / 255 - mean) / std, in two passes over the batch
    (x * 1/(255 std) - mean/std) where the textbook float-div-sub-div makes four."""
    return images.mul(1 / (255 * std)).sub_(mean / std)


def items_to_skip(state: dict[str, int], items_per_epoch: int) -> int:
    """The items of a checkpoint's epoch (its `items_done`) that its resumed fit trains no more:
    none for a finished epoch, a checkpoint at its end, whose next epoch starts whole."""
    return state["items_done"] if state["items_done"] < items_per_epoch else 0
