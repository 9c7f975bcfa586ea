"""MLflow, owned here: no module outside hw4.tracking imports mlflow but the models'
PythonModels (hw4.serving), which MLflow loads.

One stage run is one MLflow run. Only the global rank-0 process talks to MLflow; on every
other rank a `StageRun` is inert, so DDP and multi-node launches make exactly one run.
The run id is carried three ways so that no second run appears:

- `mlflow run` exports MLFLOW_RUN_ID: the stage logs into that run (Lightning#9370).
- A resumable stage keeps `run.json` beside its last checkpoint: restarted after a crash,
  it reopens the same run and continues its metric history (Lightning#5342).
- A sweep's children are re-parented by the selection stage (`adopt_children`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from hw4.io import atomic
from hw4.io.paths import LAST_CHECKPOINT, RUN_STATE, tracking_artifacts, tracking_store
from hw4.tracking import sqlite_store
from hw4.tracking.provenance import provenance_tags
from hw4.tracking.server_check import TrackingServerError, check_server

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from hw4.tracking.lightning_logger import MLflowRunLogger

PARENT_TAG = "mlflow.parentRunId"
# What the MLflow UI opens an experiment on: its training view (runs, metrics, models), not the
# GenAI view (traces, an assistant) it guesses for an experiment that does not say.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
_SQLITE = "sqlite:///"
_MAX_PARAM_LEN = 6000
_MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI (a server, say), else SQLite at the root of the repository the run
    belongs to (never in the copy a queued DVC experiment runs in: DVC deletes it)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"{_SQLITE}{tracking_store()}"


@contextmanager
def fluent_tracking() -> Iterator[None]:
    """MLflow's fluent API (`mlflow.start_run`, `mlflow.pyfunc.log_model`/`load_model`) pointed at
    `tracking_uri()` for the block only. With $MLFLOW_TRACKING_URI set the fluent API reads it
    already; without, the repository's store is set and unset again: a process-wide
    `mlflow.set_tracking_uri` would outlive the block (and it exports the variable, so every
    later run of the process, and its subprocesses, would log there)."""
    if "MLFLOW_TRACKING_URI" in os.environ:
        check_reachable(tracking_uri())
        yield
        return
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri  # back to unset, variable included

    client()  # the SQLite store's tables, before the fluent API touches it
    with _use_tracking_uri(tracking_uri()):
        yield


def is_global_rank_zero() -> bool:
    """True in the one process of a launch that may open the run.

    Read from the launchers' environment (torchrun, SLURM, Lightning's own DDP launcher)
    rather than from the Trainer, because the run is opened before the Trainer exists.
    """
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"):
        if int(os.environ.get(var, "0") or 0) != 0:
            return False
    return True


def tracking_enabled() -> bool:
    """HW4_TRACKING=off runs stages without MLflow: for machines that lack it (the GPU check)."""
    return os.environ.get("HW4_TRACKING", "on").lower() != "off"


def client() -> "MlflowClient":
    from mlflow.tracking import MlflowClient  # imported here so HW4_TRACKING=off needs no mlflow

    uri = tracking_uri()
    if uri.startswith(_SQLITE):
        sqlite_store.prepare(Path(uri.removeprefix(_SQLITE)), lambda: MlflowClient(uri).search_experiments(max_results=1))
    check_reachable(uri)
    return MlflowClient(uri)


def check_reachable(uri: str) -> None:
    """A tracking server that is down or refuses the login stops the process here, in one line
    (TrackingServerError), before any work relies on it; once per process."""
    if uri.startswith(("http://", "https://")):
        check_server(uri)


def experiment_id(name: str) -> str:
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None and exp.lifecycle_stage == "deleted":
        # Deleted in the UI, its name still taken: no run could be created in it or under its name.
        c.restore_experiment(exp.experiment_id)
        say(f"MLflow experiment {name!r} was deleted; restored it (delete its runs one by one instead)", "tracking")
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND[0]) is None:  # made by another tool, or by an older hw4
            c.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
        return exp.experiment_id
    # With the default SQLite store, artifacts go beside it, whatever the cwd of the stage.
    location = None
    if "MLFLOW_TRACKING_URI" not in os.environ:
        location = tracking_artifacts(name).as_uri()
    return c.create_experiment(name, artifact_location=location, tags=dict([EXPERIMENT_KIND]))


def params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ResumeState:
    """The run id kept beside a stage's last checkpoint, so a restart logs into the same run."""

    directory: Path

    @property
    def checkpoint(self) -> Path:
        return self.directory / LAST_CHECKPOINT

    @property
    def _file(self) -> Path:
        return self.directory / RUN_STATE

    def _state(self) -> dict[str, Any] | None:
        if not self._file.is_file():
            return None
        try:
            state = json.loads(self._file.read_text())
            problem = None if isinstance(state, dict) and "run_id" in state else "no run_id in it"
        except json.JSONDecodeError as e:
            problem = repr(e)
        if problem:
            # Written atomically since; an older copy may still be cut short by a crash.
            warnings.warn(f"{self._file} is unreadable ({problem}); not resuming, the stage starts a new run", stacklevel=3)
            return None
        return state

    def resumable_run(self, phash: str) -> str | None:
        """The run to continue: same params, not finished, and a checkpoint to resume from.
        Decided from files alone, so every DDP rank reaches the same answer."""
        state = self._state()
        if state is None or not self.checkpoint.is_file() or state.get("params_hash") != phash or state.get("finished"):
            return None
        return str(state["run_id"])

    def interrupted_run(self) -> str | None:
        """The run a killed stage left unfinished, whatever its params."""
        state = self._state()
        return None if state is None or state.get("finished") else str(state["run_id"])

    def clear_checkpoints(self) -> None:
        """The last and the best checkpoint of a run that is not resumed: the new run's best
        must come from its own epochs."""
        for path in self.directory.glob("*.ckpt"):
            path.unlink()

    def record(self, run_id: str, phash: str, finished: bool) -> None:
        state = {"run_id": run_id, "params_hash": phash, "finished": finished}
        atomic.write_text(self._file, json.dumps(state, indent=1) + "\n")  # a kill mid-write must not lose the run id


