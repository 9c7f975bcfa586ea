"""Captions generated for whole splits, scored against every reference, and shown as samples."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hw4.data.formats.coco_features import CaptionData
from hw4.data.formats.coco_text import Vocabulary
from hw4.evaluation.caption_metrics import corpus_scores
from hw4.io import atomic
from hw4.io.outputs import figure
from hw4.training.captioning_module import CaptioningModule


@dataclass
class Decoding:
    max_length: int
    beam_width: int
    batch_size: int
    device: torch.device


def generate(module: CaptioningModule, features: np.ndarray, vocab: Vocabulary, how: Decoding) -> list[str]:
    """One caption per row of features (images, D), as space-joined words."""
    module.to(how.device)
    out = []
    for chunk in torch.from_numpy(features).split(how.batch_size):
        tokens = module.caption(chunk.to(how.device), how.max_length, how.beam_width)  # (B, max_length)
        out += [vocab.decode(row) for row in tokens.cpu().tolist()]
    return out


def references(data: CaptionData, split: str) -> dict[int, list[str]]:
    """Image index -> every reference caption of it, decoded from the encoded captions."""
    refs: dict[int, list[str]] = {}
    for row, image in zip(data.captions[split], data.image_idxs[split]):
        refs.setdefault(int(image), []).append(data.vocab.decode(row))
    return refs


def score_split(module: CaptioningModule, data: CaptionData, split: str, how: Decoding, max_images: int, seed: int) -> dict[str, float]:
    """Corpus metrics over the split's captioned images (a seeded draw of `max_images`; 0: all)."""
    refs = references(data, split)
    images = sorted(refs)
    if max_images and max_images < len(images):
        images = sorted(np.random.default_rng(seed).choice(images, size=max_images, replace=False).tolist())
    hyps = generate(module, data.features[split][images], data.vocab, how)
    scores = corpus_scores({i: refs[i] for i in images}, dict(zip(images, hyps)))
    return {f"{split}/{k}": v for k, v in scores.items()} | {f"{split}/scored_images": len(images)}


@dataclass
class Sample:
    split: str
    url: str
    generated: str
    truth: str


def samples(module: CaptioningModule, data: CaptionData, split: str, n: int, how: Decoding, seed: int) -> list[Sample]:
    """`n` captions drawn (seeded) from the split, each with the caption generated for its image."""
    rows = np.random.default_rng(seed).choice(len(data.captions[split]), size=min(n, len(data.captions[split])), replace=False)
    images = data.image_idxs[split][rows]
    generated = generate(module, data.features[split][images], data.vocab, how)
    return [
        Sample(split, data.urls[split][i], g, data.vocab.decode(data.captions[split][r]))
        for r, i, g in zip(rows, images, generated)
    ]


def write_samples(path: Path, items: Sequence[Sample], title: str) -> Path:
    """The homework's listing: each generated caption, then its ground truth."""
    lines = [title, ""]
    for s in items:
        lines += [f"{s.split}  {s.url}", f"  generated: {s.generated}", f"  GT:        {s.truth}", ""]
    return atomic.write_text(path, "\n".join(lines))  # the report reads it


def plot_samples(path: Path, items: Sequence[Sample], image_dir: Path | None, title: str) -> Path:
    """The samples in a grid, captions under each picture; where the picture is not at hand
    (CS231n's features come with URLs only) its panel shows the URL instead."""
    cols = max(1, min(4, len(items)))
    rows = max(1, -(-len(items) // cols))
    from matplotlib.image import imread

    fig = figure((3.4 * cols, 4.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.axis("off")
    for ax, s in zip(axes.flat, items):
        ax.set_xticks([])  # the captions go in the x label: tight_layout makes room for it
        ax.set_yticks([])
        picture = Path(image_dir) / s.url if image_dir else None
        if picture is not None and picture.is_file():
            ax.imshow(imread(picture))
        else:
            ax.text(0.5, 0.5, textwrap.fill(f"image not at hand: {s.url}", 30), ha="center", va="center", fontsize=7)
        ax.set_title(s.split, fontsize=9)
        ax.set_xlabel(f"{textwrap.fill(s.generated, 38)}\nGT: {textwrap.fill(s.truth, 34)}", fontsize=7.5)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
