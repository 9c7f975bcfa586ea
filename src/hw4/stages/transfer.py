"""Problem 5: transfer learning, ResNet18 fine-tuned against a frozen backbone (ants vs bees).

    python -m hw4 transfer --mode finetune   # every parameter trains
    python -m hw4 transfer --mode freeze     # only the new 2-way head trains

One MLflow run per mode and seed of params `seeds` (`--seed`, the first if not given) in the
experiment `transfer`; DVC runs them as `transfer@<mode>-<seed>`, and `python -m hw4 seeds
transfer/<mode>` summarises a mode's seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pytorch_lightning as pl
import torch

from hw4.config.settings import ConfigError, flatten
from hw4.data.loaders.image_folders import ImageFolderData, ImageFolderError, tree_sha256
from hw4.data.standins.marker import is_standin
from hw4.io import paths
from hw4.io.paths import RunFiles
from hw4.models.nets import NetSpec
from hw4.models.resnet import Pretrained, ResNet18Config, Weights, WeightsError, resnet18_classifier, resolve_weights
from hw4.tracking.logged_models import ModelToLog
from hw4.tracking.runs import DatasetRef
from hw4.training.run_outputs import RunOutputs
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Fitted, Training, tracked_fit
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings, Monitor
from hw4.training.transfer_module import MODES, Mode, TransferClassifier, mode_callbacks

EXPERIMENT = "transfer"
DATASET = "hymenoptera"
HEADLINE = ("val/acc_best",)  # in `dvc exp show` and `dvc metrics show`: the saved epoch's
CURVE_COLUMNS = ("epoch", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "lr", "epoch_time_s")


@dataclass
class TransferSettings:
    """params.yaml `transfer`. `modes` drives the DVC matrix; each mode reads the rest.

    `pretrained` says what the backbone starts from:
      imagenet               the ImageNet weights: the file `weights`, else the file of the same
                             name in torch's hub cache ($TORCH_HOME/hub/checkpoints); neither
                             there stops the stage.
      imagenet_if_available  the same search, but with neither there the backbone is randomly
                             initialised, and every output says `weights: random` (the demo).
      random                 a randomly initialised backbone; `weights` is not read.
    A weights file that is found but whose sha256 does not start with the hash in its name
    stops the stage in every case: it is never silently replaced by a random backbone.
    `image_size` is the crop (224 in the tutorial); evaluation resizes to 256/224 of it first.
    """

    data_dir: str
    weights: str
    pretrained: Pretrained
    modes: list[Mode]
    epochs: int
    batch_size: int  # global: split across devices under DDP
    workers: int  # DataLoader processes decoding and augmenting images
    lr: float
    momentum: float
    step_size: int  # StepLR: the rate is multiplied by gamma every step_size epochs
    gamma: float
    image_size: int
    early_stopping: EarlyStoppingSettings

    def validate(self, where: str) -> None:
        if not self.modes or len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"params '{where}.modes': list each of {list(MODES)} at most once, at least one")
        small = [k for k in ("epochs", "batch_size", "step_size", "image_size") if getattr(self, k) < 1]
        if small:
            raise ConfigError(f"params '{where}': {small} must be positive")
        if self.workers < 0:
            raise ConfigError(f"params '{where}.workers': must be 0 (load in the main process) or more")
        if self.lr <= 0 or not 0 < self.gamma <= 1 or not 0 <= self.momentum < 1:
            raise ConfigError(f"params '{where}': need lr > 0, 0 < gamma <= 1 and 0 <= momentum < 1")


def run(s: Settings[TransferSettings], mode: Mode) -> dict[str, Any]:
    t = s.task
    if mode not in t.modes:
        raise ConfigError(f"mode {mode!r} is not in params transfer.modes {t.modes}")
    data_dir = paths.raw_input(t.data_dir)
    data = ImageFolderData(data_dir, t.image_size, t.batch_size, t.workers, s.seed)
    standin = is_standin(data_dir)
    _report_data(data, standin)
    weights = resolve_weights(t.pretrained, paths.raw_input(t.weights))
    print(f"transfer: backbone {_describe_weights(weights)}")

    params = _run_params(s, mode, data, weights, standin)
    label = _label(mode, s.seed, weights, standin)
    training = Training(
        EXPERIMENT, f"transfer@{mode}-{s.seed}", RunFiles(EXPERIMENT, mode, s.seed), params, s.seed, s.trainer, t.epochs,
        HEADLINE, dataset=DATASET, standin=standin, tags={"mode": mode, "weights": weights.kind}, run_name=label,
        # The tutorial's `best_model_wts`: the weights of the first epoch with the best validation accuracy.
        best=Monitor("val/acc", "max"), callbacks=[*mode_callbacks(mode), *t.early_stopping.callbacks()],
        datasets=[DatasetRef(f"{DATASET}/{split}", tree_sha256({split: scan})[:32], str(scan.root),
                             "train" if split == "train" else "validation") for split, scan in data.scans.items()],
    )

    def make_module() -> TransferClassifier:
        net = net_spec(data).build(state_dict=weights.state_dict)  # the head's initial weights follow the seed
        optim = OptimSettings("sgd", t.lr, t.momentum, weight_decay=0.0, lr_decay=1.0)  # StepLR decays instead
        return TransferClassifier(net, optim, t.step_size, t.gamma, len(data.classes))

    def outputs(fitted: Fitted) -> RunOutputs:
        record = best_epoch_summary(fitted.module.history) | {"mode": mode, "weights": weights.kind,
                                                     "train_images_per_s": fitted.samples_per_s(len(data.scans["train"].samples))}
        meta = {"mode": mode, "weights": weights.kind, "standin": standin, "dataset": DATASET, "classes": list(data.classes),
                "epoch": record["best_epoch"], "val/acc": record["val/acc_best"]}
        rows = [{k: r.get(k) for k in CURVE_COLUMNS} | {"standin": standin} for r in fitted.module.history]
        return RunOutputs(
            record, rows, {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc"]}, label,
            best_model(fitted.trainer, meta), logged={k: record[k] for k in ("val/acc_best", "best_epoch", "epoch_time_s")},
            logged_step=record["epochs"] - 1, model=logged_model(s, mode, data, record, standin),
        )

    return tracked_fit(training, make_module, data, outputs)


def best_model(trainer: pl.Trainer, meta: dict[str, Any]) -> dict[str, Any]:
    """The network's weights from the best checkpoint, with `meta`: loadable without Lightning
    (`resnet18_classifier(ResNet18Config(2)).load_state_dict(...["state_dict"])`). The checkpoint stays in the
    (persistent) checkpoint directory, so a resumed run still has it; DVC removes the model
    output before every run."""
    checkpoint = torch.load(trainer.checkpoint_callback.best_model_path, map_location="cpu", weights_only=True)
    net = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    return {"state_dict": net, "meta": meta}


def logged_model(s: Settings[TransferSettings], mode: Mode, data: ImageFolderData, record: dict[str, Any], standin: bool) -> ModelToLog:
    """The saved (best epoch's) network as an MLflow Model taking image files (hw4.serving.transfer_classifier),
    registered as hw4-transfer-<dataset> and ranked by the best validation accuracy, whose weights these are."""
    spec = {"net": net_spec(data).to_json(), "classes": list(data.classes), "image_size": s.task.image_size,
            "mode": mode, "dataset": DATASET}
    return ModelToLog(
        flavor="hw4.serving.transfer_classifier", files={"weights": RunFiles(EXPERIMENT, mode, s.seed).weights},
        specs={"spec": spec}, example=[path for path, _ in data.scans["val"].samples[:2]],
        task=EXPERIMENT, score=record["val/acc_best"], score_name="val/acc_best",
        tags={"mode": mode, "weights": str(record["weights"])},
    )


def net_spec(data: ImageFolderData) -> NetSpec:
    """ResNet18 with a head of as many outputs as the data has classes."""
    return NetSpec(resnet18_classifier, ResNet18Config(len(data.classes)))


def best_epoch_summary(history: list[dict[str, float]]) -> dict[str, Any]:
    """The last epoch's metrics, and the best validation accuracy with its (first) epoch."""
    rows = [r for r in history if "val/acc" in r]
    best = max(rows, key=lambda r: r["val/acc"])  # max keeps the first of equal values
    last = rows[-1]
    return {
        **{k: last[k] for k in ("train/loss", "train/acc", "val/loss", "val/acc") if k in last},
        "val/acc_best": best["val/acc"],
        "best_epoch": int(best["epoch"]),
        "epochs": len(rows),
        "epoch_time_s": round(sum(r["epoch_time_s"] for r in rows) / len(rows), 3),
    }


def _run_params(s: Settings[TransferSettings], mode: Mode, data: ImageFolderData, weights: Weights, standin: bool) -> dict[str, Any]:
    """What one mode's run depends on: its settings (not the list of modes) and its inputs."""
    transfer = {k: v for k, v in asdict(s.task).items() if k != "modes"}
    return flatten({"mode": mode, "seed": s.seed, "transfer": transfer, "trainer": asdict(s.trainer)}) | {
        "data.dataset": DATASET,
        "data.standin": standin,
        "data.sha256": tree_sha256(data.scans),
        "data.classes": ",".join(data.classes),
        **{f"data.{split}.images": len(scan.samples) for split, scan in data.scans.items()},
        **{f"data.{split}.skipped": len(scan.skipped) for split, scan in data.scans.items()},
        "weights": weights.kind,
        "weights.sha256": weights.sha256 or "none",
        "batch_size_semantics": "global",
    }


def _report_data(data: ImageFolderData, standin: bool) -> None:
    """The log's count of images per split and of the files left out as not images."""
    kind = "GENERATED STAND-IN data" if standin else "data"
    for split, scan in data.scans.items():
        line = f"transfer: {kind} {scan.root}: {len(scan.samples)} images of {list(data.classes)}"
        skipped = [str(p.relative_to(scan.root)) for p in scan.skipped]
        print(line + (f"; skipped {len(skipped)} non-image file(s): {', '.join(skipped)}" if skipped else ""))


def _describe_weights(weights: Weights) -> str:
    if weights.kind == "random":
        return "randomly initialised (no ImageNet weights)"
    return f"ImageNet weights from {weights.path} (sha256 {weights.sha256[:16]}..., verified)"


def _label(mode: Mode, seed: int, weights: Weights, standin: bool) -> str:
    """Run name and figure title: says which backbone and whether the data is real."""
    notes = [f"{weights.kind} backbone"] + (["STAND-IN data"] if standin else [])
    return f"transfer@{mode}-{seed} ({', '.join(notes)})"


STAGE = TrainingStage(EXPERIMENT, TransferSettings, run, matrix={"mode": MODES}, headline=HEADLINE,
                      errors=(ImageFolderError, WeightsError))
load_settings, main = STAGE.load_settings, STAGE.main
