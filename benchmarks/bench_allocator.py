"""Training steps with glibc's default malloc against `hw4.config.allocator.keep_freed_memory`.

    .venv/bin/python benchmarks/bench_allocator.py [--repeats 5] [--steps 40] [--threads 2]

Each candidate is a fresh process (the thresholds are per process, set as `python -m hw4` sets
them, before any tensor), timing forward + loss + backward + Adam steps of the demo's CNN
(torch and scratch layers, batch 128) and of the demo sweep's largest MLP (200 units, batch
200), after 5 warm-up steps. Per repeat default and kept alternate, so load hits both alike;
the table gives medians, the minor page faults per step and the ratio kept / default.

It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

STEPS = """
import json, resource, sys, time, torch
from torch.nn.functional import cross_entropy
from hw4.config.allocator import keep_freed_memory
from hw4.models.cnn import CNN, CNNConfig
from hw4.models.mlp import MLP, MLPConfig

model, mode, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "kept":
    keep_freed_memory()
torch.set_num_threads(threads)
torch.manual_seed(0)
if model == "mlp":
    net, x = MLP(MLPConfig(784, 200, 10)), torch.randn(200, 784)
else:
    arch = CNNConfig(32, kernel=3, padding=1, hidden=256, extra_channels=[64], batch_norm=True)
    net, x = CNN(arch, impl=model.split()[-1]), torch.randn(128, 1, 28, 28)
y = torch.randint(0, 10, (x.shape[0],))
optimizer = torch.optim.Adam(net.parameters())

def step():
    optimizer.zero_grad()
    cross_entropy(net(x), y).backward()
    optimizer.step()

for _ in range(5):
    step()
faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"ms": 1e3 * seconds / steps, "faults": faults / steps}))
"""

MODELS = ["cnn torch", "cnn scratch", "mlp"]


def measure(model: str, mode: str, steps: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS, model, mode, str(steps), str(threads)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}, median of {args.repeats} processes, {args.steps} steps each")
    print(f"{'model':12s} {'default ms':>10s} {'kept ms':>8s} {'ratio':>6s} {'faults/step default':>20s} {'kept':>6s}")
    for model in MODELS:
        runs: dict[str, list[dict]] = {"default": [], "kept": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(measure(model, mode, args.steps, args.threads))
        ms = {mode: statistics.median(r["ms"] for r in rs) for mode, rs in runs.items()}
        faults = {mode: statistics.median(r["faults"] for r in rs) for mode, rs in runs.items()}
        print(f"{model:12s} {ms['default']:10.1f} {ms['kept']:8.1f} {ms['kept'] / ms['default']:6.2f} "
              f"{faults['default']:20.0f} {faults['kept']:6.0f}")


if __name__ == "__main__":
    main()
