"""Data path: the project's in-memory training batches against torchvision's FashionMNIST.

    .venv/bin/python benchmarks/bench_data.py [--raw data/raw/fashion_mnist]

Both read the same Fashion-MNIST files and yield normalised float batches of 100 for a
training epoch: torchvision builds a PIL image per sample (`ToTensor` in a `DataLoader`),
the project gathers each batch by index from uint8 tensors and normalises the batch
(`hw4.data.loaders.mnist_batches.normalise`, as the stages do).
Prints samples/s of each and the ratio; asserts nothing about time. Target (issue 3): >= 40x.
"""

from __future__ import annotations

import argparse
import gzip
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from hw4.data.formats.mnist import load_split
from hw4.data.loaders.batches import TensorBatches
from hw4.data.loaders.batches import normalise

BATCH = 100


def torchvision_epoch(root: Path, limit: int) -> float:
    ds = datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(ds, batch_size=BATCH, shuffle=True)
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        images.sub_(0.286).div_(0.353)
        n += len(images)
        if n >= limit:
            break
    return n / (time.perf_counter() - start)


def project_epoch(images: torch.Tensor, labels: torch.Tensor) -> float:
    loader = TensorBatches((images, labels), batch_size=BATCH, shuffle=True)
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        normalise(x, 0.286, 0.353)
        n += len(x)
    return n / (time.perf_counter() - start)


def torchvision_layout(raw: Path, root: Path) -> None:
    """torchvision reads <root>/FashionMNIST/raw/<name> (decompressed)."""
    target = root / "FashionMNIST" / "raw"
    target.mkdir(parents=True)
    for gz in raw.glob("*-ubyte.gz"):
        with gzip.open(gz) as src, (target / gz.name[:-3]).open("wb") as dst:
            shutil.copyfileobj(src, dst)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", type=Path, default=Path("data/raw/fashion_mnist"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torchvision-samples", type=int, default=20000, help="torchvision is slow: time this many")
    args = parser.parse_args()
    images, labels = load_split(args.raw, "train")
    with tempfile.TemporaryDirectory() as tmp:
        torchvision_layout(args.raw, Path(tmp))
        tv = [torchvision_epoch(Path(tmp), args.torchvision_samples) for _ in range(args.repeats)]
    ours = [project_epoch(images, labels) for _ in range(args.repeats)]
    t, o = statistics.median(tv), statistics.median(ours)
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; batch {BATCH}, median of {args.repeats}")
    print(f"{'path':<44} {'samples/s':>12}")
    print(f"{'torchvision FashionMNIST + ToTensor + DataLoader':<44} {t:>12,.0f}")
    print(f"{'hw4 TensorBatches (uint8 gather + batch norm)':<44} {o:>12,.0f}")
    print(f"ratio: {o / t:.0f}x")


if __name__ == "__main__":
    main()
