"""Framework overhead: the Lightning MLP stage against a plain PyTorch loop, same process.

    .venv/bin/python benchmarks/bench_lightning.py [--data data/prepared/mnist_family.pt]

Both sides train the same MLP (784-100-10 by default) with the same optimiser, batch size
and in-memory data; the Lightning side is the stage's real path (ImageClassifier, its
torchmetrics, TensorBatches, the MLflow logger writing to a throwaway SQLite store), with
the stage's `steps_per_call` optimiser steps per training_step and with one.
Also times `BareStep`, the plain step inside a bare Trainer at one step per call: what the
stage could reach without sharing Lightning's per-call cost. Prints training samples/s and
the ratios to the plain loop; asserts nothing about time.
Targets (issue 3): ratio >= 0.75 at batch 100 and >= 0.9 at batch 500.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback

from hw4.config.compose import default_params
from hw4.config.settings import section
from hw4.data.loaders.batches import normalise
from hw4.data.loaders.mnist_batches import MnistFamilyData, load_prepared
from hw4.models.mlp import MLP, MLPConfig
from hw4.tracking.runs import StageRun
from hw4.training.image_classifier import ImageClassifier
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import TrainerSettings, build_trainer

OPTIM = OptimSettings(name="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, lr_decay=0.95)
STAGE_TRAINER = replace(section(default_params(), "trainer", TrainerSettings),  # else as in conf/
                        accelerator="cpu", devices=1, progress_bar=False, numerics="fast")


def plain_loop(data: dict, hidden: int, batch_size: int, epochs: int) -> float:
    """samples/s of the textbook loop on the same uint8 tensors, with the stage's per-batch
    work (the same gather and normalisation), so the ratio is the framework's overhead.
    Torch's deterministic algorithms are as the stage's Trainer sets them for the process
    (on: NaN-filled fresh tensors cost ~3% on this CPU), whichever side ran before."""
    torch.use_deterministic_algorithms(STAGE_TRAINER.deterministic)
    torch.manual_seed(0)
    net = MLP(MLPConfig(hidden=hidden))
    opt = torch.optim.SGD(net.parameters(), lr=OPTIM.lr, momentum=OPTIM.momentum)
    x, y = data["train_x"], data["train_y"]
    train = x.float().div(255)
    mean, std = train.mean().item(), train.std().item()
    steps = len(x) // batch_size
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            logits = net(normalise(x.index_select(0, idx), mean, std).unsqueeze(1))
            loss = F.cross_entropy(logits, y.index_select(0, idx).long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epochs * steps * batch_size / (time.perf_counter() - start)


class TrainingClock(Callback):
    """Marks the first training step's start: `fit`'s one-off setup before it (moving the
    data, creating the logger's run), which the plain loop lacks, is not timed; everything
    after it is, to `fit`'s return: every per-step and per-epoch cost of the stage, and the
    metrics its logger writes when fit ends."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def lightning_stage(path: Path, hidden: int, batch_size: int, epochs: int, steps_per_call: int) -> float:
    data = MnistFamilyData(path, batch_size, steps_per_call=steps_per_call)
    module = ImageClassifier(MLP(MLPConfig(hidden=hidden)), OPTIM, data.mean, data.std)
    clock = TrainingClock()
    with StageRun("bench", "bench", {"batch_size": batch_size}) as run:
        trainer = build_trainer(STAGE_TRAINER, run, epochs, callbacks=[clock], limit_val_batches=0)
        trainer.fit(module, datamodule=data)
        elapsed = clock.elapsed()
    steps = len(data.data["train_x"]) // batch_size
    return epochs * steps * batch_size / elapsed


class BareStep(pl.LightningModule):
    """The least a Lightning stage can do per step: the plain loop's step (same gather,
    normalisation and bare optimizer) inside `training_step`, no metrics, no logging, and
    no `manual_backward` or Lightning optimizer (which the stage needs for mixed precision
    and for counting `global_step`). Its ratio to the plain loop is Lightning's floor here."""

    def __init__(self, net: torch.nn.Module, mean: float, std: float):
        super().__init__()
        self.net, self.mean, self.std = net, mean, std
        self.automatic_optimization = False

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = (t.squeeze(0) for t in batch)  # one step per call: (1, B, ...)
        loss = F.cross_entropy(self.net(normalise(images, self.mean, self.std).unsqueeze(1)), labels.long())
        opt = self.optimizers().optimizer
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=OPTIM.lr, momentum=OPTIM.momentum)


def lightning_floor(path: Path, hidden: int, batch_size: int, epochs: int) -> float:
    data = MnistFamilyData(path, batch_size)
    clock = TrainingClock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, callbacks=[clock],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, num_sanity_val_steps=0, deterministic=STAGE_TRAINER.deterministic)
    trainer.fit(BareStep(MLP(MLPConfig(hidden=hidden)), data.mean, data.std), datamodule=data)
    elapsed = clock.elapsed()
    steps = len(data.data["train_x"]) // batch_size
    return epochs * steps * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("data/prepared/mnist_family.pt"))
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps-per-call", type=int, default=default_params()["mlp"]["steps_per_call"], help="the stage's; default as in conf/")
    args = parser.parse_args()
    data = load_prepared(args.data)
    k = args.steps_per_call
    sides = {  # name -> samples/s of one timed run
        "plain": lambda b: plain_loop(data, args.hidden, b, args.epochs),
        f"stage k={k}": lambda b: lightning_stage(args.data, args.hidden, b, args.epochs, k),
        "stage k=1": lambda b: lightning_stage(args.data, args.hidden, b, args.epochs, 1),
        "floor k=1": lambda b: lightning_floor(args.data, args.hidden, b, args.epochs),
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/bench.db"
        print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
        print(f"# MLP 784-{args.hidden}-10, {len(data['train_x'])} samples, {args.epochs} epochs, median of {args.repeats};"
              " k = optimiser steps per training_step; samples/s (ratio to plain)")
        print(f"{'batch':>6}" + "".join(f"{name:>22}" for name in sides))
        for batch_size in (100, 500):
            timings: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.repeats):  # interleaved, so machine noise hits all alike
                for name, side in sides.items():
                    timings[name].append(side(batch_size))
            medians = {name: statistics.median(t) for name, t in timings.items()}
            cells = [f"{m:>13,.0f} ({m / medians['plain']:.2f})" for m in medians.values()]
            print(f"{batch_size:>6}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
