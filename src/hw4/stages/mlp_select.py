"""The `mlp_select` stage: the sweep's hidden size, chosen on validation accuracy.

    python -m hw4 mlp_select [--params params.yaml]

It reads the record of every point that params `mlp.hidden_sizes` and `seeds` name
(results/mlp/points/h<H>/seed<K>.json, written by `python -m hw4 mlp`) and follows the
homework's rule: the highest validation accuracy, here averaged over the seeds. With several
seeds it also says whether the chosen size beats the runner-up by more than the seeds' spread,
that is whether another set of seeds would likely choose it again.

The sweep's MLflow parent run is made here, after its points, and adopts their runs (every
size, every seed) as nested children: the points run as separate DVC stages (and may be rerun
one by one), so only the selection knows the sweep's membership. The parent's params are what
the selection read; each point's run holds the settings it trained with.

The selection trains nothing and imports neither torch nor Lightning: its process starts in
about 2 s, where a training stage's takes about 5.
"""

from __future__ import annotations

from typing import Any

from hw4.config import command
from hw4.config.seeds import seeds_of, summarise
from hw4.config.settings import ConfigError, flatten, load_params
from hw4.io import paths
from hw4.io.outputs import plot_curves, read_json, write_csv, write_results
from hw4.tracking.runs import StageRun, adopt_children

EXPERIMENT = "mlp"
METRIC = "val/acc"  # the last epoch's validation accuracy, as the homework reported it


def select_best(scores: dict[int, float]) -> int:
    """The size with the highest score; ties go to the smaller network."""
    if not scores:
        raise ValueError("no sweep points to select from")
    return max(sorted(scores), key=lambda h: scores[h])


def read_points(sizes: list[int], seeds: list[int]) -> dict[int, dict[str, Any]]:
    """Each size's seeds summarised (hw4.config.seeds.summarise): mean, std and per-seed values."""
    return {h: summarise({k: read_json(paths.mlp_point(h, k).record, "mlp_select") for k in seeds}) for h in sizes}


def significance(points: dict[int, dict[str, Any]], best: int) -> dict[str, Any]:
    """Whether `best` beats the runner-up by more than the seeds' spread (the larger of the
    two sizes' standard deviations over seeds): if not, other seeds may well choose otherwise."""
    if len(points) < 2:
        return {"runner_up": None, "margin": None, "spread": None, "beats_spread": None,
                "verdict": f"{best} units: the only size in the sweep"}
    runner_up = select_best({h: p[METRIC] for h, p in points.items() if h != best})
    margin = points[best][METRIC] - points[runner_up][METRIC]
    stds = [points[h][f"{METRIC}_std"] for h in (best, runner_up)]
    if None in stds:
        spread, beats, how = None, None, "one seed, so no spread was measured"
    else:
        spread = max(stds)
        beats = margin > spread
        how = f"{'more' if beats else 'less'} than the seeds' spread (std {spread:.4f})"
    return {"runner_up": runner_up, "margin": margin, "spread": spread, "beats_spread": beats,
            "verdict": f"{best} units beat {runner_up} by {margin:.4f} in mean {METRIC}, {how}"}


def run_select(sizes: list[int], seeds: list[int]) -> dict[str, Any]:
    """Choose the sweep's hidden size among `sizes` by the points' validation accuracy,
    averaged over `seeds`."""
    points = read_points(sizes, seeds)
    scores = {h: float(p[METRIC]) for h, p in points.items()}
    best = select_best(scores)
    rows = [_sweep_row(h, points[h]) for h in sorted(points)]
    write_csv(paths.MLP_SWEEP_CSV, rows)
    curves = ["val_acc", "val_acc_best"] + (["val_acc_minus_std", "val_acc_plus_std"] if len(seeds) > 1 else [])
    png = plot_curves(paths.MLP_SWEEP_PNG, rows, "hidden", {"validation accuracy": curves}, f"MLP sweep ({len(seeds)} seeds)")
    standin = any(p.get("standin") for p in points.values())
    params = flatten({"hidden_sizes": sizes, "seeds": seeds, "selection_metric": METRIC})
    with StageRun(EXPERIMENT, "mlp_select", params, [paths.MNIST_FAMILY], standin, run_name="sweep", tags={"sweep.role": "parent"}) as run:
        if run.active:
            adopt_children(run.run_id, [i for p in points.values() for i in p["run_ids"].values() if i])
        verdict = significance(points, best)
        result = {
            "hidden": best,
            "metric": METRIC,
            METRIC: scores[best],
            f"{METRIC}_std": points[best][f"{METRIC}_std"],
            "seeds": seeds,
            **verdict,
            "sweep_run_id": run.run_id,
            "points": {str(h): points[h] for h in sorted(points)},
            "dataset": points[best].get("dataset"),
            "standin": standin,
            "headline": ["hidden", METRIC],
        }
        written = write_results(paths.MLP_SELECTION, result)
        run.log_metrics({"best_hidden": best, "best_val_acc": scores[best],
                         **{k: verdict[k] for k in ("margin", "spread") if verdict[k] is not None}})
        run.set_tags({"sweep.verdict": verdict["verdict"]})
        for path in (*written, paths.MLP_SWEEP_CSV, png):
            run.log_artifact(path)
    return result


def _sweep_row(hidden: int, point: dict[str, Any]) -> dict[str, Any]:
    mean, std = point[METRIC], point[f"{METRIC}_std"]
    row = {"hidden": hidden, "val_acc": mean, "val_acc_std": std, "val_acc_best": point["val/acc_best"]}
    if std is not None:
        row |= {"val_acc_minus_std": mean - std, "val_acc_plus_std": mean + std}
    return row


def sweep_sizes(params: dict[str, Any]) -> list[int]:
    """params `mlp.hidden_sizes`. The points' stages check the sizes further (MLPSettings);
    a size without a point's record stops the selection, naming the file."""
    sizes = params.get("mlp", {}).get("hidden_sizes")
    if not isinstance(sizes, list) or not all(isinstance(h, int) and not isinstance(h, bool) for h in sizes):
        raise ConfigError(f"params 'mlp.hidden_sizes': expected a list of sizes, got {sizes!r}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    args = command.parser("mlp_select", __doc__).parse_args(argv)
    params = load_params(args.params)
    result = run_select(sweep_sizes(params), seeds_of(params))
    print(f"chosen hidden size {result['hidden']} ({METRIC} {result[METRIC]:.4f}): {result['verdict']}")
