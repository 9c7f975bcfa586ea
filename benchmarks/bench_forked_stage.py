"""A process that stays up, measured before it is built: what a stage would cost outside its
training if it were forked from a process that has imported the libraries already, beside the
stage as DVC runs it today.

    .venv/bin/python benchmarks/bench_forked_stage.py [--repeats 5]

The stage is bench_startup.py's (`python -m hw4 mlp --hidden 16`: one epoch of tiny digits,
its MLflow run and model) in a scratch directory. Per repeat, one after the other: the stage as
a process of its own, then the same command in a child forked from a process that has imported
torch, Lightning, MLflow with its SQLAlchemy store and the stage's modules (started once, not
timed). It prints medians, and the threads the importing process holds when it forks: a child
gets copies of their locks but not the threads, which is why no stage runs this way yet
(docs/benchmarks.md, "Start-up"). It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_startup import POINT_RECORD, scratch, stage
from side_by_side import REPO

# Reads a line per run from stdin; answers "<seconds> <wait status>" for a forked stage.
FORKING = """
import os, sys, time
from hw4.config.allocator import keep_freed_memory
keep_freed_memory()
import torch, pytorch_lightning, mlflow, mlflow.pyfunc, mlflow.store.tracking.sqlalchemy_store
import hw4.cli, hw4.stages.mlp, hw4.serving.image_classifier
print(len(os.listdir("/proc/self/task")), flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            hw4.cli.main(["mlp", "--hidden", "16"])
        except SystemExit as stop:
            hw4.cli.exit_now(stop.code)
        hw4.cli.exit_now(0)
    status = os.waitpid(pid, 0)[1]
    print(f"{time.perf_counter() - start} {status}", flush=True)
"""


def forked(process: subprocess.Popen, cwd: Path) -> tuple[float, float]:
    """(wall, outside training) of one forked run."""
    process.stdin.write("run\n")
    process.stdin.flush()
    seconds, status = process.stdout.readline().split()
    if int(status) != 0:
        raise SystemExit(f"the forked stage ended with wait status {status}")
    wall = float(seconds)
    return wall, wall - json.loads((cwd / POINT_RECORD).read_text())["train_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="hw4-forked-") as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "conf", root / "conf")
        env = scratch(root, None)
        stage(root, env)  # the store's tables and a first model, not timed
        process = subprocess.Popen([sys.executable, "-c", FORKING], cwd=root, env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            threads = int(process.stdout.readline())
            for _ in range(args.repeats):
                for label, (wall, outside) in (("its own process", stage(root, env)), ("forked", forked(process, root))):
                    rows.setdefault(f"stage, {label}: wall", []).append(wall)
                    rows.setdefault(f"stage, {label}: outside training", []).append(outside)
        finally:
            process.stdin.close()
            process.wait(timeout=60)
    print(f"median of {args.repeats}, seconds; the importing process held {threads} threads when it forked")
    print("| stage | seconds |\n|---|---|")
    for row, times in rows.items():
        print(f"| {row} | {statistics.median(times):.2f} |")
    own, fork = (statistics.median(rows[f"stage, {label}: outside training"]) for label in ("its own process", "forked"))
    print(f"outside training, forked / its own process: {fork / own:.2f}")


if __name__ == "__main__":
    main()
