"""The demo's CNN stages, another commit's code and demo settings against this code's, side by side.

    .venv/bin/python benchmarks/bench_cnn.py --baseline d0f7feb [--seeds 0 1 2] [--impls torch scratch]

Each code runs `python -m hw4 cnn --impl I --seed K` as `dvc repro` runs it (a process per
run, MLflow's SQLite store, bytecode on) in a scratch directory of its own, with the
params.yaml its own `python -m hw4 compose profile=demo` writes: the baseline's `src/` and
`conf/` come from `git archive`, so each side trains with the settings its commit's demo
used. Both train on the same prepared Fashion-MNIST (`download` + `prepare` of the demo, from
the Debian package `dataset-fashion-mnist`). Per (impl, seed) the two codes run one after the
other, so a busy machine slows both alike. The table gives each run's `train_time_s` (the
fit, validation included: what the stage records) and test accuracy, and the ratios.

It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from side_by_side import demo_codes, run_timed


def cnn(cwd: Path, env: dict, impl: str, seed: int) -> dict:
    """The run's record: its DVC metrics file, and the whole record where the code writes one
    apart (results/; the metrics file held everything in older code)."""
    run_timed([sys.executable, "-m", "hw4", "cnn", "--impl", impl, "--seed", str(seed)], cwd, env)
    files = [cwd / f"{folder}/cnn/{impl}/seed{seed}.json" for folder in ("metrics", "results")]
    return {k: v for f in files if f.is_file() for k, v in json.loads(f.read_text()).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="d0f7feb", help="the commit to compare against (default: d0f7feb)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--impls", nargs="+", default=["torch", "scratch"], choices=["torch", "scratch"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw4-cnn-") as tmp:
        codes = demo_codes(args.baseline, Path(tmp), args.seeds)
        rows = []
        for impl in args.impls:
            for seed in args.seeds:
                base, new = (cnn(cwd, env, impl, seed) for cwd, env in codes.values())
                rows.append((impl, seed, base, new))
                print(f"{impl} seed {seed}: {base['train_time_s']:.1f} s {base['test/acc']:.4f} -> "
                      f"{new['train_time_s']:.1f} s {new['test/acc']:.4f}", flush=True)
    print(f"\n{os.cpu_count()} CPUs; torch {torch.__version__}; train_time_s and test/acc of `python -m hw4 cnn` per run")
    print(f"| impl | seed | {args.baseline}: train s | test acc | this code: train s | test acc | time ratio |")
    print("|---|---|---|---|---|---|---|")
    for impl, seed, base, new in rows:
        print(f"| {impl} | {seed} | {base['train_time_s']:.1f} | {base['test/acc']:.4f} | {new['train_time_s']:.1f} | "
              f"{new['test/acc']:.4f} | {new['train_time_s'] / base['train_time_s']:.2f} |")
    for impl in args.impls:
        mine = [(b, n) for i, _, b, n in rows if i == impl]
        if len(mine) > 1:
            mean = lambda side, key: statistics.mean(pair[side][key] for pair in mine)  # noqa: E731
            print(f"| {impl} | mean | {mean(0, 'train_time_s'):.1f} | {mean(0, 'test/acc'):.4f} | "
                  f"{mean(1, 'train_time_s'):.1f} | {mean(1, 'test/acc'):.4f} | "
                  f"{mean(1, 'train_time_s') / mean(0, 'train_time_s'):.2f} |")


if __name__ == "__main__":
    main()
