"""One evaluation over its seeds: mean and standard deviation, and an MLflow parent run.

    python -m hw4 seeds cnn/torch          # metrics/cnn/torch/seed<k>.json -> metrics/cnn/torch.json
    python -m hw4 seeds mlp/final          # also captioning/<model>, transfer/<mode>, any <task>/<name>

Reads the seeds' results files (results/<evaluation>/seed<k>.json for every k of params
`seeds`), writes the evaluation's record where a single run's used to be (hw4.config.seeds), and
makes a parent run that adopts the seeds' runs as nested children, so the MLflow UI shows
them side by side. Like `mlp_select`, it runs after the seeds, which DVC may rerun one by one.
"""

from __future__ import annotations

import re
from typing import Any

from hw4.config import command
from hw4.config.seeds import seeds_of, summarise
from hw4.config.settings import ConfigError, load_params
from hw4.io.outputs import read_json, write_results
from hw4.io.paths import per_seed, record_path, summary_metrics
from hw4.tracking.runs import StageRun, adopt_children, run_tags

PATH_PART = r"[A-Za-z0-9_][\w.-]*"  # one folder name of hw4.io.paths: a DVC matrix member such as resnet-18, never ..


def stage_name(evaluation: str) -> str:
    """cnn/torch -> cnn_seeds@torch (a matrix stage); mlp/final -> mlp_final_seeds."""
    experiment, member = evaluation.split("/")
    return "mlp_final_seeds" if experiment == "mlp" else f"{experiment}_seeds@{member}"


def experiment_of(evaluation: str) -> str:
    """The MLflow experiment of an evaluation (its first part), checking its form.

    Any `<task>/<name>` written by the RunFiles convention (hw4.io.paths) is summarised, so a
    new training stage needs nothing here; the MLP's sweep points are mlp_select's to summarise."""
    parts = evaluation.split("/")
    if not (len(parts) == 2 and all(re.fullmatch(PATH_PART, p) for p in parts)):
        raise ConfigError(f"evaluation {evaluation!r}: expected <task>/<name> such as mlp/final, cnn/<impl>, "
                          "captioning/<model> or transfer/<mode>")
    if parts[0] == "mlp" and parts[1] != "final":
        raise ConfigError(f"evaluation {evaluation!r}: the MLP's sweep points are summarised by mlp_select; "
                          "of the MLP, seeds summarises mlp/final")
    return parts[0]


def run(evaluation: str, seeds: list[int]) -> dict[str, Any]:
    experiment = experiment_of(evaluation)
    metrics = summary_metrics(evaluation)
    needed_by = f"python -m hw4 seeds {evaluation}"
    summary = summarise({k: read_json(record_path(per_seed(metrics, k)), needed_by) for k in seeds})
    children = [i for i in summary["run_ids"].values() if i]
    tags = {"seeds.role": "parent", **_device_tag(children)}
    params = {"evaluation": evaluation, "seeds": ",".join(map(str, seeds))}
    with StageRun(experiment, stage_name(evaluation), params, standin=bool(summary.get("standin")), tags=tags,
                  run_name=f"{evaluation} ({len(seeds)} seed{'s' * (len(seeds) > 1)})") as parent:
        if parent.active:
            adopt_children(parent.run_id, children)
        summary["run_id"] = parent.run_id
        written = write_results(metrics, summary)
        parent.log_metrics({k: v for k, v in summary.items() if isinstance(v, float)})
        for path in written:
            parent.log_artifact(path)
    return summary


def _device_tag(children: list[str]) -> dict[str, str]:
    """The device the seeds trained on (their runs' tag), not the one that averaged them."""
    devices = {tags.get("device") for tags in map(run_tags, children) if tags and tags.get("device")}
    return {"device": ", ".join(sorted(devices))} if devices else {}


def main(argv: list[str] | None = None) -> None:
    parser = command.parser("seeds", __doc__)
    parser.add_argument("evaluation", help="<task>/<name>: mlp/final, cnn/<impl>, captioning/<model>, transfer/<mode>, ...")
    args = parser.parse_args(argv)
    summary = run(args.evaluation, seeds_of(load_params(args.params)))
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items() if "/" in k})
