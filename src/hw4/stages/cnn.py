"""Problem 3: the CNN on the MNIST family, one run per implementation of its layers.

    python -m hw4 cnn --impl torch      # torch.nn layers
    python -m hw4 cnn --impl scratch    # the hand-derived backward passes of hw4.layers
    python -m hw4 cnn --impl torch --seed 1   # one of params `seeds` (DVC: stage cnn@torch-1)

Both train through the same code with the same settings, so their MLflow runs compare
directly (experiment `cnn`, params `impl` and `seed`); `python -m hw4 seeds cnn/<impl>`
summarises an implementation's seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hw4.config.settings import ConfigError, flatten
from hw4.io import paths
from hw4.io.paths import RunFiles
from hw4.models.cnn import CNN, CNNConfig
from hw4.models.layer_choice import IMPLS, Impl
from hw4.models.nets import NetSpec
from hw4.training.image_classification import ImageClassification, train_classifier
from hw4.training.image_classifier import Augment
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Training
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings

EXPERIMENT = "cnn"
HEADLINE = ("test/acc",)  # in `dvc exp show` and `dvc metrics show`
SERVED_BY = "hw4.serving.image_classifier"  # its logged model: images in, classes out


@dataclass
class CNNSettings:
    """params.yaml `cnn`. `impls` drives the DVC matrix; each run reads the rest."""

    impls: list[Impl]
    arch: CNNConfig
    epochs: int
    batch_size: int
    eval_batch_size: int
    optim: OptimSettings
    early_stopping: EarlyStoppingSettings
    augment: Augment  # hflip: random horizontal mirroring (Fashion-MNIST, not digits)
    label_smoothing: float  # the training targets' weight spread over the other classes

    def validate(self, where: str) -> None:
        if not self.impls or len(set(self.impls)) != len(self.impls):
            raise ConfigError(f"params '{where}.impls': list each of torch, scratch at most once, at least one")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"params '{where}': epochs and batch sizes must be at least 1")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"params '{where}.label_smoothing': must be in [0, 1), got {self.label_smoothing}")


def run(s: Settings[CNNSettings], impl: Impl) -> dict[str, Any]:
    if impl not in s.task.impls:
        raise ConfigError(f"impl {impl!r} is not in params cnn.impls {s.task.impls}")
    cnn = {k: v for k, v in asdict(s.task).items() if k != "impls"}
    params = flatten({"impl": impl, "seed": s.seed, "cnn": cnn, "trainer": asdict(s.trainer)})
    job = Training(EXPERIMENT, f"cnn@{impl}-{s.seed}", RunFiles(EXPERIMENT, impl, s.seed), params, s.seed, s.trainer,
                   s.task.epochs, HEADLINE, test=True)
    task = ImageClassification(
        NetSpec(CNN, s.task.arch, impl), SERVED_BY, paths.MNIST_FAMILY, s.task.optim, s.task.batch_size,
        s.task.eval_batch_size, extra_metrics={"impl": impl}, augment=s.task.augment,
        label_smoothing=s.task.label_smoothing, early_stopping=s.task.early_stopping,
        score="val/acc",  # the last epoch's, whose weights are saved
    )
    return train_classifier(job, task)


STAGE = TrainingStage(EXPERIMENT, CNNSettings, run, matrix={"impl": IMPLS}, headline=HEADLINE)
load_settings, main = STAGE.load_settings, STAGE.main
