"""Lightning's view of a `StageRun`: its own module, so that what reads runs and models
(`predict`, the report) never imports Lightning."""

from __future__ import annotations

import time
from typing import Any, Mapping

from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from hw4.tracking.runs import StageRun


class MLflowRunLogger(Logger):
    """Lightning's view of a `StageRun`: metrics go to its run, hyperparameters do not.

    The stage logs its settings as flattened params itself, once; Lightning's own
    MLFlowLogger would open a run per rank and log hparams again on resume. Metrics wait
    in a buffer and go to MLflow in one batch (one SQLite transaction, ~5 ms of CPU): on
    `flush()`, which the modules call before a checkpoint is written, so a resumed run
    lacks no epoch; on `finalize()`, which Lightning calls when fit or test ends or fails;
    and on `save()`, which the modules call at each epoch's end, if `flush_every_s` has
    passed since the last write (an MLP epoch at batch 500 takes ~0.15 s on two cores).
    """

    def __init__(self, run: StageRun, flush_every_s: float = 1.0):
        super().__init__()
        self._run = run
        self._pending: list[tuple[dict[str, float], int | None]] = []
        self.flush_every_s = flush_every_s
        self._flushed_at = time.monotonic()

    @property
    def name(self) -> str:
        return self._run.experiment

    @property
    def version(self) -> str:
        return self._run.run_id or "inactive"

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._pending.append(({k: v for k, v in metrics.items() if k != "epoch"}, step))

    @rank_zero_only
    def flush(self) -> None:
        rows, self._pending = self._pending, []
        self._run.log_metric_rows(rows)
        self._flushed_at = time.monotonic()

    @rank_zero_only
    def save(self) -> None:
        if time.monotonic() - self._flushed_at >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass
