"""Writes that a crash cannot leave half-done: a later step reads the old file or the new one.

Bytes go to a temporary file beside the destination (same directory, so same file system),
which is flushed to disk and then moved over the destination with `os.replace`, an atomic
rename. A process killed mid-write leaves at most a stale `.<name>.part-*` file, never a
truncated `<name>`.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def part_prefix(path: Path) -> str:
    """The name prefix of `path`'s temporary files (the download stage clears stale ones)."""
    return f".{Path(path).name}.part-"


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A fresh temporary path to write; moved onto `path` when the block ends without error,
    removed when it raises (a kill leaves it behind, under `part_prefix(path)`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{part_prefix(path)}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def clear_parts(path: Path) -> None:
    """Remove the temporary files a killed writer left for `path` (one writer at a time)."""
    path = Path(path)
    for stale in path.parent.glob(part_prefix(path) + "*"):
        stale.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _fsync(path: Path) -> None:
    # Without it a power cut right after the rename can leave the new name with no data.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
