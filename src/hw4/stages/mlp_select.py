"""Problem 2: choose the hidden size from the sweep points' results files (not MLflow).

The sweep's MLflow parent run is made here, after its points, and adopts their runs as
nested children: the points run as separate DVC stages (and may be rerun one by one), so
only this stage knows the sweep's final membership.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hw4.config import flatten
from hw4.outputs import plot_curves, read_json, record_path, write_csv, write_results
from hw4.stages.mlp import DATA, EXPERIMENT, POINTS, SELECTION, Settings, load_settings
from hw4.tracking import StageRun, adopt_children

SWEEP_CSV = Path("plots/mlp/sweep.csv")
SWEEP_PNG = Path("plots/mlp/figures/sweep.png")
METRIC = "val/acc"  # the last epoch's validation accuracy, as the homework reported it


def select_best(scores: dict[int, float]) -> int:
    """The size with the highest score; ties go to the smaller network."""
    if not scores:
        raise ValueError("no sweep points to select from")
    return max(sorted(scores), key=lambda h: scores[h])


def read_points(sizes: list[int]) -> dict[int, dict[str, Any]]:
    return {h: read_json(record_path(POINTS / f"h{h}.json"), "mlp_select") for h in sizes}


def run(s: Settings) -> dict[str, Any]:
    points = read_points(s.mlp.hidden_sizes)
    scores = {h: float(p[METRIC]) for h, p in points.items()}
    best = select_best(scores)
    rows = [{"hidden": h, "val_acc": scores[h], "val_acc_best": points[h]["val/acc_best"]} for h in sorted(scores)]
    write_csv(SWEEP_CSV, rows)
    png = plot_curves(SWEEP_PNG, rows, "hidden", {"validation accuracy": ["val_acc", "val_acc_best"]}, "MLP sweep")
    standin = any(p.get("standin") for p in points.values())
    params = flatten({"hidden_sizes": s.mlp.hidden_sizes, "selection_metric": METRIC, "mlp": asdict(s.mlp.optim)})
    with StageRun(EXPERIMENT, "mlp_select", params, [DATA], standin, run_name="sweep", tags={"sweep.role": "parent"}) as run:
        if run.active:
            adopt_children(run.run_id, [p["run_id"] for p in points.values() if p.get("run_id")])
        result = {
            "hidden": best,
            METRIC: scores[best],
            "sweep_run_id": run.run_id,
            "points": {str(h): scores[h] for h in sorted(scores)},
            "dataset": points[best].get("dataset"),
            "standin": standin,
        }
        written = write_results(SELECTION, result)
        run.log_metrics({"best_hidden": best, "best_val_acc": scores[best]})
        for path in (*written, SWEEP_CSV, png):
            run.log_artifact(path)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 mlp_select")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    result = run(load_settings(args.params))
    print(f"chosen hidden size {result['hidden']} ({METRIC} {result[METRIC]:.4f})")
