"""The homework write-up's own numbers (src/hw4/report/homework_figures.yaml), typed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from hw4.config.settings import from_dict

FIGURES_FILE = Path(__file__).with_name("homework_figures.yaml")


@dataclass
class GradcheckFigures:
    note: str


@dataclass
class MLPFigures:
    dataset: str
    val_acc: dict[int, float]  # hidden units -> validation accuracy
    chosen_hidden: int
    chosen_val_acc: float
    test_acc: float


@dataclass
class CNNFigures:
    dataset: str
    test_acc: float
    train_time: str  # the write-up gives it in words ("about 35 minutes")


@dataclass
class CaptionSample:
    split: str
    generated: str
    truth: str


@dataclass
class CaptioningFigures:
    dataset: str
    note: str
    samples: list[CaptionSample]


@dataclass
class TransferModeFigures:
    final_val_acc: float
    best_val_acc: float


@dataclass
class TransferFigures:
    dataset: str
    epochs: int
    modes: dict[str, TransferModeFigures]


@dataclass
class HomeworkFigures:
    source: str
    gradcheck: GradcheckFigures
    mlp: MLPFigures
    cnn: CNNFigures
    captioning: CaptioningFigures
    transfer: TransferFigures


def load(path: Path = FIGURES_FILE) -> HomeworkFigures:
    return from_dict(HomeworkFigures, yaml.safe_load(Path(path).read_text()), path.name)
