"""What a run's numbers depend on, as MLflow tags: the commit and whether the working tree
differs from it, the DVC stage and experiment, the data's checksums, library versions, device."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Sequence

from hw4.io.checksums import file_sha256
from hw4.io.paths import repo_root

PIPELINE_ENV = "HW4_PIPELINE_RUN_ID"  # set by `python -m hw4 pipeline` under `mlflow run`
# When the stage's process started (ms since the epoch, as MLflow's run times): the run's start
# less this is the process's start-up (scripts/time_breakdown.py).
PROCESS_STARTED = "process.started_ms"


def provenance_tags(stage: str, data_files: Sequence[Path], standin: bool) -> dict[str, str]:
    """Git state, DVC stage and experiment, data checksums, library versions and device of this run."""
    tags = {"dvc.stage": stage, "data.standin": str(bool(standin)).lower(), **git_tags(repo_root())}
    # `dvc exp run` names the experiment and its baseline commit in the stages' environment.
    for var, tag in (("DVC_EXP_NAME", "dvc.experiment"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(var):
            tags[tag] = os.environ[var]
    for path in data_files:
        path = Path(path)
        if path.is_file():
            tags[f"data.sha256.{path.name}"] = file_sha256(path)
    for lib in ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "mlflow", "dvc"):
        try:
            tags[f"version.{lib}"] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    tags["version.python"] = platform.python_version()
    tags["device"] = device_description()
    tags[PROCESS_STARTED] = str(process_started_ms())
    if pipeline := os.environ.get(PIPELINE_ENV):
        tags["pipeline.run_id"] = pipeline
    return tags


def git_tags(root: Path) -> dict[str, str]:
    """The commit, and `git.dirty`: whether tracked files differ from it in anything but what
    the pipeline itself writes (its stages' outputs, dvc.lock, and under `dvc exp run` the
    params.yaml it composes), with the first such files in `git.changed`."""
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        status = _git(root, "status", "--porcelain", "--untracked-files=no", "--no-renames")
    except (OSError, subprocess.CalledProcessError):
        return {"git.commit": "unknown"}
    written = [*pipeline_outputs(root), "dvc.lock", *(["params.yaml"] if os.environ.get("DVC_EXP_NAME") else [])]
    changed = [line[3:].strip('"') for line in status.splitlines() if line.strip()]
    by_user = [path for path in changed if not any(_written(path, out) for out in written)]
    tags = {"mlflow.source.git.commit": commit, "git.commit": commit, "git.dirty": str(bool(by_user)).lower()}
    if by_user:
        tags["git.changed"] = ", ".join(by_user[:10]) + (f" (+{len(by_user) - 10} more)" if len(by_user) > 10 else "")
    return tags


def pipeline_outputs(root: Path) -> list[str]:
    """Every outs/metrics/plots path of dvc.yaml's stages, templates (`h${item.hidden}.json`) kept."""
    import yaml

    try:
        stages = yaml.safe_load((root / "dvc.yaml").read_text()).get("stages", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                paths.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return paths


def _written(path: str, out: str) -> bool:
    """Whether `path` is the output `out` or lies in it (a template matches by what precedes `${`)."""
    if "${" in out:
        return path.startswith(out.split("${")[0])
    return path == out or path.startswith(out.rstrip("/") + "/")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def device_description() -> str:
    """The GPUs torch sees, or the CPU. A process that has not imported torch (a summary of
    seeds, the selection, the report) computed on the CPU alone: it is not imported for this
    (1.5 s)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()}x {', '.join(sorted(names))}"
    return f"cpu ({os.cpu_count()} cores, {platform.machine()})"


def process_started_ms() -> int:
    import psutil

    return round(psutil.Process().create_time() * 1000)
