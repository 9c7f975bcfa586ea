"""What a process costs outside its work: this code against another commit's, side by side.

    .venv/bin/python benchmarks/bench_startup.py --baseline d0f7feb [--repeats 5]

Each command runs as a user runs it (`python -m hw4 ...`, bytecode on, MLflow's SQLite store)
in a scratch directory per code, the baseline's `src/` (from `git archive`) first on
PYTHONPATH. Per repeat the two codes alternate, so a busy machine slows both alike; the table
gives medians and the ratio new / baseline, beside `python -c 'import torch'` as the floor
every command pays. Commands:

- `hw4 --help`: the command line alone;
- a stage: `hw4 mlp --hidden 16`, one epoch of tiny digits, with MLflow (run, metrics, model).
  "outside training" is the wall time less the record's `train_time_s`;
- `predict` of two 28x28 PNGs, on that stage's model folder and on its `runs:/` URI.

It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hw4.data.standins import digits
from side_by_side import REPO, code_env, extract, run_timed

POINT_RECORD = "results/mlp/points/h16/seed0.json"


def scratch(root: Path, src: Path | None) -> dict:
    """A directory playing the repository for one code (its conf/ already in `root`): tiny
    prepared digits, the params its own `compose` writes, two images."""
    (root / "data/prepared").mkdir(parents=True)
    torch.save(digits.generate(600, 200, 200, 0), root / "data/prepared/mnist_family.pt")
    env = code_env(root, src)
    overrides = ["seeds=[0]", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.progress_bar=false",
                 "trainer.numerics=fast", "trainer.threads=1", "mlp.hidden_sizes=[16]", "mlp.epochs=1",
                 "mlp.batch_size=50", "mlp.eval_batch_size=100"]
    run_timed([sys.executable, "-m", "hw4", "compose", "--output", "params.yaml", *overrides], root, env)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / name)
    return env


def stage(cwd: Path, env: dict) -> tuple[float, float]:
    """(wall, outside training) of one MLP point run."""
    wall = run_timed([sys.executable, "-m", "hw4", "mlp", "--hidden", "16"], cwd, env)
    return wall, wall - json.loads((cwd / POINT_RECORD).read_text())["train_time_s"]


def model_uris(cwd: Path) -> tuple[str, str]:
    """The last point run's model: its folder, and its runs:/ URI."""
    run_id = json.loads((cwd / POINT_RECORD).read_text())["run_id"]
    folder = next(p.parent for p in (cwd / "mlartifacts").rglob("MLmodel") if run_id in (p.parent / "MLmodel").read_text())
    return str(folder), f"runs:/{run_id}/model"


def measure(codes: dict[str, tuple[Path, dict]], repeats: int) -> dict[str, dict[str, list[float]]]:
    rows: dict[str, dict[str, list[float]]] = {}

    def add(row: str, code: str, seconds: float) -> None:
        rows.setdefault(row, {}).setdefault(code, []).append(seconds)

    for cwd, env in codes.values():  # the store's tables and a first model, not timed
        stage(cwd, env)
    for _ in range(repeats):
        for code, (cwd, env) in codes.items():
            add("python -c 'import torch'", code, run_timed([sys.executable, "-c", "import torch"], cwd, env))
            add("python -m hw4 --help", code, run_timed([sys.executable, "-m", "hw4", "--help"], cwd, env, ok=(2,)))  # usage
            wall, outside = stage(cwd, env)
            add("stage (mlp point, 1 epoch): wall", code, wall)
            add("stage: outside training", code, outside)
            folder, run_uri = model_uris(cwd)
            for label, uri in (("model folder", folder), ("runs:/ URI", run_uri)):
                add(f"predict 2 images, {label}", code, run_timed([sys.executable, "-m", "hw4", "predict", uri, "a.png", "b.png"], cwd, env))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="d0f7feb", help="the commit to compare against (default: d0f7feb)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw4-startup-") as tmp:
        codes = {}
        for code in (args.baseline, "this code"):
            root = Path(tmp) / code.replace(" ", "_")
            if code == args.baseline:
                extract(args.baseline, ["src", "conf"], root)
            else:
                shutil.copytree(REPO / "conf", root / "conf")
            codes[code] = (root, scratch(root, root / "src" if code == args.baseline else None))
        rows = measure(codes, args.repeats)
    base, new = args.baseline, "this code"
    print(f"median of {args.repeats}, seconds; {os.cpu_count()} CPUs; torch {torch.__version__}")
    print(f"| command | {base} | this code | ratio |\n|---|---|---|---|")
    for row, times in rows.items():
        b, n = statistics.median(times[base]), statistics.median(times[new])
        print(f"| {row} | {b:.2f} | {n:.2f} | {n / b:.2f} |")


if __name__ == "__main__":
    main()