class Preempted(SystemExit):
    """A stage stopped by signal `signum` (hw4.training.preemption): its run ends KILLED, its
    process with the shell's status for the signal, 128 + signum (143 for SIGTERM)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


@dataclass
class StageRun:
    """One MLflow run for one stage run. Use as a context manager.

    A run that raises ends FAILED (KILLED on Ctrl-C or when `Preempted`); a run that returns
    ends FINISHED.
    """

    experiment: str
    stage: str
    params: Mapping[str, Any]
    data_files: Sequence[Path] = ()
    standin: bool = False
    resume: ResumeState | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    run_name: str | None = None
    run_id: str | None = field(default=None, init=False)
    provenance: dict[str, str] = field(default_factory=dict, init=False)  # set by build_trainer
    resumed: bool = field(default=False, init=False)

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def __enter__(self) -> "StageRun":
        if is_global_rank_zero() and tracking_enabled():
            try:
                self._open()
            except BaseException:
                if self.run_id is not None:
                    client().set_terminated(self.run_id, "FAILED")
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.active:
            return
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, (KeyboardInterrupt, Preempted)):
            status = "KILLED"
        else:
            status = "FAILED"
            self.set_tags({"error": f"{exc_type.__name__}: {exc}"[:5000]})
        if self.resume is not None:
            self.resume.record(self.run_id, params_hash(self.params), finished=status == "FINISHED")
        client().set_terminated(self.run_id, status)

    def _open(self) -> None:
        from mlflow.exceptions import MlflowException

        c = client()
        phash = params_hash(self.params)
        run_id = os.environ.get("MLFLOW_RUN_ID")
        tags = {**provenance_tags(self.stage, self.data_files, self.standin), **self.tags}
        if self.resume is not None:
            resumable = self.resume.resumable_run(phash)
            self.resumed = resumable is not None
            if self.resumed:
                tags["resumed"] = "true"
                problem = _unusable(resumable)
                if problem and not run_id:
                    say(f"MLflow run {resumable} {problem}; the training resumes from {self.resume.checkpoint} "
                         f"into a new run, tagged resumed_from={resumable}")
                    tags["resumed_from"] = resumable
                    resumable = None
            else:
                self.resume.clear_checkpoints()  # a finished or different run's: never resumed
                _close_interrupted(self.resume.interrupted_run())
            run_id = run_id or resumable
        try:
            if run_id:
                c.update_run(run_id, status="RUNNING")
            else:
                run_id = c.create_run(experiment_id(self.experiment), run_name=self.run_name or self.stage).info.run_id
        except MlflowException as e:
            if e.error_code != "PERMISSION_DENIED":
                raise
            user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
            raise TrackingServerError(f"{tracking_uri()} does not let {user} write to experiment {self.experiment!r}: "
                                      f"ask the server's admin for EDIT permission on it") from None
        self.run_id = run_id
        self.set_tags(tags)
        self._log_params_once()
        if self.resume is not None:
            self.resume.record(run_id, phash, finished=False)

    def _log_params_once(self) -> None:
        """Log params not yet on the run; a changed value is an error that names the key."""
        logged = client().get_run(self.run_id).data.params
        new = {}
        for key, value in self.params.items():
            value = str(value)[:_MAX_PARAM_LEN]
            if key not in logged:
                new[key] = value
            elif logged[key] != value:
                raise ValueError(
                    f"MLflow run {self.run_id} already has param {key}={logged[key]!r}, "
                    f"this stage run has {value!r}; unset MLFLOW_RUN_ID or remove the "
                    f"stage's checkpoint directory to start a new run"
                )
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in new.items()]
        for i in range(0, len(items), 100):
            client().log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.log_metric_rows([(metrics, step)])

    def log_metric_rows(self, rows: Sequence[tuple[Mapping[str, float], int | None]]) -> None:
        """Several steps' metrics in as few MLflow batches as its limit allows (one SQLite
        transaction each: a few ms, longer than many training steps)."""
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for metrics, step in rows for k, v in metrics.items()]
        for i in range(0, len(items), _MAX_METRICS_PER_BATCH):
            client().log_batch(self.run_id, metrics=items[i : i + _MAX_METRICS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active or not tags:
            return
        from mlflow.entities import RunTag

        client().log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path) -> None:
        """Under the folder it has in the repository (results/cnn/torch/seed0.json): one
        evaluation's seeds write files of the same name into different folders."""
        if self.active:
            folder = Path(path).parent
            client().log_artifact(self.run_id, str(path), None if folder == Path(".") or folder.is_absolute() else folder.as_posix())

    def lightning_logger(self) -> "MLflowRunLogger":
        from hw4.tracking.lightning_logger import MLflowRunLogger  # Lightning: only where a Trainer runs

        return MLflowRunLogger(self)

    def log_datasets(self, datasets: Sequence["DatasetRef"]) -> None:
        """The run's inputs, each with its split as context: the runs view's Dataset column."""
        if not self.active or not datasets:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(Dataset(d.name, d.digest, "local", json.dumps({"uri": d.source})),
                               [InputTag("mlflow.data.context", d.context)]) for d in datasets]
        client().log_inputs(self.run_id, datasets=inputs)

    @contextmanager
    def system_metrics(self, interval_s: float) -> Iterator[None]:
        """CPU, memory, disk, network and (NVIDIA/AMD) GPU use, sampled every `interval_s`
        seconds while the block runs and once at its end (so a run shorter than the interval
        has one too), logged as `system/*` metrics by MLflow's monitor; a resumed run continues
        their steps. 0: none."""
        if not self.active or interval_s <= 0:
            yield
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # Its four INFO lines a run (no GPU to sample, started, stopping, stopped) say nothing
        # the run's system/* metrics do not; its warnings still show.
        logging.getLogger(SystemMetricsMonitor.__module__).setLevel(logging.WARNING)
        monitor = SystemMetricsMonitor(self.run_id, sampling_interval=interval_s, resume_logging=self.resumed,
                                       tracking_uri=tracking_uri())
        monitor.start()
        try:
            yield
        finally:
            monitor.finish()
            monitor.collect_metrics()  # the window the last interval left open
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()


