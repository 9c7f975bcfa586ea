"""GPU check: every training stage, briefly, on one GPU with bf16 autocast where supported.

    .venv/bin/python scripts/gpu_check.py                   # on a machine with a GPU
    .venv/bin/python scripts/gpu_check.py --accelerator cpu # the same checks on the CPU

Runs in a scratch directory on generated data (the stripes digits, the COCO and
hymenoptera stand-ins), so it needs no network and no downloaded files. Each stage runs as
DVC runs it (`python -m hw4 <stage>`); its results file is checked for sane values, and
samples per second are printed per stage. Without mlflow installed (a bare GPU machine) the
stages run with HW4_TRACKING=off. Designed to finish within 10 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hw4.data.standins import digits as standin_digits
from hw4.stages.download import generate_standin  # noqa: E402

# (stage arguments, the record it writes, the accuracy-like key that must beat chance, chance level)
STAGES = [
    (["mlp", "--hidden", "256"], "results/mlp/points/h256/seed0.json", "val/acc", 0.1),
    (["cnn", "--impl", "torch"], "results/cnn/torch/seed0.json", "test/acc", 0.1),
    (["cnn", "--impl", "scratch"], "results/cnn/scratch/seed0.json", "test/acc", 0.1),
    (["preprocess_coco"], "data/prepared/coco/meta.json", None, None),
    (["captioning", "--model", "rnn"], "results/captioning/rnn/seed0.json", "val/bleu1", 0.0),
    (["captioning", "--model", "lstm"], "results/captioning/lstm/seed0.json", "val/bleu1", 0.0),
    (["transfer", "--mode", "finetune"], "results/transfer/finetune/seed0.json", "val/acc", 0.5),
    # A frozen *random* backbone (no ImageNet weights here) leaves the head at chance.
    (["transfer", "--mode", "freeze"], "results/transfer/freeze/seed0.json", "val/acc", 0.0),
]


def precision(accelerator: str) -> str:
    if accelerator == "gpu" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def params_for(accelerator: str) -> dict:
    """The committed demo-sized settings, shortened, on the chosen accelerator."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    demo = yaml.safe_load((REPO / "conf/profile/demo.yaml").read_text())
    for key in ("preprocess_coco", "captioning", "transfer"):
        params[key] = {**params[key], **demo.get(key, {})}
    params["trainer"] = {**params["trainer"], "accelerator": accelerator, "devices": 1, "strategy": "auto",
                         "precision": precision(accelerator), "deterministic": False, "progress_bar": False}
    params["seeds"] = [0]  # the stages' default --seed
    params["mlp"] = {**params["mlp"], "hidden_sizes": [256], "epochs": 2, "batch_size": 500}
    params["cnn"] = {**params["cnn"], "epochs": 1, "batch_size": 500}
    params["captioning"]["epochs"] = min(params["captioning"]["epochs"], 10)
    params["transfer"] = {**params["transfer"], "epochs": 2, "pretrained": "random", "workers": 4}
    return params


def sane(metrics: dict, key: str | None, chance: float | None) -> list[str]:
    problems = [f"{k}={v}" for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if key is not None:
        value = metrics.get(key)
        if value is None or not (chance < value <= 1.0):
            problems.append(f"{key}={value} (should be in ({chance}, 1])")
    return problems


def throughput(metrics: dict, seconds: float) -> str:
    for key in ("train_samples_per_s", "train_images_per_s", "train_captions_per_s"):
        if key in metrics:
            return f"{metrics[key]:,.0f}"
    return f"({seconds:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accelerator", default="gpu", choices=["gpu", "cpu"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hw4-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HW4_ROOT": str(work), "PYTHONPATH": str(REPO / "src")}
    if importlib.util.find_spec("mlflow") is None:
        env["HW4_TRACKING"] = "off"
    else:
        env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    (work / "params.yaml").write_text(yaml.safe_dump(params_for(args.accelerator), sort_keys=False))
    (work / "data/prepared").mkdir(parents=True, exist_ok=True)
    torch.save(standin_digits.generate(50000, 5000, 10000), work / "data/prepared/mnist_family.pt")
    for name in ("coco2014_raw", "hymenoptera"):
        generate_standin(name, work / "data/raw", seed=0)

    device = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "cpu"
    print(f"# {device}, precision {precision(args.accelerator)}, tracking {env.get('HW4_TRACKING', 'on')}, in {work}")
    print(f"{'stage':<28} {'seconds':>8} {'samples/s':>12}  check")
    failed = False
    for stage_args, metrics_file, key, chance in STAGES:
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "hw4", *stage_args], cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            print(f"{' '.join(stage_args):<28} {seconds:>8.1f} {'-':>12}  FAILED\n{result.stderr[-2000:]}")
            failed = True
            continue
        metrics = json.loads((work / metrics_file).read_text())
        problems = sane(metrics, key, chance)
        failed |= bool(problems)
        print(f"{' '.join(stage_args):<28} {seconds:>8.1f} {throughput(metrics, seconds):>12}  {'ok' if not problems else 'BAD ' + ', '.join(problems)}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
