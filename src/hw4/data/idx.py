"""IDX files (the MNIST family's format), read with every field checked.

Layout: two zero bytes, a type byte, a dimension count, one big-endian uint32 per
dimension, then exactly prod(dims) elements, big-endian, row-major. Gzip is detected by
its magic bytes, so `.gz` and plain files both work. Every error names the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

# type byte -> big-endian numpy dtype
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
    """A file that is not a well-formed IDX file."""


def read_idx(path: Path) -> torch.Tensor:
    """The array in an IDX file (optionally gzipped) as a tensor of its own shape and type."""
    path = Path(path)
    return parse_idx(_read_bytes(path), path.name)


def parse_idx(data: bytes, name: str) -> torch.Tensor:
    dtype, dims = _header(data, name)
    header_size = 4 + 4 * len(dims)
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        what = "truncated" if actual < expected else "trailing bytes"
        shape = "x".join(map(str, dims))
        raise IdxError(
            f"{name}: {what}: header says {shape} = {expected} bytes of data, file has {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    # Native byte order (torch has no big-endian tensors); astype copies, so the tensor is writable.
    return torch.from_numpy(array.astype(dtype.newbyteorder("=")))


def _header(data: bytes, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    if len(data) < 4:
        raise IdxError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, type_byte, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IdxError(f"{name}: bad magic {data[:4].hex()}: the first two bytes must be zero")
    if type_byte not in IDX_TYPES:
        known = ", ".join(f"0x{t:02X}" for t in IDX_TYPES)
        raise IdxError(f"{name}: unknown element type 0x{type_byte:02X} (known: {known})")
    if ndim == 0:
        raise IdxError(f"{name}: the header declares 0 dimensions")
    if len(data) < 4 + 4 * ndim:
        raise IdxError(f"{name}: truncated header: {ndim} dimensions need {4 + 4 * ndim} bytes, file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return IDX_TYPES[type_byte], dims


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise IdxError(f"{path}: no such file")
    data = path.read_bytes()
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path.name}: not a valid gzip file: {e}") from e
