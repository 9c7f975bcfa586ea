"""What portable numerics cost: each training stage in `fast` and in `portable` mode.

    .venv/bin/python benchmarks/bench_numerics.py --data-root DIR   # DIR holds data/prepared (after the demo)

Runs the real stage commands (`python -m hw4 <stage>`, which pins the CPU code paths from
params before torch loads) in a scratch directory, without MLflow, on the given params with
fewer epochs, and reads each run's `train_time_s`. Modes alternate within each repeat so
that a busy machine slows both alike; the table gives the median time per mode and the
ratio portable / fast. It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

MODES = ("fast", "portable_avx2", "portable")
# (name, stage command, results file, params section whose epochs are cut)
WORKLOADS = [
    ("MLP 784-150-10", ["mlp", "--hidden", "150"], "results/mlp/points/h150/seed0.json", "mlp"),
    ("CNN, torch layers", ["cnn", "--impl", "torch"], "results/cnn/torch/seed0.json", "cnn"),
    ("CNN, scratch layers", ["cnn", "--impl", "scratch"], "results/cnn/scratch/seed0.json", "cnn"),
    ("captioning, RNN", ["captioning", "--model", "rnn"], "results/captioning/rnn/seed0.json", "captioning"),
    ("captioning, LSTM", ["captioning", "--model", "lstm"], "results/captioning/lstm/seed0.json", "captioning"),
]


def params_for(base: dict, mode: str, section: str, epochs: int) -> dict:
    params = json.loads(json.dumps(base))
    params["trainer"].update(numerics=mode, progress_bar=False, accelerator="cpu", devices=1)
    params["seeds"] = [0]  # the stages' default --seed, whose files the WORKLOADS name
    params[section]["epochs"] = epochs
    return params


def run_stage(work: Path, params: dict, command: list[str], results: str) -> float:
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "HW4_ROOT": str(work), "HW4_TRACKING": "off"}
    done = subprocess.run([sys.executable, "-m", "hw4", *command], cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"python -m hw4 {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    record = json.loads((work / results).read_text())
    for leftover in ("checkpoints", "results", "metrics", "plots", "models"):
        subprocess.run(["rm", "-rf", str(work / leftover)], check=True)
    return float(record["train_time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True, help="a checkout whose data/prepared the demo filled")
    parser.add_argument("--params", type=Path, help="params file (default: DATA_ROOT/params.yaml)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="workload names to run (substring match)")
    args = parser.parse_args()
    base = yaml.safe_load((args.params or args.data_root / "params.yaml").read_text())
    workloads = [w for w in WORKLOADS if not args.only or any(o.lower() in w[0].lower() for o in args.only)]
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        (work / "data/prepared").symlink_to((args.data_root / "data/prepared").resolve())
        for name, command, results, section in workloads:
            for _ in range(args.repeats):
                for mode in MODES:
                    t = run_stage(work, params_for(base, mode, section, args.epochs), command, results)
                    times.setdefault((name, mode), []).append(t)
                    print(f"  {name:22s} {mode:9s} {t:8.2f} s", file=sys.stderr, flush=True)
    threads = base["trainer"].get("threads")
    print(f"\n{args.epochs} epochs per run, median of {args.repeats}, trainer.threads {threads}, {os.cpu_count()} cores")
    print("| workload | " + " | ".join(f"{m} (s)" for m in MODES) + " | " + " | ".join(f"{m} / fast" for m in MODES[1:]) + " |")
    print("|---" * (2 * len(MODES)) + "|")
    for name, *_ in workloads:
        t = [statistics.median(times[(name, m)]) for m in MODES]
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in t) + " | " + " | ".join(f"{x / t[0]:.2f}x" for x in t[1:]) + " |")


if __name__ == "__main__":
    main()
