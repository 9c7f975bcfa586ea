"""How numbers are written in the report: one place, so Markdown and HTML agree."""

from __future__ import annotations

from typing import Any, Mapping

NA = "—"  # no such number


def acc(x: float | None) -> str:
    """Accuracies and scores to four decimals, as the homework wrote them."""
    return NA if x is None else f"{x:.4f}"


def score(summary: Mapping[str, Any], key: str) -> str:
    """A summary's mean over seeds and its standard deviation (hw4.config.seeds); one seed has none."""
    std = summary.get(f"{key}_std")
    return acc(summary.get(key)) + ("" if std is None else f" ± {std:.4f}")


def homework(x: float) -> str:
    """A homework figure as printed in the write-up: at least four decimals, never fewer
    than it gave (0.9810 stays 0.9810, 0.934641 stays 0.934641)."""
    decimals = len(repr(float(x)).split(".")[1])
    return f"{x:.{max(4, decimals)}f}"


def seconds(s: float | None) -> str:
    if s is None:
        return NA
    return f"{s:.1f} s ({s / 60:.1f} min)"


def error(x: float) -> str:
    return f"{x:.2e}"


def dataset(metrics: Mapping[str, Any]) -> str:
    name = str(metrics.get("dataset") or "unknown")
    return f"{name} (stand-in)" if metrics.get("standin") else name


def run(run_id: str | None) -> str:
    return f"`{run_id}`" if run_id else "not tracked"