@dataclass(frozen=True)
class DatasetRef:
    """One input of a run, as MLflow lists it: `name` (e.g. fashion_mnist/train), a digest of
    its content (sha256, first 32 hex digits: MLflow's column holds 36), where it is, and the
    split it serves as (train, validation, test)."""

    name: str
    digest: str
    source: str
    context: str


def say(message: str, topic: str = "resume") -> None:
    """One line on what the stage found left over and what it does about it."""
    print(f"{topic}: {message}", file=sys.stderr, flush=True)


def _unusable(run_id: str) -> str | None:
    """Why `run_id` cannot be logged into again, or None when it is an active run of the store."""
    from mlflow.exceptions import MlflowException

    try:
        run = client().get_run(run_id)
    except MlflowException:
        return f"is not in the tracking store {tracking_uri()}"
    return "was deleted" if run.info.lifecycle_stage == "deleted" else None


def _close_interrupted(run_id: str | None) -> None:
    """A killed run that will not be continued (its checkpoint is gone, or its params changed)
    ends KILLED rather than RUNNING forever."""
    from mlflow.exceptions import MlflowException

    if run_id is None:
        return
    try:
        info = client().get_run(run_id).info
    except MlflowException:
        return  # not in this store: nothing to close
    if info.lifecycle_stage == "active" and info.status == "RUNNING":
        client().set_terminated(run_id, "KILLED")
        say(f"MLflow run {run_id} was interrupted and cannot be continued; marked KILLED, the stage starts a new run")


