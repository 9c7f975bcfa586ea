"""The files every training run writes, each logged to the run's MLflow artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from hw4.io import atomic
from hw4.io.outputs import plot_curves, write_csv, write_results
from hw4.io.paths import RunFiles
from hw4.tracking.logged_models import ModelToLog
from hw4.tracking.runs import StageRun


@dataclass
class RunOutputs:
    """A stage's outputs of one run: its numbers, and what `write_run_outputs` writes."""

    record: dict[str, Any]  # the stage's own numbers and fields; the fit adds the common ones
    rows: Sequence[Mapping[str, Any]]  # one per epoch: the curve CSV and figure
    panels: Mapping[str, Sequence[str]]  # the figure's panels: title -> columns of `rows`
    title: str
    weights: Any  # a state_dict, or one with its metadata
    curve_csv: Path | None = None  # instead of files.curve_csv
    extra_files: Sequence[Path] = ()  # written by the stage, logged beside the others
    logged: Mapping[str, float] = field(default_factory=dict)  # further run metrics
    logged_step: int | None = None
    model: ModelToLog | None = None  # the network as an MLflow Model (written weights + specs)


def write_run_outputs(run: StageRun, files: RunFiles, record: Mapping[str, Any], out: RunOutputs) -> None:
    """The record (the stage's `out.record` with the fit's common fields) and its headline
    metrics, the per-epoch rows (CSV, and a figure of the panels) and the weights; the files
    the stage wrote itself are logged beside them."""
    written = write_results(files.metrics, record)
    csv = write_csv(out.curve_csv or files.curve_csv, out.rows)
    png = plot_curves(files.curve_png, out.rows, "epoch", out.panels, title=out.title)
    with atomic.replacing(files.weights) as tmp:  # a later stage or a user never loads half of it
        torch.save(out.weights, tmp)
    for path in (*written, csv, png, files.weights, *out.extra_files):
        run.log_artifact(path)
