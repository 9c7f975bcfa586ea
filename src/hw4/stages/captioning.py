"""Problem 4: train one captioning model on the prepared COCO features and score it for real.

    python -m hw4 captioning --model rnn --seed 0   # rnn | lstm | blind, a seed of params `seeds`

Each model and seed is one DVC matrix item (`captioning@rnn-0`) and one MLflow run in
experiment `captioning`; `python -m hw4 seeds captioning/<model>` summarises the seeds. After training, the validation
images are captioned (greedy or beam search) and scored with corpus BLEU-1..4 and CIDEr-D
against all their references. `blind` is the `blind_cell` network trained and decoded with
the image features zeroed: a language model that never sees the picture, the baseline the
others must beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hw4.config.settings import ConfigError, flatten
from hw4.data.formats.coco_features import CAPTIONS_FILE, EXTRACTOR_FILE, PREPARED_FEATURE_FILES
from hw4.data.loaders.caption_batches import CocoCaptions
from hw4.evaluation import captioning as ev
from hw4.io import paths
from hw4.io.checksums import arrays_sha256
from hw4.io.paths import RunFiles
from hw4.models.captioner import Captioner, CaptionerConfig, Cell
from hw4.models.nets import NetSpec
from hw4.tracking.logged_models import ModelToLog
from hw4.tracking.runs import DatasetRef
from hw4.training.captioning_module import CaptioningModule
from hw4.training.run_outputs import RunOutputs
from hw4.training.stage import Settings, TrainingStage
from hw4.training.tracked_fit import Fitted, Training, tracked_fit
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import EarlyStoppingSettings, Monitor

EXPERIMENT = "captioning"
MODELS = ("rnn", "lstm", "blind")
HEADLINE = ("val/bleu4",)  # in `dvc exp show` and `dvc metrics show`


@dataclass
class DecodingSettings:
    beam_width: int  # 1 is greedy decoding
    max_length: int  # words generated at most when no <END> comes


@dataclass
class CaptioningSettings:
    """params.yaml `captioning` (named settings: conf/captioning/*.yaml)."""

    models: list[str]  # the DVC matrix: each one of MODELS
    blind_cell: Cell  # the network the blind baseline trains
    hidden_dim: int
    wordvec_dim: int
    epochs: int
    batch_size: int  # global: split across devices under DDP
    eval_batch_size: int
    max_train: int  # training captions kept (seeded draw); 0 keeps all
    optim: OptimSettings
    decoding: DecodingSettings
    eval_images: int  # validation images scored (seeded draw); 0 scores all
    samples: int  # sample captions shown per split
    early_stopping: EarlyStoppingSettings

    def validate(self, where: str) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if not self.models or unknown:
            raise ConfigError(f"params '{where}.models': list some of {list(MODELS)}; unknown: {unknown}")
        if min(self.hidden_dim, self.wordvec_dim, self.epochs, self.batch_size, self.eval_batch_size) < 1:
            raise ConfigError(f"params '{where}': sizes, epochs and batch sizes must be at least 1")
        if min(self.max_train, self.eval_images, self.samples) < 0:
            raise ConfigError(f"params '{where}': max_train, eval_images and samples must be >= 0 (0: all / none)")
        if self.decoding.beam_width < 1 or self.decoding.max_length < 1:
            raise ConfigError(f"params '{where}.decoding': beam_width and max_length must be at least 1")


def cell_of(s: CaptioningSettings, model: str) -> tuple[Cell, bool]:
    """(cell, blind) of a model name."""
    return (s.blind_cell, True) if model == "blind" else (model, False)  # type: ignore[return-value]


def run_params(s: Settings[CaptioningSettings], model: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What this run depends on, flattened for MLflow: not the list of the other models."""
    cell, blind = cell_of(s.task, model)
    own = {k: v for k, v in asdict(s.task).items() if k not in ("models", "blind_cell")}
    decoding = "greedy" if s.task.decoding.beam_width == 1 else "beam"
    data = {k: meta.get(k) for k in ("source", "dataset", "backbone", "weights", "pca_dim", "feature_dim", "vocab_size")}
    return flatten(
        {"model": model, "cell": cell, "blind": blind, "decoding": decoding, "seed": s.seed, "captioning": own,
         "trainer": asdict(s.trainer), "data": data}
    ) | {"batch_size_semantics": "global"}


def run(s: Settings[CaptioningSettings], model: str, data_dir: Path = paths.COCO) -> dict[str, Any]:
    """Train `model`, score it on the validation split, write its files; return its metrics."""
    c = s.task
    if model not in c.models:
        raise ConfigError(f"model {model!r} is not in params captioning.models {c.models}")
    data = CocoCaptions(data_dir, c.batch_size, c.eval_batch_size, c.max_train, s.seed)
    cell, blind = cell_of(c, model)
    net = net_spec(c, data, cell)
    out = RunFiles(EXPERIMENT, model, s.seed)
    stage = f"captioning@{model}-{s.seed}"
    training = Training(
        EXPERIMENT, stage, out, run_params(s, model, data.meta), s.seed, s.trainer, c.epochs, HEADLINE,
        dataset=data.meta.get("dataset", "unknown"), standin=bool(data.meta.get("standin", False)),
        data_files=[Path(data_dir) / CAPTIONS_FILE, *(Path(data_dir) / f for f in PREPARED_FEATURE_FILES.values())],
        run_name=f"{model} (seed {s.seed})", best=Monitor("val/loss", "min"), callbacks=c.early_stopping.callbacks(),
        datasets=inputs(data, Path(data_dir)),
    )

    def make_module() -> CaptioningModule:
        return CaptioningModule(net.build(), c.optim, blind=blind)

    def outputs(fitted: Fitted) -> RunOutputs:
        module = fitted.module
        scores = evaluate(s, module, data, fitted.trainer.strategy.root_device, out, stage)
        last_epoch = {k: v for k, v in module.history[-1].items() if k != "epoch"} if module.history else {}
        record = last_epoch | scores | {
            "model": model, "cell": cell, "blind": blind, "epochs": fitted.trainer.current_epoch,
            "train_captions": len(data.data.captions["train"]),
            "train_captions_per_s": fitted.samples_per_s(len(data.data.captions["train"])),
            "backbone": data.meta.get("backbone"), "weights": data.meta.get("weights"),
        }
        return RunOutputs(record, module.history, {"loss per caption": ["train/loss", "val/loss"]}, f"{stage}: training loss",
                          module.net.state_dict(), extra_files=[out.samples_txt, out.samples_png], logged=scores,
                          model=logged_model(s, net, module, data, Path(data_dir), out, record))

    return tracked_fit(training, make_module, data, outputs)


def inputs(data: CocoCaptions, data_dir: Path) -> list[DatasetRef]:
    """The captions and features the run learns from and is scored on, digested by content
    (the training captions are the run's draw of `max_train`)."""
    d, dataset = data.data, data.meta.get("dataset", "unknown")
    return [DatasetRef(f"{dataset}/{split}", arrays_sha256(d.captions[split], d.image_idxs[split], d.features[split])[:32],
                       str(data_dir / PREPARED_FEATURE_FILES[split]), "train" if split == "train" else "validation")
            for split in ("train", "val")]


def logged_model(s: Settings[CaptioningSettings], net: NetSpec, module: CaptioningModule, data: CocoCaptions, data_dir: Path, out: RunFiles,
                 record: dict[str, Any]) -> ModelToLog | None:
    """The captioner with preprocess_coco's extractor as an MLflow Model taking images
    (hw4.serving.captioner), registered as hw4-captioner-<dataset> and ranked by val/bleu4; None for
    features that came without an extractor (CS231n's), which no image can be turned into."""
    extractor = data_dir / EXTRACTOR_FILE
    if not extractor.is_file():
        print(f"captioning: {extractor} not found (features from {data.meta.get('source')}): no MLflow Model logged")
        return None
    c = s.task
    spec = {"net": net.to_json(), "idx_to_word": data.vocab.idx_to_word, "blind": module.blind,
            "max_length": c.decoding.max_length, "beam_width": c.decoding.beam_width}
    image_dir = Path(data.meta.get("image_dir") or data_dir)
    return ModelToLog(
        flavor="hw4.serving.captioner", files={"weights": out.weights, "extractor": extractor}, specs={"spec": spec},
        example=[image_dir / url for url in data.data.urls["val"][:2]],
        task="captioner", score=record.get("val/bleu4"), score_name="val/bleu4",
        tags={"model": str(record["model"])},
    )


def net_spec(c: CaptioningSettings, data: CocoCaptions, cell: Cell) -> NetSpec:
    v = data.vocab
    return NetSpec(Captioner, CaptionerConfig(len(v), data.feature_dim, v.null, v.start, v.end, cell, c.wordvec_dim, c.hidden_dim))


def evaluate(s: Settings[CaptioningSettings], module: CaptioningModule, data: CocoCaptions, device: torch.device, out: RunFiles, stage: str) -> dict[str, Any]:
    """Validation BLEU/CIDEr-D, and the sample captions of train and val images (text and grid)."""
    c = s.task
    how = ev.Decoding(c.decoding.max_length, c.decoding.beam_width, c.eval_batch_size, device)
    scores = ev.score_split(module, data.data, "val", how, c.eval_images, s.seed)
    items = [x for split in ("train", "val") for x in ev.samples(module, data.data, split, c.samples, how, s.seed)]
    title = f"{stage}: generated captions and their ground truth (GT)"
    ev.write_samples(out.samples_txt, items, title)
    ev.plot_samples(out.samples_png, items, data.meta.get("image_dir"), title)
    return scores


STAGE = TrainingStage(EXPERIMENT, CaptioningSettings, run, matrix={"model": MODELS}, headline=HEADLINE)
load_settings, main = STAGE.load_settings, STAGE.main
