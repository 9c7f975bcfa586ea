"""The report's own figures: curves of several runs overlaid on one set of axes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from matplotlib.ticker import MaxNLocator

from hw4.io.outputs import figure


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    style: str = "-o"  # matplotlib format string, e.g. "s--" for the homework's points
    color: str | None = None  # one colour for a run's train and val curves


def series(label: str, rows: Sequence[dict[str, float | None]], x: str, y: str, style: str = "-o", color: str | None = None) -> Series:
    """One column of plot-data rows against another, skipping rows where either is empty."""
    points = [(r[x], r[y]) for r in rows if r.get(x) is not None and r.get(y) is not None]
    return Series(label, [p[0] for p in points], [p[1] for p in points], style, color)


def overlay(path: Path, lines: Sequence[Series], xlabel: str, ylabel: str, title: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = figure((6.4, 3.8))
    ax = fig.subplots()
    for s in lines:
        ax.plot(s.xs, s.ys, s.style, markersize=4, label=s.label, color=s.color)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and hidden sizes are whole
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
