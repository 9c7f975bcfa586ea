"""Checkpoints written whole or not at all, and read only when whole.

Lightning's own local write goes through fsspec's temporary file in the system's temp folder,
moved into place by copying when that is another file system, and never flushed to disk: a
kill or a full disk can leave half a `last.ckpt`, from which every later resume fails.
`AtomicCheckpointIO` (Lightning's `CheckpointIO` plugin, installed by `build_trainer`) writes
beside the destination, flushes and renames (`hw4.io.atomic`), so a reader sees the previous
checkpoint or the new one. `checkpoint_to_resume` checks a checkpoint before Lightning loads
it: one that cannot be read (torn by an older writer, or by hand) or whose weights do not fit
the network the code builds now is moved aside, and the stage starts over instead of failing
on every later attempt.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torch import nn

from hw4.io import atomic
from hw4.tracking.runs import ResumeState, is_global_rank_zero, say

UNREADABLE_SUFFIX = ".unreadable"  # a checkpoint moved aside: kept for a look, never resumed from


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (local checkpoints only)")
        with atomic.replacing(Path(path)) as tmp:
            torch.save(checkpoint, tmp)


def unreadable(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be loaded, or None. torch.save writes a zip archive:
    a cut one has no central directory, a damaged one fails its CRCs."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as e:
        return f"is not a complete checkpoint ({e})"
    return f"has a damaged entry {bad} (CRC mismatch)" if bad else None


def incompatible(path: Path, make_module: Callable[[], nn.Module]) -> str | None:
    """Why the weights saved at `path` do not fit the module the code builds now (a killed run,
    then an edit of the network with the same params), or None."""
    with torch.random.fork_rng(devices=[]):  # a throwaway module: the real one's initial weights stay the seed's
        expected = {k: tuple(v.shape) for k, v in make_module().state_dict().items()}
    saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # our own file: Lightning's state
    found = {k: tuple(v.shape) for k, v in saved.get("state_dict", {}).items()}
    differ = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
    return f"was made by other code: its weights do not fit this network ({', '.join(differ[:3])})" if differ else None


def checkpoint_to_resume(resume: ResumeState, phash: str, make_module: Callable[[], nn.Module]) -> Path | None:
    """The checkpoint a restarted stage continues from, or None to start over. Decided from
    files alone, so every DDP rank reaches the same answer; only rank 0 moves a file."""
    if is_global_rank_zero():
        atomic.clear_parts(resume.checkpoint)  # what a kill mid-write left; never read
    if resume.resumable_run(phash) is None:
        return None
    problem = unreadable(resume.checkpoint) or incompatible(resume.checkpoint, make_module)
    if problem is None:
        return resume.checkpoint
    if is_global_rank_zero():
        aside = resume.checkpoint.with_name(resume.checkpoint.name + UNREADABLE_SUFFIX)
        os.replace(resume.checkpoint, aside)
        say(f"{resume.checkpoint} {problem}; moved aside to {aside}, the stage starts over")
    return None
