"""Training throughput of the two transfer modes, in images per second, on the CPU and on a
GPU when one is at hand.

    .venv/bin/python benchmarks/bench_transfer.py [--image-sizes 224 64] [--batch-size 4] [--rounds 6] [--threads N]

One step = forward, cross-entropy, backward and SGD step on random images (B, 3, S, S):
the network's cost alone, without JPEG decoding and augmentation (the DataLoader's work).
Both modes are set up by the stage's own code (TransferClassifier's optimizer, and
FreezeBackbone for `freeze`); `finetune` is the baseline measured in the same run, and
evaluation (forward only, as in the validation loop) is shown for reference. The candidates
are timed in alternation, round after round, and the median is reported, so load from other
processes hits them alike. Nothing about time is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from hw4.models.resnet import ResNet18Config, resnet18_classifier
from hw4.training.tracked_module import OptimSettings
from hw4.training.transfer_module import FreezeBackbone, TransferClassifier


def build(mode: str, device: torch.device) -> tuple[TransferClassifier, torch.optim.Optimizer]:
    torch.manual_seed(0)
    module = TransferClassifier(resnet18_classifier(ResNet18Config(2)), OptimSettings("sgd", lr=1e-3, momentum=0.9), 7, 0.1, 2).to(device)
    if mode == "freeze":
        freeze = FreezeBackbone()
        freeze.setup(None, module, "fit")  # as the Trainer does, before configure_optimizers
        freeze.on_train_epoch_start(None, module)
    [optimizer], _ = module.configure_optimizers()
    return module, optimizer


def train_step(module: TransferClassifier, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(module(x), y).backward()
        optimizer.step()

    return step


def eval_step(module: TransferClassifier, x: torch.Tensor) -> Callable[[], None]:
    @torch.no_grad()
    def step() -> None:
        module.eval()
        module(x)
        module.train()

    return step


def median_seconds(candidates: dict[str, Callable[[], None]], rounds: int, device: torch.device, warmup: int = 2) -> dict[str, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(device: torch.device, image_size: int, batch_size: int, rounds: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=g).to(device)
    y = (torch.arange(batch_size) % 2).to(device)
    finetune, freeze = build("finetune", device), build("freeze", device)
    candidates = {
        "finetune (baseline)": train_step(*finetune, x, y),
        "freeze": train_step(*freeze, x, y),
        "eval, forward only": eval_step(finetune[0], x),
    }
    seconds = median_seconds(candidates, rounds, device)
    base = seconds["finetune (baseline)"]
    print(f"\n{device.type}, images ({batch_size}, 3, {image_size}, {image_size}), median of {rounds} rounds")
    print(f"{'step':22s} {'ms/batch':>9s} {'images/s':>9s} {'vs finetune':>12s}")
    for name, s in seconds.items():
        print(f"{name:22s} {1e3 * s:9.1f} {batch_size / s:9.1f} {base / s:11.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[224, 64], help="224: the real recipe; 64: the demo")
    parser.add_argument("--batch-size", type=int, default=4, help="the tutorial's 4")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads{gpu}")
    for device in devices:
        for size in args.image_sizes:
            table(device, size, args.batch_size, args.rounds)


if __name__ == "__main__":
    main()
