"""Checkpoints written whole or not at all, and read only when whole.

Lightning's own local write goes through fsspec's temporary file in the system's temp folder,
moved into place by copying when that is another file system, and never flushed to disk: a
kill or a full disk can leave half a `last.ckpt`, from which every later resume fails.
`AtomicCheckpointIO` (Lightning's `CheckpointIO` plugin, installed by `build_trainer`) writes
beside the destination, flushes and renames (`hw4.io.atomic`), so a reader sees the previous
checkpoint or the new one. `checkpoint_to_resume` checks a checkpoint before Lightning loads
it: one that cannot be read (torn by an older writer, or by hand) is moved aside, and the
stage starts over instead of failing on every later attempt.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from hw4.io import atomic
from hw4.tracking.runs import ResumeState, is_global_rank_zero

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
        return f"not a complete checkpoint ({e})"
    return f"its entry {bad} is damaged (CRC mismatch)" if bad else None


def checkpoint_to_resume(resume: ResumeState, phash: str) -> Path | None:
    """The checkpoint a restarted stage continues from, or None to start over. Decided from
    files alone, so every DDP rank reaches the same answer; only rank 0 moves a file."""
    if is_global_rank_zero():
        atomic.clear_parts(resume.checkpoint)  # what a kill mid-write left; never read
    if resume.resumable_run(phash) is None:
        return None
    problem = unreadable(resume.checkpoint)
    if problem is None:
        return resume.checkpoint
    if is_global_rank_zero():
        aside = resume.checkpoint.with_name(resume.checkpoint.name + UNREADABLE_SUFFIX)
        os.replace(resume.checkpoint, aside)
        print(f"resume: {resume.checkpoint} is {problem}; moved aside to {aside}, the stage starts over",
              file=sys.stderr, flush=True)
    return None
