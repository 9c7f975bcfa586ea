"""Where a pipeline's time went, read from its MLflow runs: per stage process, its start-up
(process start to the run's start: imports, settings, the store), its training (the run's
`train_time_s`), the rest of its run (evaluation, files, the model and the registry), and the
gap before it (from the previous run's end: the previous process's exit and DVC's own work).

    .venv/bin/python scripts/time_breakdown.py                    # the repository's store
    .venv/bin/python scripts/time_breakdown.py --since 2026-12-06T10:00 --tracking-uri URI

Each stage run carries the start of its process (tag `process.started_ms`); runs without it
(made by other code) are left out.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import datetime

from hw4.tracking.provenance import PROCESS_STARTED
from hw4.tracking.runs import PARENT_TAG, client, tracking_uri


@dataclass
class Process:
    """One stage process and the runs it made (a selection also opens the sweep's parent)."""

    stage: str
    started_ms: int
    run_start_ms: int  # its first run's
    run_end_ms: int  # its last run's
    training_s: float

    @property
    def startup_s(self) -> float:
        return (self.run_start_ms - self.started_ms) / 1000

    @property
    def rest_of_run_s(self) -> float:
        return (self.run_end_ms - self.run_start_ms) / 1000 - self.training_s


def processes(since_ms: int = 0) -> list[Process]:
    """The stage processes whose runs are in the store (`tracking_uri()`), in start order."""
    c = client()
    ids = [e.experiment_id for e in c.search_experiments()]
    runs = c.search_runs(ids, max_results=50_000) if ids else []
    # A parent run (a sweep, a seeds summary) carries its children's numbers, train_time_s among them.
    parents = {run.data.tags.get(PARENT_TAG) for run in runs}
    by_process: dict[int, Process] = {}
    for run in runs:
        started = run.data.tags.get(PROCESS_STARTED)
        if started is None or run.info.end_time is None or run.info.start_time < since_ms:
            continue
        p = by_process.setdefault(int(started), Process(run.data.tags.get("dvc.stage", run.info.run_name), int(started),
                                                        run.info.start_time, run.info.end_time, 0.0))
        p.run_start_ms = min(p.run_start_ms, run.info.start_time)
        p.run_end_ms = max(p.run_end_ms, run.info.end_time)
        if run.info.run_id not in parents:
            p.training_s += run.data.metrics.get("train_time_s", 0.0)
    return sorted(by_process.values(), key=lambda p: p.started_ms)


def table(procs: list[Process]) -> str:
    gaps = [0.0] + [max(0.0, (p.started_ms - q.run_end_ms) / 1000) for q, p in zip(procs, procs[1:])]
    rows = [(p.stage, p.startup_s, p.training_s, p.rest_of_run_s, gap) for p, gap in zip(procs, gaps)]
    totals = (f"**all {len(procs)} processes**", *(sum(column) for column in list(zip(*rows))[1:] or [[0.0]] * 4))
    lines = ["| stage | start-up s | training s | rest of run s | gap before s |", "|---|---|---|---|---|"]
    lines += [f"| {stage} | " + " | ".join(f"{v:.1f}" for v in values) + " |" for stage, *values in [*rows, totals]]
    if procs:
        wall = (procs[-1].run_end_ms - procs[0].started_ms) / 1000
        lines.append(f"\nfirst process start to last run end: {wall:.0f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None, help="default: the repository's store ($MLFLOW_TRACKING_URI or mlflow.db)")
    parser.add_argument("--since", type=datetime.fromisoformat, help="only runs started at or after this local time")
    args = parser.parse_args()
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    print(f"runs in {tracking_uri()}")
    print(table(processes(round(args.since.timestamp() * 1000) if args.since else 0)))


if __name__ == "__main__":
    main()
