"""Portable numerics: a stage gives the same floats whatever CPU code paths the machine offers.

A machine with fewer instruction sets is simulated by capping each library's choice:
ATen's (`ATEN_CPU_CAPABILITY`), MKL's (`MKL_ENABLE_INSTRUCTIONS`), oneDNN's
(`ONEDNN_MAX_CPU_ISA`) and glibc's libm variants (`GLIBC_TUNABLES`). The stages run as DVC
runs them, through `python -m hw4`, which pins the code paths from params before torch loads.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hw4.stages import preprocess_coco
from tests.conftest import tiny_mlp_params, write_params
from tests.stages.test_captioning import raw_settings, stage_settings, tiny_standin
from tests.stages.test_cnn import tiny_cnn_params

LEVELS = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX", "ONEDNN_MAX_CPU_ISA": "AVX",
            "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"},
}
# The CPU flags each level's kernels use: a cap above what the CPU has is an illegal instruction.
NEEDS = {"avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"}, "avx2": {"avx2", "fma"}, "avx": {"avx"}}


def host_levels() -> list[str]:
    """The levels this CPU can run, from /proc/cpuinfo's flags (all of them off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return list(LEVELS)
    flags = set(next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "").split())
    return [level for level in LEVELS if NEEDS[level] <= flags]


STAGES = [["mlp", "--hidden", "16"], ["cnn", "--impl", "torch"], ["captioning", "--model", "lstm"]]
RESULTS = ["results/mlp/points/h16/seed0.json", "results/cnn/torch/seed0.json", "results/captioning/lstm/seed0.json"]
# Each run's floats, and what the machine or the clock decide (not compared).
UNCOMPARED = {"train_time_s", "train_samples_per_s", "train_captions_per_s", "provenance", "run_id"}


def stage_floats(work: Path, mode: str, level: str) -> dict:
    """Run the three stages in one process (pinned once, as each `python -m hw4` is) at `level`."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["trainer"].update(numerics=mode, threads=2)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    script = "from hw4.cli import main\n" + "".join(f"main({args!r})\n" for args in STAGES)
    env = {**os.environ, **LEVELS[level], "HW4_TRACKING": "off"}
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = {path: json.loads((work / path).read_text()) for path in RESULTS}
    for path in RESULTS:
        (work / path).unlink()
    subprocess.run(["rm", "-rf", "checkpoints"], cwd=work, check=True)  # no resume between runs
    provenance = sorted({r["provenance"]["cpu.aten_capability"] for r in records.values()})
    return {path: {k: v for k, v in r.items() if k not in UNCOMPARED} for path, r in records.items()} | {"aten": provenance}


@pytest.fixture
def three_stages(tiny_prepared: Path, isolated_workdir: Path) -> Path:
    tiny_standin(n_train=12, n_val=4)
    preprocess_coco.run(stage_settings(raw_settings(), seed=0))
    captioning = {"models": ["lstm"], "hidden_dim": 32, "wordvec_dim": 16, "epochs": 2, "batch_size": 20,
                  "max_train": 0, "decoding": {"beam_width": 2, "max_length": 12}}
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params(epochs=1),
                 cnn=tiny_cnn_params(impls=["torch"], epochs=1), captioning=captioning)
    return isolated_workdir


@pytest.mark.slow
def test_portable_modes_give_the_same_floats_at_every_isa_level_and_fast_does_not(three_stages: Path):
    # On an AVX2 CPU the AVX-512 level is left out: portable_avx2 then runs at one level only
    # and is checked for its pin, and portable still across AVX2 and AVX.
    levels = host_levels()
    assert {"avx2", "avx"} <= set(levels), f"this test needs an x86-64 CPU with AVX2; it has {levels}"
    fast = {level: stage_floats(three_stages, "fast", level) for level in levels}
    assert len({json.dumps(r, sort_keys=True) for r in fast.values()}) > 1, "fast mode did not change: the test cannot fail"

    avx2 = [stage_floats(three_stages, "portable_avx2", level) for level in ("avx512", "avx2") if level in levels]
    assert all(r == avx2[0] for r in avx2) and avx2[0]["aten"] == ["AVX2"]

    portable = [stage_floats(three_stages, "portable", level) for level in levels]
    assert all(r == portable[0] for r in portable) and portable[0]["aten"] == ["DEFAULT"]
