"""glibc's malloc told to keep the memory a process frees, so training steps reuse it.

Torch allocates every CPU tensor with malloc and frees it when the last reference goes. glibc
serves a block over its mmap threshold (128 KiB, rising with use to at most 32 MiB) with a
fresh mmap and unmaps it when freed, and gives the heap's free top back to the kernel once it
exceeds 128 KiB. A training step's activations and gradients (the demo CNN's 29 MB im2row
matrix, its 13 MB feature maps) are such blocks: every step they come back as new pages, and
the kernel zeroes and maps each on its first write, a page fault per 4 KiB. With both
thresholds raised, freed blocks stay in the process and the next step takes them back.

Only where memory comes from changes, never a number: on the 2-core AMD EPYC the demo CNN's
training step takes about 0.6x the time for torch's layers and 0.75x for the scratch ones
(`benchmarks/bench_allocator.py`). The cost is that a process keeps its peak memory until it
exits. Without glibc (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes

# mallopt's parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap (glibc's upper limit for the threshold is far above);
# larger ones, rarer than a training step's tensors, are still mapped and unmapped.
MMAP_THRESHOLD = 256 * 2**20
TRIM_THRESHOLD = 2**31 - 1  # never trim: mallopt takes an int


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the workers it forks).
    Whether glibc took both."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> ctypes.CDLL | None:
    """The C library this Python runs on, if it is glibc (musl's mallopt does nothing)."""
    libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None
