"""sha256s: of a file, read in chunks (what runs, weights and prepared data are identified by),
and of arrays in memory (a split a run trains on)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def arrays_sha256(*arrays: Any) -> str:
    """One digest of the arrays' (numpy or CPU torch) dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array.cpu().numpy() if hasattr(array, "cpu") else array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()
