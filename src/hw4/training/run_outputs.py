"""The files every training run writes, each logged to the run's MLflow artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from hw4.io import atomic
from hw4.io.outputs import plot_curves, write_csv, write_results
from hw4.io.paths import RunFiles
from hw4.tracking.runs import StageRun


def write_run_outputs(
    run: StageRun,
    files: RunFiles,
    record: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    panels: Mapping[str, Sequence[str]],
    title: str,
    weights: Any,
    curve_csv: Path | None = None,
    extra: Sequence[Path] = (),
) -> None:
    """The record and its headline metrics, the per-epoch `rows` (CSV, and a figure of
    `panels`), `weights` (a state_dict, or one with its metadata); `extra` files the stage
    wrote itself are logged beside them."""
    written = write_results(files.metrics, record)
    csv = write_csv(curve_csv or files.curve_csv, rows)
    png = plot_curves(files.curve_png, rows, "epoch", panels, title=title)
    with atomic.replacing(files.weights) as tmp:  # a later stage or a user never loads half of it
        torch.save(weights, tmp)
    for path in (*written, csv, png, files.weights, *extra):
        run.log_artifact(path)
