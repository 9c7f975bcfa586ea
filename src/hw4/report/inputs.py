"""The stages' outputs the report reads, each with the stage that writes it.

Everything is checked before anything is read, so a missing file stops the report with the
list of what is missing and the `dvc repro` that makes it, not with a traceback halfway.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hw4.io import paths
from hw4.io.paths import RunFiles, record_path, summary_metrics
from hw4.report.homework import CaptionSample


class MissingStageOutput(FileNotFoundError):
    """A file the report summarises has not been written by its stage."""


@dataclass(frozen=True)
class Needed:
    path: Path
    stage: str  # the DVC stage that writes it


def require(needed: Sequence[Needed]) -> None:
    missing = [n for n in needed if not Path(n.path).is_file()]
    if not missing:
        return
    stages = " ".join(dict.fromkeys(n.stage for n in missing))
    listing = "\n".join(f"  {n.path}  (written by stage {n.stage})" for n in missing)
    raise MissingStageOutput(f"the report needs stage outputs that do not exist:\n{listing}\nrun `dvc repro {stages}` first")


@dataclass
class Members:
    """Which runs of the matrix stages the report summarises (from params.yaml)."""

    cnn: list[str]  # cnn.impls
    captioning: list[str]  # captioning.models
    transfer: list[str]  # transfer.modes
    seeds: list[int]  # seeds: the numbers are their mean and std, the figures the first one's


@dataclass
class CNNRun:
    metrics: dict[str, Any]
    curves_png: Path


@dataclass
class CaptioningRun:
    metrics: dict[str, Any]
    loss: list[dict[str, float | None]]  # one row per epoch: train/loss, val/loss
    samples: list[CaptionSample]
    samples_png: Path


@dataclass
class TransferRun:
    metrics: dict[str, Any]
    curve: list[dict[str, float | None]]  # one row per epoch: val/acc, ...


# The tasks the homework's problems show (report.sections); any other task's evaluations get a
# section of their headline numbers, found by the results/<task>/<name>.json convention.
PROBLEM_TASKS = ("mlp", "cnn", "captioning", "transfer")


def other_evaluations() -> dict[str, dict[str, Any]]:
    """<task>/<name> -> the summary over seeds of every evaluation of a task with no problem."""
    found = {}
    for evaluation, path in paths.evaluation_records().items():
        if evaluation.split("/")[0] not in PROBLEM_TASKS:
            record = read_record(path)
            if "seeds" in record and "headline" in record:
                found[evaluation] = record
    return found


@dataclass
class Inputs:
    """Every number here but the gradient check's is a summary over seeds (hw4.config.seeds)."""

    gradcheck: dict[str, Any]  # layer -> its checks, and the run's id
    points: dict[int, dict[str, Any]]  # hidden units -> the sweep point's metrics
    selection: dict[str, Any]
    final: dict[str, Any]
    cnn: dict[str, CNNRun]
    captioning: dict[str, CaptioningRun]
    transfer: dict[str, TransferRun]
    others: dict[str, dict[str, Any]]  # <task>/<name> -> summary, of the tasks with no problem

    def layers(self) -> dict[str, dict[str, Any]]:
        """The gradient check's results per layer (the file's other entries are about the run)."""
        return {name: r for name, r in self.gradcheck.items() if isinstance(r, dict)}

    def run_ids(self) -> dict[str, str | None]:
        """DVC stage -> the MLflow run that made its numbers (None where it made none)."""
        ids = {"gradcheck": self.gradcheck.get("run_id"), "mlp_select": self.selection.get("sweep_run_id")}
        for h, point in self.points.items():
            ids |= _seed_runs(f"mlp@{h}-", point)
        ids |= {"mlp_final_seeds": self.final.get("run_id")} | _seed_runs("mlp_final@", self.final)
        for task, runs in (("cnn", self.cnn), ("captioning", self.captioning), ("transfer", self.transfer)):
            for k, r in runs.items():
                ids |= {f"{task}_seeds@{k}": r.metrics.get("run_id")} | _seed_runs(f"{task}@{k}-", r.metrics)
        for evaluation, r in self.others.items():
            task, name = evaluation.split("/")
            ids |= {f"{task}_seeds@{name}": r.get("run_id")} | _seed_runs(f"{task}@{name}-", r)
        return ids

    def standin(self) -> bool:
        """Whether any number in the report was computed on generated stand-in data."""
        metrics = [*self.points.values(), self.final, *self.others.values(),
                   *(r.metrics for r in (*self.cnn.values(), *self.captioning.values(), *self.transfer.values()))]
        return any(bool(m.get("standin")) for m in metrics)


