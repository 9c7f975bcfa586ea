"""scripts/gpu_check.py, the check a GPU machine runs first, run on the CPU in the suite so that
it cannot break unnoticed between the sessions that have a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_gpu_check_passes_on_the_cpu_under_bf16_autocast(tmp_path: Path):
    """Every training stage (the MLP, both CNNs, the caption-word pretraining in
    preprocess_coco, both captioners, both transfer modes) for a moment under
    `trainer.precision: bf16-mixed`, each with finite numbers better than chance."""
    # Tracking off, as on the GPU machine, which has no MLflow (scripts/gpu_check.sh): every
    # other stage test logs to MLflow, and the check takes half the time without it.
    done = subprocess.run([sys.executable, str(REPO / "scripts/gpu_check.py"), "--accelerator", "cpu", "--quick",
                           "--precision", "bf16-mixed", "--workdir", str(tmp_path / "check")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HW4_TRACKING": "off"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert len(rows) == 8 and all(row[-1] == "ok" for row in rows), done.stdout
    params = (tmp_path / "check/params.yaml").read_text()
    assert "profile: demo" in params and "min_count:" in params  # composed from conf/, nothing dropped
    assert "precision: bf16-mixed" in params and "precision bf16-mixed" in done.stdout
