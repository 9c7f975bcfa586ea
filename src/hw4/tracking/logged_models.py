"""MLflow Models and the Model Registry: a run's network as a model anyone can load, and
the champion of each task on each dataset.

A training run logs its network as an MLflow Model (a pyfunc: `ModelToLog.flavor` names the
module of hw4.serving and its PythonModel). An evaluation run also registers it as a version of
`hw4-<task>-<dataset>` (`hw4-cnn-fashion-mnist`, `hw4-transfer-hymenoptera-standin`): a network
trained on other data is another model, so a champion never answers with another dataset's
classes. Each version is tagged with its seed, commit and run; the alias `champion` points at
the version with the best validation score (never the test score: that would choose on the
test set).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from hw4.tracking.model_requirements import requirements
from hw4.tracking.runs import client, fluent_tracking, say

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
ARTIFACT_PATH = "model"  # the run's model: runs:/<run id>/model
SCORE_TAG = "validation_score"
REGISTRY_PREFIX = "hw4-"


@dataclass
class ModelToLog:
    """A run's network as an MLflow Model."""

    flavor: str  # a module of hw4.serving defining `PYTHON_MODEL` (its PythonModel), `SIGNATURE` and `example(pixels)`
    files: Mapping[str, Path]  # artifacts its `load_context` reads, e.g. the weights
    specs: Mapping[str, dict[str, Any]]  # JSON artifacts written at logging time, e.g. the network's spec
    example: Any  # pixels for `example()`: the model's input example
    task: str | None = None  # registered as hw4-<task>-<dataset> (an evaluation run); None: logged only
    score: float | None = None  # the validation score the champion is chosen by
    score_name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)  # on the registered version (tracked_fit adds seed)
    dataset: str = ""  # what it was trained on (tracked_fit sets it, and standin)
    standin: bool = False


def registered_name(task: str, dataset: str, standin: bool) -> str:
    """`hw4-cnn-fashion-mnist`; a stand-in's name says so (`hw4-transfer-hymenoptera-standin`)."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "unknown"
    if standin and not slug.endswith("-standin"):
        slug += "-standin"
    return f"{REGISTRY_PREFIX}{task}-{slug}"


def log_model(run_id: str, model: ModelToLog) -> str:
    """Log `model` into run `run_id`; register it when it names a task. Returns its URI."""
    import mlflow

    module = importlib.import_module(model.flavor)  # imported here: it needs mlflow, torch, PIL
    hw4_package = Path(importlib.import_module("hw4").__file__).parent
    with fluent_tracking(), tempfile.TemporaryDirectory() as tmp:
        artifacts = {name: str(path) for name, path in model.files.items()}
        for name, spec in model.specs.items():
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(spec, indent=1))
            artifacts[name] = str(path)
        # Logged into the run itself, not a new one: start_run(run_id) resumes it, and the
        # caller's StageRun sets its final status after.
        with mlflow.start_run(run_id=run_id), pins_taken_as_checked(), download_bars_off():
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_PATH,
                python_model=module.PYTHON_MODEL(),
                artifacts=artifacts,
                code_paths=[str(hw4_package)],
                signature=module.SIGNATURE,
                input_example=module.example(model.example),
                pip_requirements=requirements(model.flavor),
            )
    if model.task is not None:
        register(run_id, info.model_uri, model)
    return info.model_uri


@contextmanager
def download_bars_off() -> Iterator[None]:
    """MLflow downloads a model it has just logged, twice, to try its input example, each time
    drawing a progress bar in the stage's output: inside, it draws none."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as BARS

    before = os.environ.get(BARS.name)
    os.environ[BARS.name] = "false"
    try:
        yield
    finally:
        if before is None:
            del os.environ[BARS.name]
        else:
            os.environ[BARS.name] = before


@contextmanager
def pins_taken_as_checked() -> Iterator[None]:
    """MLflow compares a model's pip requirements with the installed packages when it saves the
    model and again when it loads it to try the input example, to warn of a mismatch, by first
    mapping every installed distribution to its modules (0.4 s per process). `requirements`
    pins the installed versions themselves, so no mismatch can come of it: inside, the
    comparison is skipped. (Private names of MLflow's: tests/unit/test_model_requirements.py
    fails when MLflow stops calling them so.)"""
    import mlflow.pyfunc
    import mlflow.utils.environment

    callers = (mlflow.pyfunc, mlflow.utils.environment)
    checks = [caller.warn_dependency_requirement_mismatches for caller in callers]
    for caller in callers:
        caller.warn_dependency_requirement_mismatches = lambda requirements: None
    try:
        yield
    finally:
        for caller, check in zip(callers, checks):
            caller.warn_dependency_requirement_mismatches = check


def register(run_id: str, model_uri: str, model: ModelToLog) -> "ModelVersion":
    """A new version of hw4-<task>-<dataset>, tagged; crowned champion if it validates best."""
    from mlflow.exceptions import MlflowException

    c = client()
    name = registered_name(model.task, model.dataset, model.standin)
    what = {"task": model.task, "dataset": model.dataset, "standin": str(model.standin).lower()}
    try:
        c.create_registered_model(name, tags=what, description=(
            f"hw4 task {model.task} trained on {model.dataset}{' (a stand-in)' if model.standin else ''}: "
            f"the champion alias is the best by {model.score_name}"))
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run_tags = c.get_run(run_id).data.tags
    tags = {
        **what,
        "run_id": run_id,
        "commit": run_tags.get("git.commit", "unknown"),
        "dvc.stage": run_tags.get("dvc.stage", ""),
        "score_name": model.score_name,
        SCORE_TAG: "" if model.score is None else repr(float(model.score)),
        **model.tags,
    }
    version = c.create_model_version(name, source=model_uri, run_id=run_id, tags=tags)
    crown_best(name)
    return version


def rank(version: "ModelVersion") -> float:
    """How versions of one model (one task, one dataset) are compared: the validation score."""
    score = version.tags.get(SCORE_TAG, "")
    return float(score) if score else float("-inf")


def crown_best(name: str, attempts: int = 30) -> "ModelVersion | None":
    """Point `champion` at the best version of `name` (ties: the older version keeps it).

    Safe when several processes register versions at once (`dvc queue start --jobs 4`): the
    versions and the alias are read again after every move of the alias, until the alias
    names the best of the versions read. A process ends only on such a read, so the last read
    of all, which follows every registration, leaves the alias on the best version; a move
    that collides with another process's (SQLite's UNIQUE constraint) is tried again.
    """
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import IntegrityError

    c = client()
    error: Exception | None = None
    for attempt in range(attempts):
        versions = c.search_model_versions(f"name = '{name}'")
        if not versions:
            return None
        best = max(sorted(versions, key=lambda v: int(v.version)), key=rank)
        if str(c.get_registered_model(name).aliases.get(CHAMPION)) == str(best.version):
            return best
        try:
            c.set_registered_model_alias(name, CHAMPION, best.version)
        except (MlflowException, IntegrityError) as e:  # another process moved it at the same moment
            error = e
            time.sleep(random.uniform(0.05, 0.25))
            continue
        say(f"{name} version {best.version} ({best.tags.get('score_name')} {best.tags.get(SCORE_TAG)}) is now {CHAMPION}",
            "registry")
    raise RuntimeError(f"{name}: could not point {CHAMPION} at its best version in {attempts} attempts: {error}")