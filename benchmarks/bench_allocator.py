"""The demo's training stages with glibc's default malloc against `keep_freed_memory`, side by side.

    .venv/bin/python benchmarks/bench_allocator.py [--repeats 3] [--epochs 2]

`python -m hw4` raises glibc's mmap and trim thresholds before any command
(hw4.config.allocator); `HW4_MALLOC=default` leaves glibc's defaults. Each stage runs as
`dvc repro` runs it (a process, MLflow's SQLite store) in one scratch directory with the demo's
params (`compose profile=demo`, `--epochs` for the CNNs) and its prepared Fashion-MNIST (the
demo's `download` and `prepare`, from the Debian package `dataset-fashion-mnist`): the CNN with
torch's layers and with the scratch ones, and the sweep's largest MLP point. Per repeat the
two ways alternate, so load hits both alike. The table gives the medians of the stage's
`train_time_s` (its fit with validation), the process's minor page faults (getrusage of the
child) and the ratio kept / default.

It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from side_by_side import REPO, code_env, run_timed

STAGES = {  # label -> (command, its record)
    "cnn, torch layers": (["cnn", "--impl", "torch", "--seed", "0"], "results/cnn/torch/seed0.json"),
    "cnn, scratch layers": (["cnn", "--impl", "scratch", "--seed", "0"], "results/cnn/scratch/seed0.json"),
    "mlp, 200 units": (["mlp", "--hidden", "200", "--seed", "0"], "results/mlp/points/h200/seed0.json"),
}


def scratch_repo(root: Path, epochs: int) -> dict:
    shutil.copytree(REPO / "conf", root / "conf")
    env = code_env(root, None)
    overrides = ["profile=demo", "seeds=[0]", "trainer.progress_bar=false", f"cnn.epochs={epochs}"]
    for command in (["compose", "--output", "params.yaml", *overrides], ["download"], ["prepare"]):
        run_timed([sys.executable, "-m", "hw4", *command], root, env)
    return env


def run_stage(root: Path, env: dict, label: str) -> tuple[float, int]:
    """(train_time_s, minor page faults) of one run of the stage, from a clean slate."""
    command, record = STAGES[label]
    for folder in ("checkpoints", "results", "models"):  # no resume: every run trains from the start
        shutil.rmtree(root / folder, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    run_timed([sys.executable, "-m", "hw4", *command], root, env)
    faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before
    return json.loads((root / record).read_text())["train_time_s"], faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="the CNNs' epochs (the demo's: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw4-alloc-") as tmp:
        root = Path(tmp)
        kept = scratch_repo(root, args.epochs)
        ways = {"default": kept | {"HW4_MALLOC": "default"}, "kept": kept}
        print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}, median of {args.repeats}; CNNs {args.epochs} epochs")
        print("| stage | default train s | kept train s | ratio | page faults, default | kept |")
        print("|---|---|---|---|---|---|")
        for label in STAGES:
            runs: dict[str, list[tuple[float, int]]] = {way: [] for way in ways}
            for _ in range(args.repeats):
                for way, env in ways.items():
                    runs[way].append(run_stage(root, env, label))
            s = {way: statistics.median(t for t, _ in r) for way, r in runs.items()}
            f = {way: statistics.median(n for _, n in r) for way, r in runs.items()}
            print(f"| {label} | {s['default']:.1f} | {s['kept']:.1f} | {s['kept'] / s['default']:.2f} | "
                  f"{f['default']:,.0f} | {f['kept']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
