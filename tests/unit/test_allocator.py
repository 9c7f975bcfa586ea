"""A process that keeps what it frees: a big block freed stays in the process for the next
allocation instead of going back to the kernel.

Measured in resident memory, which the kernel counts exactly: glibc serves a block of 64 MiB
(over its largest dynamic mmap threshold, 32 MiB) with its own mapping and unmaps it when
freed, so the process's resident memory falls back at once; kept, the block comes from the
heap, which is never trimmed, and stays resident for the next step's tensors. (Page faults
per training step, which this saves, vary with the order glibc's dynamic threshold meets the
steps' tensors in: from thousands to one a step by default. benchmarks/bench_allocator.py
counts them over whole stages.)
"""

from __future__ import annotations

import os
import subprocess
import sys

from hw4.config.allocator import keep_freed_memory

RESIDENT_AFTER_FREE = """
import sys, torch
from hw4.config.allocator import keep_freed_memory

assert keep_freed_memory() == (sys.argv[1] == "kept"), "glibc refused the thresholds, or HW4_MALLOC was ignored"

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

before = resident_mib()
block = torch.empty(16 * 2**20).fill_(1.0)  # 64 MiB, every page written
del block
print(resident_mib() - before)
"""


def resident_after_free(mode: str) -> float:
    """MiB still resident after a 64 MiB tensor is freed; "default" sets HW4_MALLOC=default."""
    env = {k: v for k, v in os.environ.items() if k != "HW4_MALLOC"} | ({"HW4_MALLOC": "default"} if mode == "default" else {})
    out = subprocess.run([sys.executable, "-c", RESIDENT_AFTER_FREE, mode], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout)


def test_a_freed_block_stays_in_the_process():
    default, kept = resident_after_free("default"), resident_after_free("kept")
    assert default < 8, f"glibc's default kept {default:.1f} MiB of a freed 64 MiB block"
    assert kept > 56, f"kept only {kept:.1f} MiB of a freed 64 MiB block"


def test_is_idempotent():
    assert keep_freed_memory() == keep_freed_memory()
