"""Captions as tokens, the vocabulary, the stand-in generator and the caption scorers."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from hw4.data.formats.coco_text import END, NULL, SPECIAL, START, UNK, CaptionTooLong, Vocabulary, tokenise
from hw4.data.standins import coco as standin_coco
from hw4.evaluation.caption_metrics import corpus_scores


def test_tokenise_lowercases_and_strips_punctuation():
    assert tokenise("A man's hat, on a TABLE.") == ["a", "mans", "hat", "on", "a", "table"]
    assert tokenise("two shapes: a red ring and a blue square!") == ["two", "shapes", "a", "red", "ring", "and", "a", "blue", "square"]
    assert tokenise("  ...  ") == []


def _vocab(min_count: int = 2) -> Vocabulary:
    captions = [["a", "red", "ring"], ["a", "blue", "ring"], ["a", "red", "square"]]
    return Vocabulary.build(captions, min_count)


def test_vocabulary_puts_special_tokens_first_then_words_seen_often_enough():
    vocab = _vocab(min_count=2)
    assert vocab.idx_to_word == [*SPECIAL, "a", "red", "ring"]  # commonest first; blue, square seen once
    assert (vocab.null, vocab.start, vocab.end, vocab.unk) == (0, 1, 2, 3)
    assert _vocab(min_count=1).idx_to_word[len(SPECIAL):] == ["a", "red", "ring", "blue", "square"]


def test_encoding_pads_with_null_and_unknown_words_become_unk():
    vocab = _vocab()
    row = vocab.encode(["a", "blue", "ring"], width=7)
    w = vocab.word_to_idx
    assert row.tolist() == [w[START], w["a"], w[UNK], w["ring"], w[END], w[NULL], w[NULL]]
    assert row.dtype == np.int32
    assert vocab.decode(row) == "a <UNK> ring"
    assert vocab.decode([w["a"], w[END], w["red"]]) == "a"  # nothing after <END>


def test_a_caption_longer_than_the_width_is_refused():
    vocab = _vocab()
    vocab.encode(["a"] * 5, width=7)  # 5 words + <START> + <END> fit exactly
    with pytest.raises(CaptionTooLong, match="6 words do not fit 7 tokens"):
        vocab.encode(["a"] * 6, width=7)


def test_vocabulary_json_round_trip_and_inconsistency():
    vocab = _vocab()
    doc = json.loads(json.dumps(vocab.to_json()))
    assert Vocabulary.from_json(doc, "v.json").idx_to_word == vocab.idx_to_word
    doc["word_to_idx"]["red"] = 0
    with pytest.raises(ValueError, match="v.json: word_to_idx is not the inverse"):
        Vocabulary.from_json(doc, "v.json")
    with pytest.raises(ValueError, match=r"v.json: vocabulary lacks the special token\(s\) \['<UNK>'\]"):
        Vocabulary.from_json({"idx_to_word": ["<NULL>", "<START>", "<END>"], "word_to_idx": {}}, "v.json")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['word_to_idx'\]"):
        Vocabulary.from_json({"idx_to_word": []}, "v.json")


def test_standin_is_coco_shaped_deterministic_and_its_captions_name_what_is_drawn(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        standin_coco.generate(d, seed=3, n_train=8, n_val=4)
    for rel in ("annotations/captions_train2014.json", "annotations/captions_val2014.json", "STANDIN"):
        assert (first / rel).read_bytes() == (second / rel).read_bytes()
    doc = json.loads((first / "annotations/captions_val2014.json").read_text())
    assert {"info", "licenses", "images", "annotations"} <= set(doc)
    assert len(doc["images"]) == 4 and len(doc["annotations"]) == 4 * standin_coco.CAPTIONS_PER_IMAGE
    image = doc["images"][0]
    assert (first / "val2014" / image["file_name"]).read_bytes() == (second / "val2014" / image["file_name"]).read_bytes()
    assert {"id", "image_id", "caption"} <= set(doc["annotations"][0])
    colours, kinds = set(standin_coco.COLOURS), set(standin_coco.SHAPES)
    for ann in doc["annotations"]:
        words = tokenise(ann["caption"])
        assert set(words) & colours and set(words) & kinds  # every caption names a coloured shape


def test_scenes_and_captions_agree():
    rng = random.Random(0)
    for _ in range(50):
        shapes = standin_coco.random_scene(rng)
        captions = standin_coco.captions_for(shapes, rng)
        assert len(captions) == standin_coco.CAPTIONS_PER_IMAGE == len(set(captions))
        named = {w for c in captions for w in tokenise(c)}
        assert named & set(standin_coco.COLOURS) <= {s.colour for s in shapes}
        assert named & set(standin_coco.SHAPES) <= {s.kind for s in shapes}


def test_corpus_scores_count_every_reference():
    refs = {1: ["a red ring on the left", "a small red ring"], 2: ["a blue square", "one shape a blue square"]}
    perfect = corpus_scores(refs, {1: "a small red ring", 2: "a blue square"})
    assert perfect["bleu1"] == pytest.approx(1.0) and perfect["bleu4"] > 0.7 and perfect["cider"] > 0
    wrong = corpus_scores(refs, {1: "a green triangle", 2: "a yellow triangle"})
    assert wrong["bleu4"] < 0.01 and wrong["cider"] < perfect["cider"]
    with pytest.raises(ValueError, match="same images"):
        corpus_scores(refs, {1: "a red ring"})
