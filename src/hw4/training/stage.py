"""The skeleton every training stage shares: its settings, its seed and its command line.

A training stage module declares only what is its own: its params.yaml section (a dataclass,
with `validate(where)` for checks beyond types), its `run(settings, **matrix)` returning the
run's record, its matrix keys besides the seed and its headline numbers, and hands them to
`TrainingStage`:

    STAGE = TrainingStage("cnn", CNNSettings, run, matrix={"impl": IMPLS}, headline=("test/acc",))
    load_settings, main = STAGE.load_settings, STAGE.main

`python -m hw4 cnn --impl torch --seed 1` then loads `Settings[CNNSettings]` (the section as
`task`, the trainer's, the seed: one of params `seeds`, the first where not given), runs, and
prints the headline on rank 0. DVC's matrix stage `cnn` runs it per impl and seed, and
`cnn_seeds@<impl>` (`python -m hw4 seeds cnn/<impl>`) summarises the seeds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from hw4.config import command
from hw4.config.seeds import add_seed_argument, chosen_seed
from hw4.config.settings import load_params, section
from hw4.tracking.runs import is_global_rank_zero
from hw4.training.trainer import TrainerSettings

T = TypeVar("T")


@dataclass(frozen=True)
class Settings(Generic[T]):
    """What one run of a training stage reads from params.yaml."""

    task: T  # the stage's own section
    trainer: TrainerSettings
    seed: int  # one of params `seeds`


@dataclass(frozen=True)
class TrainingStage(Generic[T]):
    section: str  # its params.yaml section and MLflow experiment: cnn, mlp, transfer, captioning
    settings: type[T]  # the section's dataclass
    run: Callable[..., dict[str, Any]]  # run(Settings[T], **matrix values) -> the run's record
    # The dvc.yaml matrix keys besides `seed`, each a required option: its choices, or its type.
    matrix: Mapping[str, Sequence[str] | type]
    headline: Sequence[str]  # the numbers `dvc exp show` and the command's last line show
    command: str = ""  # `python -m hw4 <command>`; the section's name unless given
    errors: tuple[type[Exception], ...] = ()  # whose message says it all: one line, no traceback

    def load_settings(self, params_path: Path, seed: int | None = None) -> Settings[T]:
        params = load_params(params_path)
        return Settings(section(params, self.section, self.settings), section(params, "trainer", TrainerSettings),
                        chosen_seed(params, seed))

    def main(self, argv: list[str] | None = None) -> None:
        name = self.command or self.section
        parser = command.parser(name, sys.modules[self.run.__module__].__doc__)  # the stage module's
        for key, kind in self.matrix.items():
            about = f"this run's {key}: one of the values params {self.section} lists (DVC runs a stage for each)"
            if isinstance(kind, type):
                parser.add_argument(f"--{key}", type=kind, required=True, help=about)
            else:
                parser.add_argument(f"--{key}", choices=list(kind), required=True, help=about)
        add_seed_argument(parser)
        args = vars(parser.parse_args(argv))
        settings = self.load_settings(args.pop("params"), args.pop("seed"))
        with command.one_line_errors(name, *self.errors):
            record = self.run(settings, **args)
        if is_global_rank_zero():
            print(shown(record, self.headline))


def shown(record: Mapping[str, Any], headline: Sequence[str]) -> dict[str, Any]:
    """The record's headline numbers it has (an MLP point has val/acc, its final run test/acc)
    and its training time, rounded."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items() if k in (*headline, "train_time_s")}
