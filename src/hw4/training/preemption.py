"""Preemptible training: what a stage does when a scheduler stops it.

SIGTERM (a scheduler's stop; Kubernetes, SLURM at the time limit, `kill`) and SIGUSR1 (what
SLURM's `--signal` sends ahead of the end) end the fit at the next training step: a checkpoint
of that moment (`last.ckpt`, what the next run resumes from: weights, optimiser, schedule,
the loops' counters, the training loader's place in its epoch), then `Preempted`, which ends
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
    """Stops the fit at the next step after SIGTERM or SIGUSR1 and checkpoints it to `checkpoint`."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self.signum: int | None = None
        self.saved = False

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # After Lightning's own handlers (it installs them when the fit starts), which are kept
        # (its SIGTERM flag stops its loops too) and which it restores when the fit ends.
        for signum in SIGNALS:
            previous = signal.getsignal(signum)

            def handler(received: int, frame: FrameType | None, previous=previous) -> None:
                self.signum = self.signum or received
                if callable(previous):
                    previous(received, frame)

            signal.signal(signum, handler)

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.signum is None:
            return
        # Saved here, as ModelCheckpoint's every_n_train_steps saves: Lightning's loops resume a
        # checkpoint of this hook after this step. The loader has handed out one item more than
        # was trained on (Lightning fetches ahead): it is told how many were.
        self._save(trainer, trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        raise SIGTERMException  # Lightning's own stop: its loops end and the fit raises it

    def on_exception(self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException) -> None:
        # A SIGTERM between this hook and Lightning's own check (after the step's bookkeeping)
        # stops the fit there, without the hook above: the checkpoint is taken here instead.
        if self.signum is not None and not self.saved and isinstance(exception, SIGTERMException):
            self._save(trainer, trainer.fit_loop.epoch_loop.batch_progress.current.completed)

    def _save(self, trainer: pl.Trainer, items_trained: int) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "items_done"):
            loader.items_done = items_trained
        trainer.save_checkpoint(self.checkpoint)
        self.saved = True


def preempted(trainer: pl.Trainer) -> Preempted:
    """What a fit that raised Lightning's SIGTERMException ends the stage with."""
    signums = [c.signum for c in trainer.callbacks if isinstance(c, Preemption) and c.signum is not None]
    return Preempted(signums[0] if signums else signal.SIGTERM)