def log_files(run_id: str, paths: Sequence[Path]) -> None:
    """Attach existing files to a run opened elsewhere (the MLproject's pipeline run)."""
    c = client()
    for path in paths:
        if Path(path).is_file():
            c.log_artifact(run_id, str(path))


def adopt_children(parent_run_id: str, child_run_ids: Sequence[str]) -> None:
    """Make existing runs nested children of `parent_run_id` (MLflow keeps the link as a tag),
    and give the parent their datasets and models, so that its row in the runs view (all the UI
    shows until a parent is expanded) fills the Dataset and Models columns."""
    from mlflow.entities import LoggedModelOutput

    c = client()
    datasets, models = {}, {}
    for run_id in child_run_ids:
        c.set_tag(run_id, PARENT_TAG, parent_run_id)
        child = c.get_run(run_id)
        for d in child.inputs.dataset_inputs:
            datasets.setdefault((d.dataset.name, d.dataset.digest, tuple((t.key, t.value) for t in d.tags)), d)
        for m in child.outputs.model_outputs if child.outputs else ():
            models.setdefault(m.model_id, LoggedModelOutput(m.model_id, m.step))
    if datasets:
        c.log_inputs(parent_run_id, datasets=list(datasets.values()))
    if models:
        c.log_outputs(parent_run_id, models=list(models.values()))


def run_tags(run_id: str) -> dict[str, str] | None:
    """A run's tags, or None where the store cannot say (tracking off, a run made against
    another store, the store unreachable), so that a reader can show "unknown" and go on."""
    if not tracking_enabled():
        return None
    from mlflow.exceptions import MlflowException

    try:
        return dict(client().get_run(run_id).data.tags)
    except (MlflowException, OSError):
        return None
