"""COCO captions and image features in CS231n's layout (data/prepared/coco), from either source.

- `features`: CS231n's `coco_captioning` files (VGG-16 fc7 features, PCA'd or not), checked
  and read as they are;
- `raw`: COCO 2014 annotations and images: tokenised, a vocabulary built on the training
  captions, encoded, and features extracted with a torchvision backbone (optionally trained
  on the captions' words first, then PCA'd and standardised on the training split).
`write_prepared` writes the layout with `meta.json`, which says what made it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from hw4.config.settings import ConfigError
from hw4.data.formats.coco_features import CAPTIONS_FILE, EXTRACTOR_FILE, META_FILE, PREPARED_FEATURE_FILES, SPLITS, CaptionData, read_layout, write_layout
from hw4.data.formats.coco_raw import TooLong, annotations_file, encode_split, image_path, read_split
from hw4.data.formats.coco_text import Vocabulary
from hw4.features.caption_words import WordTraining, train_on_caption_words, word_targets
from hw4.features.extractor import BACKBONES, Weights, build_backbone
from hw4.features.image_features import extract, pick_device, reduce
from hw4.io import atomic
from hw4.io.outputs import write_json
from hw4.io.paths import raw_input
from hw4.tracking.runs import StageRun
from hw4.config import numerics
from hw4.training.trainer import TrainerSettings

Source = Literal["features", "raw"]


@dataclass
class FeaturesSource:
    """CS231n's files: `pca: true` reads the 512-d PCA'd fc7 features, false the 4096-d ones."""

    pca: bool

    def files(self) -> dict[str, str]:
        suffix = "_pca" if self.pca else ""
        return {s: f"{s}2014_vgg16_fc7{suffix}.h5" for s in SPLITS}


@dataclass
class RawSource:
    min_count: int  # words seen fewer times in the training captions become <UNK>
    max_length: int  # tokens per encoded caption, <START> and <END> included (CS231n: 17)
    too_long: TooLong  # a longer caption stops the stage, or is dropped
    backbone: str
    weights: Weights
    weights_file: str
    image_size: int
    batch_size: int
    workers: int  # image-decoding processes
    device: str  # auto | cpu | cuda | cuda:N
    threads: int  # torch's CPU threads; 0 leaves torch's default (1 beats 2 on a busy 2-core CPU)
    word_training: WordTraining  # for weights: caption_words
    pca_dim: int  # 0 keeps the backbone's features as they are
    standardise: bool  # zero mean, unit variance per dimension (training statistics)

    def validate(self, where: str) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"params '{where}.backbone': {self.backbone!r} is not one of {list(BACKBONES)}")
        if self.max_length < 3:
            raise ConfigError(f"params '{where}.max_length': must leave room for a word, got {self.max_length}")
        if min(self.min_count, self.image_size, self.batch_size) < 1 or min(self.workers, self.pca_dim, self.threads) < 0:
            raise ConfigError(
                f"params '{where}': min_count, image_size and batch_size must be >= 1; workers, threads and pca_dim >= 0"
            )
        w = self.word_training
        if w.epochs < 1 or w.batch_size < 1 or w.lr <= 0:
            raise ConfigError(f"params '{where}.word_training': epochs and batch_size must be >= 1 and lr > 0")


def caption_files(source: Source, input_dir: Path) -> list[Path]:
    """The input's caption files, whose checksums the run records (the images and features are
    too large to hash on every run; download verified them)."""
    if source == "features":
        return [Path(input_dir) / CAPTIONS_FILE]
    return [annotations_file(Path(input_dir), split) for split in SPLITS]


def write_prepared(data: CaptionData, meta: dict[str, Any], source: Source, max_train: int, standin: bool,
                   out_dir: Path, extractor: dict[str, Any] | None = None) -> dict[str, Any]:
    """The layout and meta.json in `out_dir`, replacing what was there, and the `extractor`
    that made the features from images (the raw source's; see `image_features`); return the whole meta."""
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    write_layout(data, out_dir, PREPARED_FEATURE_FILES)
    if extractor is not None:
        with atomic.replacing(out_dir / EXTRACTOR_FILE) as tmp:
            torch.save(extractor, tmp)
    meta.update(
        source=source,
        standin=standin,
        dataset="coco2014-standin" if standin else "coco2014",
        vocab_size=len(data.vocab),
        max_length=int(data.captions["train"].shape[1]),
        feature_dim=int(data.features["train"].shape[1]),
        max_train=max_train,
        **{f"{s}_captions": len(data.captions[s]) for s in SPLITS},
        **{f"{s}_images": len(data.features[s]) for s in SPLITS},
    )
    write_json(out_dir / META_FILE, meta)
    return meta


def from_features(input_dir: Path, source: FeaturesSource) -> tuple[CaptionData, dict[str, Any], None]:
    """CS231n's files: their features came from a VGG-16 and a PCA that are not part of them,
    so there is no extractor to apply to new images."""
    data = read_layout(input_dir, source.files())
    meta = {"backbone": "vgg16_fc7", "weights": "imagenet", "pca_dim": 512 if source.pca else 0, "image_dir": None}
    return data, meta, None


def from_raw(input_dir: Path, raw: RawSource, seed: int, trainer: TrainerSettings,
             run: StageRun) -> tuple[CaptionData, dict[str, Any], dict[str, Any]]:
    splits = {s: read_split(input_dir, s) for s in SPLITS}
    vocab = Vocabulary.build((c.words for c in splits["train"].captions), raw.min_count)
    captions, idxs, dropped = {}, {}, {}
    for s in SPLITS:
        captions[s], idxs[s], dropped[s] = encode_split(splits[s], vocab, raw.max_length, raw.too_long)
    paths = {s: [image_path(input_dir, s, name) for name in splits[s].file_names] for s in SPLITS}
    words = word_targets(captions["train"], idxs["train"], len(paths["train"]), vocab)
    features, meta, extractor = image_features(paths, words, raw, seed, trainer, run)
    urls = {s: [f"{s}2014/{name}" for name in splits[s].file_names] for s in SPLITS}
    meta.update(
        image_dir=str(input_dir),  # URL-list lines are relative to it
        min_count=raw.min_count,
        **{f"{s}_dropped_too_long": dropped[s] for s in SPLITS},
    )
    return CaptionData(vocab, captions, idxs, features, urls), meta, extractor


def image_features(
    paths: dict[str, list[Path]], words: torch.Tensor, raw: RawSource, seed: int, trainer: TrainerSettings, run: StageRun
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Backbone features of every image, (images, D) per split, what made them, and the
    extractor that makes them from any image (backbone, its weights, image size, the fitted
    PCA and standardisation: `EXTRACTOR_FILE`, read by the captioner's MLflow Model).

    `words` (training images, V) are the training captions' words, the targets when the
    backbone is trained on them (weights: caption_words).
    """
    device = pick_device(raw.device)
    trainer = trainer.for_device(device.type == "cpu")
    numerics.configure(trainer.numerics, raw.threads if device.type == "cpu" else 0)
    net, dim = build_backbone(raw.backbone, raw.weights, raw_input(raw.weights_file) if raw.weights_file else None, seed)
    meta: dict[str, Any] = {"backbone": raw.backbone, "weights": raw.weights, "image_size": raw.image_size,
                            "provenance": numerics.provenance(trainer.numerics)}
    if raw.weights == "caption_words":
        meta["word_training_loss"] = train_on_caption_words(
            net, dim, paths["train"], words, raw.word_training, raw.image_size, backbone_trainer(trainer, raw, device), run, raw.workers, seed
        )
    features = {
        s: extract(net, paths[s], raw.image_size, raw.batch_size, device, raw.workers, f"{raw.backbone} features, {s} ({device})")
        for s in SPLITS
    }
    meta.update(pca_dim=raw.pca_dim, standardised=raw.standardise)
    features, reduction = reduce(features, raw.pca_dim, raw.standardise)
    extractor = {"backbone": raw.backbone, "image_size": raw.image_size, "reduction": reduction.to_tensors(),
                 "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    return features, meta, extractor


def backbone_trainer(trainer: TrainerSettings, raw: RawSource, device: torch.device) -> TrainerSettings:
    """The trainer's numerics, precision and determinism on `raw`'s one device and threads:
    a preprocessing step, so not spread over the training stages' devices or nodes."""
    accelerator, devices = ("cpu", 1) if device.type == "cpu" else ("gpu", f"{device.index or 0},")  # "N,": device N
    return replace(trainer, accelerator=accelerator, devices=devices, num_nodes=1, strategy="auto", threads=raw.threads)
