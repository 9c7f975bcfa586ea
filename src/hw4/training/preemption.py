"""Preemptible training: what a stage does when a scheduler stops it.

SIGTERM (a scheduler's stop; Kubernetes, SLURM at the time limit, `kill`) and SIGUSR1 (what
SLURM's `--signal` sends ahead of the end) end the fit when the training step they came in
ends (or the validation: one stopped half-way could not be resumed exactly): a checkpoint of
that moment (`last.ckpt`, what the next run resumes from: weights, optimiser, schedule, the
loops' counters, the training loader's place in its epoch), then `Preempted`, which ends
the stage's MLflow run KILLED and the process with 128 + the signal's number (143 for
SIGTERM), so no scheduler takes a stopped stage for a finished one. The next run, by hand, by
`dvc repro` or by a requeued job, resumes into the same MLflow run (ResumeState).
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from hw4.tracking.runs import Preempted

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preemption(Callback):
    """Stops the fit after SIGTERM or SIGUSR1 at the end of the training step (or validation) it
    came in, with a checkpoint of that moment in `checkpoint`."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self.signum: int | None = None

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # Installed over Lightning's handlers (it restores the process's own when the fit ends).
        # Lightning's SIGTERM flag would stop its loops in the middle of a validation, which no
        # checkpoint resumes exactly (the evaluation's loader starts over); a SIGUSR1 handler
        # that was there before the fit still runs.
        for signum in SIGNALS:
            previous = signal.getsignal(signum) if signum != signal.SIGTERM else None

            def handler(received: int, frame: FrameType | None, previous=previous) -> None:
                self.signum = self.signum or received
                if callable(previous):
                    previous(received, frame)

            signal.signal(signum, handler)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        self._stop_if_signalled(trainer)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop_if_signalled(trainer)

    def _stop_if_signalled(self, trainer: pl.Trainer) -> None:
        # Every rank stops at the same step, whichever ranks the signal reached (one all-reduce
        # of a flag under DDP; on one device, the flag itself).
        if not trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            return
        # Saved in these hooks, as ModelCheckpoint saves (every_n_train_steps, per epoch):
        # Lightning's loops resume such a checkpoint after the step. The loader has handed out
        # one item more than was trained on (Lightning fetches ahead): it is told how many were.
        loader = trainer.train_dataloader
        if hasattr(loader, "items_done"):
            loader.items_done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        trainer.save_checkpoint(self.checkpoint)
        raise SIGTERMException  # Lightning's own stop: its loops end and the fit raises it


def preempted(trainer: pl.Trainer) -> Preempted:
    """What a fit that raised Lightning's SIGTERMException ends the stage with."""
    signums = [c.signum for c in trainer.callbacks if isinstance(c, Preemption) and c.signum is not None]
    return Preempted(signums[0] if signums else signal.SIGTERM)
