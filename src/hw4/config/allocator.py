"""glibc's malloc told to keep the memory a process frees, so training steps reuse it.

Torch allocates every CPU tensor with malloc and frees it when the last reference goes. glibc
serves a block over its mmap threshold (128 KiB, rising with use to at most 32 MiB) with a
fresh mmap and unmaps it when freed, and gives the heap's free top back to the kernel once it
exceeds 128 KiB. A training step's activations and gradients (the demo CNN's 29 MB im2row
matrix, its 13 MB feature maps) are such blocks: every step they come back as new pages, and
the kernel zeroes and maps each on its first write, a page fault per 4 KiB. With both
thresholds raised, freed blocks stay in the process and the next step takes them back.

Only where memory comes from changes, never a number (`benchmarks/bench_allocator.py`
measures the stages both ways). The cost is that a process keeps its peak memory until it
exits: `HW4_MALLOC=default` in the environment leaves glibc's defaults. Without glibc (macOS,
musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import os

# mallopt's parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap; larger ones, rarer than a training step's tensors, are
# still mapped and unmapped.
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 2**31 - 1  # never trim: mallopt takes an int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the workers it forks).
    Whether glibc took both; False without glibc, or with `HW4_MALLOC=default` set."""
    if os.environ.get("HW4_MALLOC") == "default":
        return False
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> ctypes.CDLL | None:
    """The C library this Python runs on, if it is glibc (musl's mallopt does nothing)."""
    libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None
