"""Problem 2: the MLP's hidden-size sweep: its points, the selection, and the final run.

    python -m hw4 mlp --hidden 150 --seed 0   # train on train, validate every epoch
    python -m hw4 mlp_select                  # pick the best size from the points' results files
    python -m hw4 mlp_final --seed 0          # retrain the chosen size on train + val, test once

Each point and the final run repeat once per seed of params `seeds` (DVC: `mlp@150-0`,
`mlp_final@0`); `--seed` defaults to the first.

The selection follows the homework's rule: the highest validation accuracy, here averaged
over the seeds. With several seeds it also says whether the chosen size beats the runner-up
by more than the seeds' spread, that is whether another set of seeds would likely choose it
again. The sweep's MLflow parent run is made by the selection, after its points, and adopts
their runs (every size, every seed) as nested children: the points run as separate DVC
stages (and may be rerun one by one), so only the selection knows the sweep's membership.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hw4.config import command
from hw4.config.seeds import seeds_of, summarise
from hw4.config.settings import ConfigError, flatten, load_params
from hw4.io import paths
from hw4.io.outputs import plot_curves, read_json, write_csv, write_results
from hw4.io.paths import RunFiles, per_seed, record_path
from hw4.models.mlp import MLP, Impl, MLPConfig
from hw4.models.nets import NetSpec
from hw4.tracking.runs import StageRun, adopt_children
from hw4.training.image_classification import ImageClassification, train_classifier
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Training
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings

EXPERIMENT = "mlp"
HEADLINE = ("val/acc", "test/acc")  # in `dvc exp show` and `dvc metrics show`: a point's val/acc, the final run's test/acc
SERVED_BY = "hw4.serving.image_classifier"  # its logged models: images in, classes out
METRIC = "val/acc"  # the selection's: the last epoch's validation accuracy, as the homework reported it


@dataclass
class MLPSettings:
    """params.yaml `mlp`. The sweep list drives the DVC matrix; each point reads the rest."""

    hidden_sizes: list[int]
    impl: Impl
    epochs: int
    batch_size: int
    eval_batch_size: int
    # Optimiser steps per Lightning training_step: a small MLP's step is shorter than Lightning's
    # loop around it, which several steps share (benchmarks/bench_lightning.py); the weights are the same.
    steps_per_call: int
    optim: OptimSettings
    early_stopping: EarlyStoppingSettings  # the sweep's points; the final run trains every epoch

    def validate(self, where: str) -> None:
        if not self.hidden_sizes:
            raise ConfigError(f"params '{where}.hidden_sizes': the sweep is empty; list at least one size")
        bad = [h for h in self.hidden_sizes if h <= 0]
        if bad:
            raise ConfigError(f"params '{where}.hidden_sizes': sizes must be positive, got {bad}")
        if len(set(self.hidden_sizes)) != len(self.hidden_sizes):
            raise ConfigError(f"params '{where}.hidden_sizes': duplicate sizes in {self.hidden_sizes}")
        if min(self.epochs, self.batch_size, self.eval_batch_size, self.steps_per_call) < 1:
            raise ConfigError(f"params '{where}': epochs, batch sizes and steps_per_call must be at least 1")


def _point_params(s: Settings[MLPSettings], hidden: int) -> dict[str, Any]:
    """What one run depends on: the training settings and this size, not the sweep list."""
    mlp = {k: v for k, v in asdict(s.task).items() if k != "hidden_sizes"}
    return flatten({"hidden": hidden, "seed": s.seed, "mlp": mlp, "trainer": asdict(s.trainer)})


def point_files(hidden: int, seed: int) -> RunFiles:
    """A sweep point's files, one folder down (metrics/mlp/points/h150/seed0.json): the
    selection depends on results/mlp/points/ as a whole, whatever the sweep holds."""
    return RunFiles(EXPERIMENT, f"points/h{hidden}", seed)


def _job(s: Settings[MLPSettings], hidden: int, files: RunFiles, stage: str, test: bool, tags: dict[str, str]) -> Training:
    """The run of `hidden` units under seed `s.seed`, writing `files` (a point's, or the final run's)."""
    return Training(EXPERIMENT, stage, files, _point_params(s, hidden), s.seed, s.trainer, s.task.epochs, HEADLINE,
                    tags=tags, test=test)


def _classification(s: Settings[MLPSettings], hidden: int, **choices: Any) -> ImageClassification:
    return ImageClassification(
        NetSpec(MLP, MLPConfig(hidden=hidden), s.task.impl), SERVED_BY, paths.MNIST_FAMILY, s.task.optim, s.task.batch_size,
        s.task.eval_batch_size, steps_per_call=s.task.steps_per_call, early_stopping=s.task.early_stopping, **choices)


def run_point(s: Settings[MLPSettings], hidden: int) -> dict[str, Any]:
    if hidden not in s.task.hidden_sizes:
        raise ConfigError(f"hidden size {hidden} is not in params mlp.hidden_sizes {s.task.hidden_sizes}")
    job = _job(s, hidden, point_files(hidden, s.seed), f"mlp@{hidden}-{s.seed}", test=False, tags={"sweep.role": "point"})
    return train_classifier(job, _classification(s, hidden, extra_metrics={"hidden": hidden}))


def run_final(s: Settings[MLPSettings]) -> dict[str, Any]:
    chosen = read_json(record_path(paths.MLP_SELECTION), "mlp_final")
    tags = {"sweep.role": "final", "sweep.run_id": str(chosen["sweep_run_id"])}
    hidden = int(chosen["hidden"])
    job = _job(s, hidden, RunFiles(EXPERIMENT, "final", s.seed), f"mlp_final@{s.seed}", test=True, tags=tags)
    task = _classification(
        s, hidden,
        train_on_val=True,  # the validation split has chosen the size; the retraining learns from it too
        curve_csv=per_seed(paths.MLP_FINAL_CSV, s.seed),
        extra_metrics={"hidden": hidden, "sweep_run_id": chosen["sweep_run_id"], "val_acc_selected": chosen["val/acc"]},
        score="val_acc_selected",  # the chosen size's mean over seeds: this run trains on val
    )
    return train_classifier(job, task)


def select_best(scores: dict[int, float]) -> int:
    """The size with the highest score; ties go to the smaller network."""
    if not scores:
        raise ValueError("no sweep points to select from")
    return max(sorted(scores), key=lambda h: scores[h])


def read_points(sizes: list[int], seeds: list[int]) -> dict[int, dict[str, Any]]:
    """Each size's seeds summarised (hw4.config.seeds.summarise): mean, std and per-seed values."""
    return {h: summarise({k: read_json(point_files(h, k).record, "mlp_select") for k in seeds}) for h in sizes}


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


