"""COCO 2014 caption annotations -> tokenised, encoded captions and the image list.

Reads `annotations/captions_<split>2014.json` (COCO's schema: `images` with `id` and
`file_name`, `annotations` with `image_id` and `caption`). Images are ordered by id; an
image with no caption is left out, as it could neither be trained on nor scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hw4.data.formats.coco_features import CocoDataError, read_json_object
from hw4.data.formats.coco_text import CaptionTooLong, Vocabulary, tokenise


def annotations_file(raw_dir: Path, split: str) -> Path:
    return Path(raw_dir) / "annotations" / f"captions_{split}2014.json"


def image_path(raw_dir: Path, split: str, file_name: str) -> Path:
    return Path(raw_dir) / f"{split}2014" / file_name


@dataclass
class RawCaption:
    annotation_id: object  # COCO's `id` of the annotation, for error messages
    image: int  # position of its image in RawSplit.file_names
    words: list[str]


@dataclass
class RawSplit:
    source: Path  # the annotation file
    file_names: list[str]  # one per image, by image id
    captions: list[RawCaption]


def read_split(raw_dir: Path, split: str) -> RawSplit:
    path = annotations_file(raw_dir, split)
    if not path.is_file():
        raise CocoDataError(f"{path}: missing; the raw source needs COCO 2014's caption annotations there")
    doc = read_json_object(path, "a JSON object with 'images' and 'annotations'")
    file_names = {}
    for k, image in enumerate(_entries(doc, "images", path)):
        _require(image, ("id", "file_name"), f"images[{k}]", path)
        file_names[image["id"]] = image["file_name"]
    by_image: dict[object, list[tuple[object, list[str]]]] = {}
    for k, ann in enumerate(_entries(doc, "annotations", path)):
        _require(ann, ("image_id", "caption"), f"annotations[{k}]", path)
        if ann["image_id"] not in file_names:
            raise CocoDataError(f"{path}: annotations[{k}] refers to image_id {ann['image_id']!r}, which is not in 'images'")
        by_image.setdefault(ann["image_id"], []).append((ann.get("id", k), tokenise(str(ann["caption"]))))
    ids = sorted(by_image)
    captions = [RawCaption(ann_id, pos, words) for pos, image_id in enumerate(ids) for ann_id, words in by_image[image_id]]
    return RawSplit(path, [file_names[i] for i in ids], captions)


def _entries(doc: dict, key: str, path: Path) -> list:
    if key not in doc:
        raise CocoDataError(f"{path}: missing key '{key}' (COCO's caption schema has 'images' and 'annotations')")
    if not isinstance(doc[key], list):
        raise CocoDataError(f"{path}: '{key}' is not a list")
    return doc[key]


def _require(entry: object, keys: tuple[str, ...], where: str, path: Path) -> None:
    if not isinstance(entry, dict):
        raise CocoDataError(f"{path}: {where} is not an object")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise CocoDataError(f"{path}: {where} lacks key(s) {missing}")


TooLong = Literal["error", "drop"]


def encode_split(split: RawSplit, vocab: Vocabulary, width: int, too_long: TooLong) -> tuple[np.ndarray, np.ndarray, int]:
    """(captions (N, width) int32, image_idxs (N,) int32, number of captions dropped as too long)."""
    rows, idxs, dropped = [], [], 0
    for cap in split.captions:
        try:
            rows.append(vocab.encode(cap.words, width))
        except CaptionTooLong as e:
            if too_long == "error":
                raise CocoDataError(
                    f"{split.source}: caption {cap.annotation_id!r} of {split.file_names[cap.image]} is longer "
                    f"than allowed: {e}; raise preprocess_coco.raw.max_length or set preprocess_coco.raw.too_long: drop"
                ) from None
            dropped += 1
            continue
        idxs.append(cap.image)
    captions = np.stack(rows) if rows else np.zeros((0, width), np.int32)
    return captions, np.asarray(idxs, dtype=np.int32), dropped
