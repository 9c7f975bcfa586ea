"""Corpus BLEU-1..4 and CIDEr-D of generated captions against all references of each image.

The scorers are pycocoevalcap's pure-Python ones (the COCO caption server's code): `Bleu`
(corpus BLEU, closest reference length for the brevity penalty) and `Cider`, which is CIDEr-D
(n-gram counts clipped to the reference's, a Gaussian length penalty with sigma 6, times
10; document frequencies from the evaluated references). Its PTB tokeniser needs Java, so
captions come in already tokenised: words joined by single spaces.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "cider")


def corpus_scores(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> dict[str, float]:
    """{"bleu1".."bleu4", "cider"} for one candidate per image and its references."""
    if set(references) != set(candidates):
        raise ValueError("references and candidates must describe the same images")
    if not candidates:
        raise ValueError("no captions to score")
    empty = [k for k, refs in references.items() if not refs]
    if empty:
        raise ValueError(f"{len(empty)} image(s) have no reference caption, e.g. {empty[0]!r}")
    gts = {k: list(references[k]) for k in candidates}
    res = {k: [candidates[k]] for k in candidates}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f"bleu{n}": float(b) for n, b in enumerate(bleu, 1)}, "cider": float(cider)}
