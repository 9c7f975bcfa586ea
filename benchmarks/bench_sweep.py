"""The demo's MLP sweep, another commit's code and demo settings against this code's, side by side.

    .venv/bin/python benchmarks/bench_sweep.py --baseline d0f7feb [--seeds 0 1 2]

Each code runs the sweep as `dvc repro` runs it: `python -m hw4 mlp --hidden H --seed K` for
every size and seed (a process each, MLflow's SQLite store, bytecode on), then `mlp_select`
and `mlp_final --seed K`, in a scratch directory with the params.yaml its own `compose
profile=demo` writes (benchmarks/side_by_side.py). The two codes alternate point by point, so
a busy machine slows both alike. It prints, per code: the sweep's training time (the points'
`train_time_s`) and wall time (their processes), the mean validation accuracy per size, the
choice and `mlp_select`'s verdict, and the final runs' test accuracy; then the ratios.

The sweep's quality is the choice: which size, how far above the others, whether the seeds
tell it apart (the verdict), and what the chosen size scores on the test set once retrained.
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
import yaml
from side_by_side import demo_codes, run_timed


def point(cwd: Path, env: dict, hidden: int, seed: int) -> tuple[float, float, float]:
    """(wall s, train s, val acc) of one sweep point."""
    wall = run_timed([sys.executable, "-m", "hw4", "mlp", "--hidden", str(hidden), "--seed", str(seed)], cwd, env)
    record = json.loads((cwd / f"results/mlp/points/h{hidden}/seed{seed}.json").read_text())
    return wall, record["train_time_s"], record["val/acc"]


def finish(cwd: Path, env: dict, seeds: list[int]) -> tuple[dict, list[dict]]:
    """The selection's record and each seed's final run's."""
    run_timed([sys.executable, "-m", "hw4", "mlp_select"], cwd, env)
    finals = []
    for seed in seeds:
        run_timed([sys.executable, "-m", "hw4", "mlp_final", "--seed", str(seed)], cwd, env)
        finals.append(json.loads((cwd / f"results/mlp/final/seed{seed}.json").read_text()))
    return json.loads((cwd / "results/mlp/select.json").read_text()), finals


def settings(cwd: Path) -> str:
    mlp = yaml.safe_load((cwd / "params.yaml").read_text())["mlp"]
    optim = mlp["optim"]
    schedule = optim.get("schedule", "exponential")
    rate = f"lr {optim['lr']}" + (f" decay {optim['lr_decay']}" if schedule == "exponential" else " one-cycle")
    return f"{mlp['epochs']} epochs, batch {mlp['batch_size']}, {optim['name']} {rate}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="d0f7feb", help="the commit to compare against (default: d0f7feb)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw4-sweep-") as tmp:
        codes = demo_codes(args.baseline, Path(tmp), args.seeds)
        sizes = yaml.safe_load((codes["this code"][0] / "params.yaml").read_text())["mlp"]["hidden_sizes"]
        wall = {code: 0.0 for code in codes}
        train = {code: 0.0 for code in codes}
        val: dict[str, dict[int, list[float]]] = {code: {h: [] for h in sizes} for code in codes}
        for seed in args.seeds:
            for hidden in sizes:
                for code, (cwd, env) in codes.items():
                    w, t, v = point(cwd, env, hidden, seed)
                    wall[code] += w
                    train[code] += t
                    val[code][hidden].append(v)
            print(f"seed {seed}: " + "; ".join(f"{code} {train[code]:.1f} s of training" for code in codes), flush=True)
        done = {code: finish(cwd, env, args.seeds) for code, (cwd, env) in codes.items()}
        described = {code: settings(cwd) for code, (cwd, _) in codes.items()}
    print(f"\n{os.cpu_count()} CPUs; torch {torch.__version__}; seeds {args.seeds}; the points' processes, MLflow on")
    print(f"| | {' | '.join(codes)} | ratio |")
    print("|---|---|---|---|")
    base, new = codes
    print(f"| settings | {described[base]} | {described[new]} | |")
    print(f"| sweep training s | {train[base]:.1f} | {train[new]:.1f} | {train[new] / train[base]:.2f} |")
    print(f"| sweep wall s | {wall[base]:.1f} | {wall[new]:.1f} | {wall[new] / wall[base]:.2f} |")
    for hidden in sizes:
        print(f"| val acc, {hidden} units | {statistics.mean(val[base][hidden]):.4f} | {statistics.mean(val[new][hidden]):.4f} | |")
    for key, label in (("hidden", "chosen size"), ("val/acc", "its mean val acc"), ("verdict", "verdict")):
        cell = {code: done[code][0][key] for code in codes}
        cell = {code: f"{v:.4f}" if isinstance(v, float) else v for code, v in cell.items()}
        print(f"| {label} | {cell[base]} | {cell[new]} | |")
    test = {code: [r["test/acc"] for r in done[code][1]] for code in codes}
    final_s = {code: sum(r["train_time_s"] for r in done[code][1]) for code in codes}
    print("| final test acc (" + " / ".join(f"seed {s}" for s in args.seeds) + ") | "
          + " | ".join(f"{statistics.mean(test[c]):.4f} (" + " / ".join(f"{a:.4f}" for a in test[c]) + ")" for c in codes) + " | |")
    print(f"| final training s | {final_s[base]:.1f} | {final_s[new]:.1f} | {final_s[new] / final_s[base]:.2f} |")


if __name__ == "__main__":
    main()
