"""Metrics files, plot data and figures: what DVC tracks and MLflow stores as artifacts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hw4.io import atomic
from hw4.io.paths import evaluation_name, record_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Atomically (hw4.io.atomic): later stages and resumed runs read these files."""
    return atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_results(metrics_path: Path, record: Mapping[str, Any]) -> tuple[Path, Path]:
    """The full record (what later stages and the report read) and its headline numbers, the
    DVC metrics file (with their standard deviations over seeds where the record is a summary,
    hw4.config.seeds). Each stage keeps everything in results/ and names in the record's
    `headline` the few numbers that answer "how good": `{"torch": {"test/acc": 0.93}}`. Under
    the evaluation's name, so that `dvc exp show` heads each column with the short name
    `torch.test/acc` (numbers of the same name in several files would each be headed with the
    file's path: a table wider than any terminal)."""
    keys = [k for name in record.get("headline", ()) for k in (name, f"{name}_std")]
    headline = {k: record[k] for k in keys if is_number(record.get(k))}
    return write_json(record_path(metrics_path), record), write_json(metrics_path, {evaluation_name(metrics_path): headline})


def is_number(x: Any) -> bool:
    """An int or float, not a bool (JSON's numbers as the metrics files hold them)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_json(path: Path, needed_by: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{needed_by} needs {path}, which does not exist; run the stage that writes it first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{needed_by} needs {path}, which is not valid JSON ({e}); rerun the stage that writes it") from e


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows with the union of their keys as columns (DVC plots read CSV with a header).

    Atomically (hw4.io.atomic): the report reads these files."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return atomic.write_text(path, text.getvalue())


def figure(size: tuple[float, float]) -> "Figure":
    """A bare matplotlib Figure: no pyplot, so no backend, no display and no figure to close,
    and matplotlib is loaded only by the commands that draw."""
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def plot_curves(path: Path, rows: Sequence[Mapping[str, Any]], x: str, panels: Mapping[str, Sequence[str]], title: str) -> Path:
    """One panel per entry of `panels` (panel title -> columns), `x` on the horizontal axis."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = figure((5 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, columns) in zip(axes[0], panels.items()):
        for column in columns:
            points = [(r[x], r[column]) for r in rows if r.get(column) is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=column)
        ax.set_title(name)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
