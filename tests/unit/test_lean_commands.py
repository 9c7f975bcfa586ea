"""Commands import only what they use: each import below is seconds of a process's start-up
(benchmarks/bench_startup.py), so a heavy library pulled in by the wrong module is a defect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hw4.serving.predict import warn_other_versions


def modules_after(code: str) -> set[str]:
    """Top-level packages a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("code, absent", [
    ("from hw4.cli import commands; commands()", {"torch", "mlflow", "pytorch_lightning", "matplotlib"}),  # --help
    ("import hw4.serving.predict", {"pytorch_lightning", "torchmetrics", "torchvision", "matplotlib"}),
    ("import hw4.tracking.runs, hw4.tracking.logged_models", {"pytorch_lightning", "torchmetrics", "matplotlib"}),
    ("import hw4.serving.image_classifier, hw4.serving.transfer_classifier, hw4.serving.captioner",
     {"pytorch_lightning", "torchmetrics", "dvc", "hydra", "omegaconf"}),  # a logged model's code (tqdm: mlflow takes it if present)
    ("import hw4.io.outputs, hw4.config.seeds", {"matplotlib", "torch"}),
    # a run's tags, which every summary stage (seeds, selection, report) logs: its device is the CPU
    ("from hw4.tracking.provenance import provenance_tags; provenance_tags('s', [], False)", {"torch"}),
    # the selection and the seeds summaries train nothing
    ("import hw4.stages.mlp_select, hw4.stages.seeds", {"torch", "pytorch_lightning", "matplotlib"}),
])  # fmt: skip
def test_a_command_imports_only_what_it_uses(code: str, absent: set[str]):
    assert not modules_after(code) & absent


def test_a_model_logged_with_other_versions_says_so_in_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture):
    from importlib.metadata import version

    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"mlflow=={version('mlflow')}\ntorch==0.0.1\nno-such-library==1.0\n")
    warn_other_versions(requirements)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"warning: the model was logged with torch==0.0.1; this environment has {version('torch')}",
        "warning: the model was logged with no-such-library==1.0; this environment lacks it",
    ]
    warn_other_versions(tmp_path / "missing.txt")  # a model without the file: nothing to compare
    assert capsys.readouterr().err == ""
