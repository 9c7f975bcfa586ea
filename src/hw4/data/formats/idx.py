"""IDX files (the MNIST family's format), read with every field checked.

Layout: two zero bytes, a type byte, a dimension count, one big-endian uint32 per
dimension, then exactly prod(dims) elements, big-endian, row-major. Gzip is detected by
its magic bytes, so `.gz` and plain files both work. Given the size the content must have
(the registry's `content_size`), decompression stops there: a gzip bomb is refused, not
unpacked into memory. Every error names the file.
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
IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension (N,)
_CHUNK = 1 << 20


class IdxError(ValueError):
    """A file that is not a well-formed IDX file."""


def read_idx(path: Path, magic: int | None = None, max_bytes: int | None = None) -> torch.Tensor:
    """The array in an IDX file (optionally gzipped) as a tensor of its own shape and type.

    `magic`: the first four bytes it must have (IMAGES_MAGIC, ...); `max_bytes`: the most its
    (decompressed) content may hold."""
    path = Path(path)
    return parse_idx(_read_bytes(path, max_bytes), path.name, magic)


def parse_idx(data: bytes, name: str, magic: int | None = None) -> torch.Tensor:
    if magic is not None and len(data) >= 4 and struct.unpack(">I", data[:4])[0] != magic:
        # Checked first: a wrong type or dimension count makes the sizes below nonsense.
        found = struct.unpack(">I", data[:4])[0]
        raise IdxError(
            f"{name}: bad magic: expected 0x{magic:08X} ({_describe_magic(magic)}), found 0x{found:08X} "
            f"({_describe_magic(found)}); not the IDX file this should be (images and labels swapped, or another file?)"
        )
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


def _describe_magic(magic: int) -> str:
    zero, type_byte, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zero:
        return "not an IDX header: the first two bytes must be zero"
    dtype = IDX_TYPES.get(type_byte)
    return f"{dtype.name if dtype is not None else f'unknown type 0x{type_byte:02X}'}, {ndim} dimension(s)"


def _read_bytes(path: Path, max_bytes: int | None) -> bytes:
    if not path.is_file():
        raise IdxError(f"{path}: no such file")
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    if not gzipped:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise IdxError(f"{path.name}: {path.stat().st_size} bytes, more than the {max_bytes} an IDX file of it may hold")
        return path.read_bytes()
    try:
        return _gunzip(path, max_bytes)
    except (OSError, EOFError, zlib.error) as e:
        raise IdxError(f"{path.name}: not a valid gzip file: {e}") from e


def _gunzip(path: Path, max_bytes: int | None) -> bytes:
    """The decompressed content, in chunks, refused as soon as it passes `max_bytes`."""
    parts, size = [], 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise IdxError(
                    f"{path.name}: decompresses to more than {max_bytes} bytes, the size recorded for it "
                    f"(a gzip bomb, or another file); run the download stage to replace it"
                )
            parts.append(chunk)
    return b"".join(parts)
