"""Captions as tokens: tokenising, the vocabulary, and encoding to fixed-length index rows.

The vocabulary file is CS231n's `coco2014_vocab.json`: `idx_to_word` (a list) and
`word_to_idx` (a dict). Special tokens are looked up by name, never assumed to be 0-3.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

NULL, START, END, UNK = "<NULL>", "<START>", "<END>", "<UNK>"
SPECIAL = (NULL, START, END, UNK)  # the order a new vocabulary gives them: <NULL> = 0 pads

_APOSTROPHES = re.compile(r"['’`]")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


class CaptionTooLong(ValueError):
    """A caption that does not fit the fixed width of the encoded captions."""


def tokenise(caption: str) -> list[str]:
    """Lower-case words with punctuation stripped: "A man's hat." -> ["a", "mans", "hat"]."""
    text = _APOSTROPHES.sub("", caption.lower())
    return _NOT_WORD.sub(" ", text).split()


@dataclass
class Vocabulary:
    idx_to_word: list[str]

    def __post_init__(self) -> None:
        self.word_to_idx = {w: i for i, w in enumerate(self.idx_to_word)}
        if len(self.word_to_idx) != len(self.idx_to_word):
            dupes = sorted(w for w, n in Counter(self.idx_to_word).items() if n > 1)
            raise ValueError(f"vocabulary lists these words more than once: {dupes[:10]}")
        missing = [t for t in SPECIAL if t not in self.word_to_idx]
        if missing:
            raise ValueError(f"vocabulary lacks the special token(s) {missing}")
        self.null, self.start, self.end, self.unk = (self.word_to_idx[t] for t in SPECIAL)

    def __len__(self) -> int:
        return len(self.idx_to_word)

    @classmethod
    def build(cls, tokenised: Iterable[Sequence[str]], min_count: int) -> "Vocabulary":
        """Special tokens, then words seen at least `min_count` times, commonest first."""
        counts = Counter(w for words in tokenised for w in words)
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL), key=lambda w: (-counts[w], w))
        return cls([*SPECIAL, *kept])

    @classmethod
    def from_json(cls, doc: dict, source: str) -> "Vocabulary":
        """CS231n's vocabulary JSON, checked: both keys present and describing the same mapping."""
        missing = [k for k in ("idx_to_word", "word_to_idx") if k not in doc]
        if missing:
            raise ValueError(f"{source}: missing key(s) {missing}")
        try:
            vocab = cls(list(doc["idx_to_word"]))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
        if dict(doc["word_to_idx"]) != vocab.word_to_idx:
            raise ValueError(f"{source}: word_to_idx is not the inverse of idx_to_word")
        return vocab

    def to_json(self) -> dict:
        return {"idx_to_word": self.idx_to_word, "word_to_idx": self.word_to_idx}

    def encode(self, words: Sequence[str], width: int) -> np.ndarray:
        """`<START> w1 .. wn <END>` then `<NULL>` to `width`; unknown words become `<UNK>`."""
        if len(words) + 2 > width:
            raise CaptionTooLong(f"{len(words)} words do not fit {width} tokens with <START> and <END>")
        row = np.full(width, self.null, dtype=np.int32)
        row[0], row[len(words) + 1] = self.start, self.end
        row[1 : len(words) + 1] = [self.word_to_idx.get(w, self.unk) for w in words]
        return row

    def decode(self, tokens: Iterable[int]) -> str:
        """The words up to the first `<END>`, without `<START>` and `<NULL>`."""
        words = []
        for t in tokens:
            t = int(t)
            if t == self.end:
                break
            if t not in (self.start, self.null):
                words.append(self.idx_to_word[t])
        return " ".join(words)
