"""The `preprocess_coco` stage: COCO captions and image features in the CS231n layout.

    python -m hw4 preprocess_coco [--params params.yaml]

Two sources, one output (data/prepared/coco/; hw4.features.coco_prepared does the work):
CS231n's `coco_captioning` files (`features`), or COCO 2014 annotations and images (`raw`),
optionally with a seeded subsample of the training captions. `meta.json` beside the files
says which source, backbone and weights made them, and whether the input was generated
stand-in data. One MLflow run (experiment `preprocess_coco`) holds the settings, meta.json
and, for weights: caption_words, the backbone's training loss per epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hw4.config import command
from hw4.config.seeds import data_seed
from hw4.config.settings import ConfigError, flatten, load_params, section
from hw4.data.formats.coco_features import META_FILE, CocoDataError, subsample_train
from hw4.data.standins.marker import is_standin
from hw4.features.coco_prepared import FeaturesSource, RawSource, Source, caption_files, from_features, from_raw, write_prepared
from hw4.features.image_features import pick_device
from hw4.io import paths
from hw4.models.resnet import WeightsError
from hw4.tracking.runs import StageRun
from hw4.training.trainer import TrainerSettings

EXPERIMENT = "preprocess_coco"
# meta.json's numbers that the run measured, logged as MLflow metrics (the rest are its params)
MEASURED = ("_captions", "_images", "_too_long", "vocab_size", "feature_dim", "word_training_loss")


@dataclass
class PreprocessCocoSettings:
    """params.yaml `preprocess_coco`."""

    source: Source
    input_dir: str  # the chosen source's files
    max_train: int  # keep this many training captions (seeded draw); 0 keeps all
    features: FeaturesSource
    raw: RawSource

    def validate(self, where: str) -> None:
        if self.max_train < 0:
            raise ConfigError(f"params '{where}.max_train': must be >= 0 (0 keeps all), got {self.max_train}")


@dataclass
class Settings:
    preprocess_coco: PreprocessCocoSettings
    trainer: TrainerSettings  # numerics, precision and determinism of the raw path's backbone
    data_seed: int  # params `seed`: the draw of training captions, the backbone's initial weights (not an evaluation's)


def run(s: Settings, out_dir: Path = paths.COCO) -> dict[str, Any]:
    """Read the chosen source, subsample, write the layout and meta.json; return meta."""
    settings = s.preprocess_coco
    input_dir = paths.raw_input(settings.input_dir)
    if not input_dir.is_dir():
        raise CocoDataError(f"{input_dir}: no such directory (preprocess_coco.input_dir, source {settings.source}); "
                            f"{paths.RAW_MISSING}")
    standin = is_standin(input_dir)
    params = flatten({"preprocess_coco": asdict(settings), "trainer": asdict(s.trainer), "seed": s.data_seed})
    with StageRun(EXPERIMENT, "preprocess_coco", params, caption_files(settings.source, input_dir), standin,
                  run_name=settings.source) as run:
        if settings.source == "features":
            data, meta, extractor = from_features(input_dir, settings.features)
        else:
            data, meta, extractor = from_raw(input_dir, settings.raw, s.data_seed, s.trainer, run)
        data = subsample_train(data, settings.max_train, s.data_seed)
        meta = write_prepared(data, meta, settings.source, settings.max_train, standin, out_dir, extractor)
        run.log_metrics({k: v for k, v in meta.items() if k.endswith(MEASURED)})
        run.log_artifact(Path(out_dir) / META_FILE)
        return meta


def load_settings(params_path: Path) -> Settings:
    params = load_params(params_path)
    settings = section(params, "preprocess_coco", PreprocessCocoSettings)
    trainer = section(params, "trainer", TrainerSettings)
    mode = trainer.numerics
    # Only where the backbone runs on the CPU: on a GPU the numerics pinning does not apply.
    if settings.source == "raw" and mode != "fast" and settings.raw.threads == 0 and pick_device(settings.raw.device).type == "cpu":
        raise ConfigError(
            f"params 'preprocess_coco.raw.threads': trainer.numerics {mode!r} needs a fixed thread "
            f"count on the CPU (reductions depend on it); set 1 or more"
        )
    return Settings(settings, trainer, data_seed(params))


def main(argv: list[str] | None = None) -> None:
    args = command.parser("preprocess_coco", __doc__).parse_args(argv)
    settings = load_settings(args.params)
    with command.one_line_errors("preprocess_coco", CocoDataError, FileNotFoundError, WeightsError):
        meta = run(settings)
    standin = " (stand-in data)" if meta["standin"] else ""
    print(
        f"preprocess_coco: {meta['source']}{standin}: {meta['train_captions']} train / {meta['val_captions']} val "
        f"captions, vocabulary {meta['vocab_size']}, features {meta['feature_dim']}-d "
        f"({meta['backbone']}, {meta['weights']} weights) -> {paths.COCO}"
    )
