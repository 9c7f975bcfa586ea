"""The CS231n captioning layout: reading it (validated), subsampling it, writing it.

    coco2014_captions.h5    train_captions (N, T) int, train_image_idxs (N,) int, val_* alike
    <features file>.h5      features (images, D) float, one file per split
    coco2014_vocab.json     idx_to_word (list), word_to_idx (dict)
    <split>2014_urls.txt    one image per line, line i = feature row i

`train_image_idxs[k]` is the row of `features` (and line of the URL list) that caption k
describes. Every problem found names the file and says what is wrong with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hw4.data.formats.coco_text import Vocabulary
from hw4.io import atomic

SPLITS = ("train", "val")
CAPTIONS_FILE = "coco2014_captions.h5"
VOCAB_FILE = "coco2014_vocab.json"
META_FILE = "meta.json"  # beside the prepared layout: what made it (see hw4.features.coco_prepared)
EXTRACTOR_FILE = "extractor.pt"  # beside it, from raw images: the backbone, PCA and standardisation that made the features
PREPARED_FEATURE_FILES = {s: f"{s}2014_features.h5" for s in SPLITS}  # whatever backbone made them


def urls_file(split: str) -> str:
    return f"{split}2014_urls.txt"


class CocoDataError(ValueError):
    """Captioning input files that cannot be used as they are."""


@dataclass
class CaptionData:
    """Both splits of the layout in memory. Per split: captions (N, T) int32,
    image_idxs (N,) int32, features (images, D) float32, urls (images entries)."""

    vocab: Vocabulary
    captions: dict[str, np.ndarray]
    image_idxs: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    urls: dict[str, list[str]]

    def validate(self, names: dict[str, str]) -> None:
        """`names` maps "captions", "vocab", "<split>_features", "<split>_urls" to the file each came from."""
        width = {self.captions[s].shape[1] for s in SPLITS}
        if len(width) != 1:
            raise CocoDataError(f"{names['captions']}: train and val captions differ in width: {sorted(width)}")
        dims = {self.features[s].shape[1] for s in SPLITS}
        if len(dims) != 1:
            raise CocoDataError(
                f"{names['train_features']}, {names['val_features']}: feature sizes differ: {sorted(dims)}"
            )
        for split in SPLITS:
            self._validate_split(split, names)

    def _validate_split(self, split: str, names: dict[str, str]) -> None:
        captions, idxs, feats = self.captions[split], self.image_idxs[split], self.features[split]
        if len(idxs) != len(captions):
            raise CocoDataError(
                f"{names['captions']}: {split}_image_idxs has {len(idxs)} entries for {len(captions)} captions"
            )
        if len(captions) and (captions.min() < 0 or captions.max() >= len(self.vocab)):
            raise CocoDataError(
                f"{names['captions']}: {split}_captions holds token ids from {captions.min()} to {captions.max()}, "
                f"outside the vocabulary's 0..{len(self.vocab) - 1} ({names['vocab']})"
            )
        if len(idxs) and (idxs.min() < 0 or idxs.max() >= len(feats)):
            raise CocoDataError(
                f"{names['captions']}: {split}_image_idxs ranges from {idxs.min()} to {idxs.max()}, but "
                f"{names[f'{split}_features']} has {len(feats)} images (index out of range)"
            )
        if len(self.urls[split]) != len(feats):
            raise CocoDataError(
                f"{names[f'{split}_urls']}: {len(self.urls[split])} lines for the {len(feats)} images of "
                f"{names[f'{split}_features']}"
            )
        if not np.isfinite(feats).all():
            raise CocoDataError(f"{names[f'{split}_features']}: features hold NaN or infinite values")


def read_layout(directory: Path, feature_files: dict[str, str]) -> CaptionData:
    """The layout in `directory`, checked; `feature_files` maps each split to its file name."""
    directory = Path(directory)
    names = {
        "captions": directory / CAPTIONS_FILE,
        "vocab": directory / VOCAB_FILE,
        **{f"{s}_features": directory / feature_files[s] for s in SPLITS},
        **{f"{s}_urls": directory / urls_file(s) for s in SPLITS},
    }
    missing = [str(p) for p in names.values() if not p.is_file()]
    if missing:
        raise CocoDataError(f"missing captioning file(s): {missing}")
    try:
        vocab = Vocabulary.from_json(read_json_object(names["vocab"]), str(names["vocab"]))
    except ValueError as e:  # its message names the file already
        raise CocoDataError(str(e)) from None
    captions, image_idxs = {}, {}
    with _open_h5(names["captions"]) as f:
        for split in SPLITS:
            captions[split] = _dataset(f, names["captions"], f"{split}_captions", ndim=2, kind="integer")
            image_idxs[split] = _dataset(f, names["captions"], f"{split}_image_idxs", ndim=1, kind="integer")
    features = {}
    for split in SPLITS:
        with _open_h5(names[f"{split}_features"]) as f:
            features[split] = _dataset(f, names[f"{split}_features"], "features", ndim=2, kind="floating")
    urls = {s: names[f"{s}_urls"].read_text().splitlines() for s in SPLITS}
    data = CaptionData(vocab, captions, image_idxs, features, urls)
    data.validate({k: str(v) for k, v in names.items()})
    return data


def read_json_object(path: Path, expected: str = "a JSON object at the top level") -> dict:
    """A JSON file whose top level must be an object; CocoDataError says what was wrong."""
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CocoDataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise CocoDataError(f"{path}: expected {expected}")
    return doc


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise CocoDataError(f"{path}: cannot be read as HDF5 ({e})") from None


def _dataset(f: h5py.File, path: Path, key: str, ndim: int, kind: str) -> np.ndarray:
    """`f[key]` as int32 or float32 after checking it exists, its rank and its kind of dtype."""
    if key not in f:
        raise CocoDataError(f"{path}: missing key '{key}' (has {sorted(f.keys())})")
    ds = f[key]
    if ds.ndim != ndim:
        raise CocoDataError(f"{path}: '{key}' has shape {ds.shape}; expected {ndim} dimension(s)")
    wanted = np.integer if kind == "integer" else np.floating
    if not np.issubdtype(ds.dtype, wanted):
        raise CocoDataError(f"{path}: '{key}' has dtype {ds.dtype}; expected {kind} values")
    return ds[()].astype(np.int32 if kind == "integer" else np.float32, copy=False)


def subsample_train(data: CaptionData, max_train: int, seed: int) -> CaptionData:
    """`max_train` training captions drawn without replacement (seeded), keeping only the images
    they describe; 0 keeps everything."""
    n = len(data.captions["train"])
    if not max_train or max_train >= n:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(n, size=max_train, replace=False))
    images, remapped = np.unique(data.image_idxs["train"][rows], return_inverse=True)
    return CaptionData(
        data.vocab,
        {**data.captions, "train": data.captions["train"][rows]},
        {**data.image_idxs, "train": remapped.astype(np.int32)},
        {**data.features, "train": data.features["train"][images]},
        {**data.urls, "train": [data.urls["train"][i] for i in images]},
    )


def write_layout(data: CaptionData, directory: Path, feature_files: dict[str, str]) -> list[Path]:
    """Write the layout into `directory`; return the files written.

    Each file atomically (hw4.io.atomic): the captioning stage reads them."""
    directory = Path(directory)
    written = [directory / CAPTIONS_FILE, directory / VOCAB_FILE]
    with atomic.replacing(written[0]) as tmp, h5py.File(tmp, "w") as f:
        for split in SPLITS:
            f.create_dataset(f"{split}_captions", data=data.captions[split].astype(np.int32))
            f.create_dataset(f"{split}_image_idxs", data=data.image_idxs[split].astype(np.int32))
    atomic.write_text(written[1], json.dumps(data.vocab.to_json()) + "\n")
    for split in SPLITS:
        path = directory / feature_files[split]
        with atomic.replacing(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=data.features[split].astype(np.float32))
        urls = atomic.write_text(directory / urls_file(split), "".join(f"{u}\n" for u in data.urls[split]))
        written += [path, urls]
    return written
