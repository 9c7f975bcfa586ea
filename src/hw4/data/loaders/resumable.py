"""A training DataLoader that a checkpoint taken mid-epoch can resume, with augmentations drawn
per image and epoch.

Lightning resumes a fit stopped mid-epoch (hw4.training.preemption) after the step it
stopped at, but a plain DataLoader would start the epoch's order again: the resumed part would
train on images already seen and never reach the rest. `ResumableLoader` follows the protocol
of `TensorBatches` (`set_epoch`, `items_done`, `state_dict` / `load_state_dict`) and starts a
resumed epoch after the batches trained before the checkpoint.

Random augmentations draw from torch's generator, which each loader worker seeds on its own:
which crop an image gets would depend on the number of workers, on the order they were
scheduled in, and on whether the epoch was resumed. `EpochOrder` hands the dataset (index,
epoch) pairs instead of indices, and `seeded_draws` seeds each image's draws from
(seed, epoch, index): the same crops and flips with any workers, resumed or not.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler

from hw4.data.loaders.batches import items_to_skip


class EpochOrder(DistributedSampler):
    """DistributedSampler's order (a permutation drawn from seed + epoch; this rank's share) as
    (index, epoch) pairs, leaving out the first `skip` indices of the next epoch it starts."""

    skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(super().__iter__())[self.skip :]
        self.skip = 0
        return iter([(i, self.epoch) for i in order])


@contextmanager
def seeded_draws(seed: int, epoch: int, index: int) -> Iterator[None]:
    """torch's CPU generator seeded from (seed, epoch, index) inside, restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(((seed * 1_000_003) + epoch) * 1_000_003 + index)
        yield


class ResumableLoader(DataLoader):
    """A DataLoader over an `EpochOrder` that counts the batches it hands out in an epoch and
    can start the next epoch it iterates after the first `items_done` of a checkpoint's."""

    sampler: EpochOrder

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochOrder):
            raise TypeError(f"ResumableLoader needs an EpochOrder sampler, got {type(self.sampler).__name__}")
        self.items_done = 0  # of this epoch's batches, handed out (at a save mid-epoch: trained on)

    def __iter__(self) -> Iterator:
        self.items_done = self.sampler.skip // self.batch_size  # a resumed epoch's, trained before
        for batch in super().__iter__():
            self.items_done += 1
            yield batch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "items_done": self.items_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip = items_to_skip(state, len(self)) * self.batch_size