def _seed_runs(stage_prefix: str, summary: dict[str, Any]) -> dict[str, str | None]:
    """The seeds' own runs behind a summary: e.g. cnn@torch-0, cnn@torch-1."""
    return {f"{stage_prefix}{k}": rid for k, rid in summary.get("run_ids", {}).items()}


# The stages' full records (results/...), which carry run ids and data sets besides the numbers.
GRADCHECK = record_path(paths.GRADCHECK)
SELECTION = record_path(paths.MLP_SELECTION)  # with every sweep point's summary over seeds
FINAL = record_path(summary_metrics("mlp/final"))


def _summary(task: str, name: str) -> Path:
    return record_path(summary_metrics(f"{task}/{name}"))


def _cnn_files(impl: str, seed: int) -> tuple[Path, Path]:
    return _summary("cnn", impl), RunFiles("cnn", impl, seed).curve_png


def _transfer_files(mode: str, seed: int) -> tuple[Path, Path]:
    return _summary("transfer", mode), RunFiles("transfer", mode, seed).curve_csv


def _caption_files(model: str, seed: int) -> tuple[Path, ...]:
    run = RunFiles("captioning", model, seed)
    return _summary("captioning", model), run.curve_csv, run.samples_txt, run.samples_png


def needed(members: Members) -> list[Needed]:
    """Every input: the summaries over seeds, and the first seed's curves and samples."""
    first = members.seeds[0]
    needed = [Needed(GRADCHECK, "gradcheck"), Needed(SELECTION, "mlp_select"), Needed(FINAL, "mlp_final_seeds")]
    for task, names, files in (("cnn", members.cnn, _cnn_files), ("captioning", members.captioning, _caption_files),
                               ("transfer", members.transfer, _transfer_files)):
        for k in names:
            summary, *figures = files(k, first)
            needed += [Needed(summary, f"{task}_seeds@{k}"), *(Needed(p, f"{task}@{k}-{first}") for p in figures)]
    return needed


def collect(members: Members) -> Inputs:
    """Read every stage output the report summarises; MissingStageOutput names what is absent."""
    require(needed(members))
    selection = read_record(SELECTION)
    first = members.seeds[0]
    return Inputs(
        gradcheck=read_record(GRADCHECK),
        points={int(h): p for h, p in selection["points"].items()},
        selection=selection,
        final=read_record(FINAL),
        cnn={k: _read_cnn(k, first) for k in members.cnn},
        captioning={k: _read_captioning(k, first) for k in members.captioning},
        transfer={k: _read_transfer(k, first) for k in members.transfer},
        others=other_evaluations(),
    )


def _read_cnn(impl: str, seed: int) -> CNNRun:
    metrics, png = _cnn_files(impl, seed)
    return CNNRun(read_record(metrics), png)


def _read_captioning(model: str, seed: int) -> CaptioningRun:
    metrics, loss, samples, png = _caption_files(model, seed)
    return CaptioningRun(read_record(metrics), read_csv(loss), read_samples(samples), png)


def _read_transfer(mode: str, seed: int) -> TransferRun:
    metrics, curve = _transfer_files(mode, seed)
    return TransferRun(read_record(metrics), read_csv(curve))


def read_record(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_csv(path: Path) -> list[dict[str, float | None]]:
    """Numeric columns of a plot-data CSV (hw4.io.outputs.write_csv); empty cells are None."""
    with Path(path).open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None  # empty (a metric not logged that epoch) or text (a flag column)


def read_samples(path: Path) -> list[CaptionSample]:
    """The captioning stage's listing (hw4.evaluation.captioning.write_samples): a title line, then
    per sample `<split>  <url>`, `  generated: ...`, `  GT: ...` and a blank line."""
    samples: list[CaptionSample] = []
    split = generated = None
    for line in Path(path).read_text().splitlines()[1:]:
        if line.startswith("  generated:"):
            generated = line.split(":", 1)[1].strip()
        elif line.startswith("  GT:"):
            if split is None or generated is None:
                raise ValueError(f"{path}: a ground truth without its sample line and generated caption")
            samples.append(CaptionSample(split, generated, line.split(":", 1)[1].strip()))
            split = generated = None
        elif line.strip():
            split = line.split()[0]
    return samples