def run_select(s: Settings[MLPSettings], seeds: list[int]) -> dict[str, Any]:
    """Choose the sweep's hidden size by the points' validation accuracy, averaged over the seeds."""
    points = read_points(s.task.hidden_sizes, seeds)
    scores = {h: float(p[METRIC]) for h, p in points.items()}
    best = select_best(scores)
    rows = [_sweep_row(h, points[h]) for h in sorted(points)]
    write_csv(paths.MLP_SWEEP_CSV, rows)
    curves = ["val_acc", "val_acc_best"] + (["val_acc_minus_std", "val_acc_plus_std"] if len(seeds) > 1 else [])
    png = plot_curves(paths.MLP_SWEEP_PNG, rows, "hidden", {"validation accuracy": curves}, f"MLP sweep ({len(seeds)} seeds)")
    standin = any(p.get("standin") for p in points.values())
    params = flatten({"hidden_sizes": s.task.hidden_sizes, "seeds": seeds, "selection_metric": METRIC,
                      "mlp": asdict(s.task.optim)})
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


STAGE = TrainingStage(EXPERIMENT, MLPSettings, run_point, matrix={"hidden": int}, headline=HEADLINE)
FINAL = TrainingStage(EXPERIMENT, MLPSettings, run_final, matrix={}, headline=HEADLINE, command="mlp_final")
load_settings, main, main_final = STAGE.load_settings, STAGE.main, FINAL.main


def main_select(argv: list[str] | None = None) -> None:
    args = command.parser("mlp_select", __doc__).parse_args(argv)
    result = run_select(load_settings(args.params), seeds_of(load_params(args.params)))
    print(f"chosen hidden size {result['hidden']} ({METRIC} {result[METRIC]:.4f}): {result['verdict']}")
