"""preprocess_coco on tiny generated inputs of both sources, and the captioning stage end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from hw4.data.formats.coco_features import PREPARED_FEATURE_FILES, CaptionData, CocoDataError, read_layout, write_layout
from hw4.data.formats.coco_text import Vocabulary, tokenise
from hw4.data.standins import coco as standin_coco
from hw4.features.coco_prepared import FeaturesSource
from hw4.io import paths
from hw4.models.captioner import Captioner, CaptionerConfig
from hw4.stages import captioning, preprocess_coco
from hw4.stages.preprocess_coco import PreprocessCocoSettings
from hw4.tracking import runs as tracking
from hw4.training.trainer import TrainerSettings
from tests.conftest import TEST_TRAINER, artifact_paths, conf_section, write_params
from tests.stages.test_logged_models import run_in_fresh_process

RAW = Path("data/raw/coco2014")
CAPTION_FILES = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps(model.predict(pd.DataFrame({"image": [open(f, "rb").read() for f in sys.argv[2:]]}))["caption"].tolist()))
"""
CS231N = Path("data/raw/coco_captioning/coco_captioning")


def raw_settings(**raw) -> PreprocessCocoSettings:
    """The raw path, made cheap: a random ResNet-18 on 32-px images."""
    options = dict(min_count=1, weights="random", image_size=32, batch_size=16, workers=0, threads=1)
    return conf_section("preprocess_coco", PreprocessCocoSettings, source="raw", input_dir=str(RAW), raw=options | raw)


def stage_settings(settings: PreprocessCocoSettings, seed: int) -> preprocess_coco.Settings:
    """The stage's settings, on the tests' CPU trainer."""
    return preprocess_coco.Settings(settings, conf_section("trainer", TrainerSettings, **TEST_TRAINER), seed)


def tiny_standin(n_train: int = 10, n_val: int = 4) -> Path:
    standin_coco.generate(RAW, seed=1, n_train=n_train, n_val=n_val)
    return RAW


def annotations(split: str) -> dict[str, set[str]]:
    """file name -> its captions, tokenised, from the COCO-format JSON."""
    doc = json.loads((RAW / f"annotations/captions_{split}2014.json").read_text())
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    out: dict[str, set[str]] = {}
    for ann in doc["annotations"]:
        out.setdefault(names[ann["image_id"]], set()).add(" ".join(tokenise(ann["caption"])))
    return out


def test_raw_path_writes_the_cs231n_layout_and_reads_back(isolated_workdir: Path):
    tiny_standin()
    meta = preprocess_coco.run(stage_settings(raw_settings(), seed=0))
    data = read_layout(paths.COCO, PREPARED_FEATURE_FILES)
    for split, n_images in (("train", 10), ("val", 4)):
        assert data.features[split].shape == (n_images, 512) and data.features[split].dtype == np.float32
        assert data.captions[split].shape == (5 * n_images, 17)
        decoded: dict[str, set[str]] = {}
        for row, image in zip(data.captions[split], data.image_idxs[split]):
            decoded.setdefault(Path(data.urls[split][image]).name, set()).add(data.vocab.decode(row))
        assert decoded == annotations(split)  # every caption, with the image it describes
        assert all((RAW / url).is_file() for url in data.urls[split])
    assert np.allclose(data.features["train"].mean(0), 0, atol=1e-4)  # standardised on train
    assert meta["standin"] is True and meta["dataset"] == "coco2014-standin" and meta["weights"] == "random"
    assert json.loads((paths.COCO / "meta.json").read_text())["backbone"] == "resnet18"


def test_caption_words_training_records_its_loss(isolated_workdir: Path):
    tiny_standin(n_train=6, n_val=2)
    settings = raw_settings(weights="caption_words", word_training={"epochs": 2, "batch_size": 4})
    meta = preprocess_coco.run(stage_settings(settings, seed=0))
    assert meta["weights"] == "caption_words" and 0 < meta["word_training_loss"] < 1
    c = MlflowClient()
    (run,) = c.search_runs([c.get_experiment_by_name("preprocess_coco").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["dvc.stage"] == "preprocess_coco"
    losses = c.get_metric_history(run.info.run_id, "words/loss")  # through build_trainer, an epoch a step
    assert [m.step for m in losses] == [0, 1] and losses[-1].value == meta["word_training_loss"]
    assert "data/prepared/coco/meta.json" in artifact_paths(c, run.info.run_id)


def cs231n_data(n_train_images: int = 6, n_val_images: int = 3, seed: int = 0) -> CaptionData:
    """Random content in CS231n's layout: 2 captions per image, width 7, 8-d features."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary.build([["a", "cat", "on", "the", "mat", "dog"]], min_count=1)

    def split(n_images: int, prefix: str):
        idxs = np.repeat(np.arange(n_images), 2).astype(np.int32)
        caps = np.stack([vocab.encode(list(rng.choice(["a", "cat", "mat", "dog"], size=rng.integers(1, 6))), 7) for _ in idxs])
        feats = rng.normal(size=(n_images, 8)).astype(np.float32)
        return caps, idxs, feats, [f"http://images.example/{prefix}_{i}.jpg" for i in range(n_images)]

    parts = {"train": split(n_train_images, "train"), "val": split(n_val_images, "val")}
    return CaptionData(vocab, *({s: p[k] for s, p in parts.items()} for k in range(4)))


def write_cs231n(data: CaptionData) -> None:
    write_layout(data, CS231N, FeaturesSource(pca=True).files())


def features_settings(max_train: int = 0) -> PreprocessCocoSettings:
    return conf_section("preprocess_coco", PreprocessCocoSettings, source="features", input_dir=str(CS231N), max_train=max_train)


def test_features_path_round_trip(isolated_workdir: Path):
    original = cs231n_data()
    write_cs231n(original)
    assert (CS231N / "train2014_vgg16_fc7_pca.h5").is_file()
    meta = preprocess_coco.run(stage_settings(features_settings(), seed=0))
    copy = read_layout(paths.COCO, PREPARED_FEATURE_FILES)
    for split in ("train", "val"):
        assert np.array_equal(copy.captions[split], original.captions[split])
        assert np.array_equal(copy.image_idxs[split], original.image_idxs[split])
        assert np.array_equal(copy.features[split], original.features[split])
        assert copy.urls[split] == original.urls[split]
    assert copy.vocab.idx_to_word == original.vocab.idx_to_word
    assert meta["source"] == "features" and meta["backbone"] == "vgg16_fc7" and meta["standin"] is False


def test_max_train_is_a_seeded_subsample_that_keeps_each_caption_with_its_image(isolated_workdir: Path):
    original = cs231n_data()
    write_cs231n(original)

    def subsample(seed: int) -> CaptionData:
        preprocess_coco.run(stage_settings(features_settings(max_train=5), seed=seed))
        return read_layout(paths.COCO, PREPARED_FEATURE_FILES)

    first, again, other = subsample(0), subsample(0), subsample(1)
    assert len(first.captions["train"]) == 5 and np.array_equal(first.captions["train"], again.captions["train"])
    assert not np.array_equal(first.captions["train"], other.captions["train"])
    for row, image in zip(first.captions["train"], first.image_idxs["train"]):
        url = first.urls["train"][image]
        k = original.urls["train"].index(url)
        assert np.array_equal(first.features["train"][image], original.features["train"][k])
        assert any(np.array_equal(row, c) for c, i in zip(original.captions["train"], original.image_idxs["train"]) if i == k)
    assert len(first.captions["val"]) == len(original.captions["val"])  # validation untouched


def _drop_key(key: str):
    def damage() -> None:
        with h5py.File(CS231N / "coco2014_captions.h5", "a") as f:
            del f[key]
    return damage


def _shift_index() -> None:
    with h5py.File(CS231N / "coco2014_captions.h5", "a") as f:
        f["val_image_idxs"][0] = 3  # the val features file has 3 images: 0..2


def _float_captions() -> None:
    with h5py.File(CS231N / "coco2014_captions.h5", "a") as f:
        captions = f["train_captions"][()]
        del f["train_captions"]
        f["train_captions"] = captions.astype(np.float32)


def _bad_vocab() -> None:
    path = CS231N / "coco2014_vocab.json"
    doc = json.loads(path.read_text())
    doc["word_to_idx"]["cat"] += 1
    path.write_text(json.dumps(doc))


def _short_url_list() -> None:
    path = CS231N / "val2014_urls.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


@pytest.mark.parametrize(
    "damage, file, problem",
    [
        (_drop_key("val_image_idxs"), "coco2014_captions.h5", "missing key 'val_image_idxs'"),
        (_shift_index, "coco2014_captions.h5", "index out of range"),
        (_float_captions, "coco2014_captions.h5", "'train_captions' has dtype float32; expected integer"),
        (_bad_vocab, "coco2014_vocab.json", "word_to_idx is not the inverse of idx_to_word"),
        (_short_url_list, "val2014_urls.txt", "2 lines for the 3 images"),
    ],
)
def test_malformed_cs231n_files_stop_with_the_file_and_the_problem(isolated_workdir: Path, damage, file: str, problem: str):
    write_cs231n(cs231n_data())
    damage()
    with pytest.raises(CocoDataError) as err:
        preprocess_coco.run(stage_settings(features_settings(), seed=0))
    assert file in str(err.value) and problem in str(err.value)


def _unreadable_image() -> None:
    next((RAW / "val2014").glob("*.jpg")).write_text("not a jpeg")


def _caption_without_text() -> None:
    path = RAW / "annotations/captions_train2014.json"
    doc = json.loads(path.read_text())
    del doc["annotations"][3]["caption"]
    path.write_text(json.dumps(doc))


def _caption_of_no_image() -> None:
    path = RAW / "annotations/captions_val2014.json"
    doc = json.loads(path.read_text())
    doc["annotations"][0]["image_id"] = 99999
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "damage, raw, file, problem",
    [
        (_unreadable_image, {}, "val2014/COCO_val2014_", "unreadable image"),
        (_caption_without_text, {}, "captions_train2014.json", "annotations[3] lacks key(s) ['caption']"),
        (_caption_of_no_image, {}, "captions_val2014.json", "refers to image_id 99999"),
        (lambda: None, {"max_length": 6}, "captions_train2014.json", "is longer than allowed"),
    ],
)
def test_malformed_coco_input_stops_with_the_file_and_the_problem(isolated_workdir: Path, damage, raw: dict, file: str, problem: str):
    tiny_standin(n_train=4, n_val=2)
    damage()
    with pytest.raises(CocoDataError) as err:
        preprocess_coco.run(stage_settings(raw_settings(**raw), seed=0))
    assert file in str(err.value) and problem in str(err.value)


def test_too_long_captions_can_be_dropped_instead(isolated_workdir: Path):
    tiny_standin(n_train=4, n_val=2)
    meta = preprocess_coco.run(stage_settings(raw_settings(max_length=8, too_long="drop"), seed=0))
    assert meta["train_dropped_too_long"] > 0 and meta["train_captions"] == 20 - meta["train_dropped_too_long"]


def test_the_command_line_names_the_problem_without_a_traceback(isolated_workdir: Path):
    params = write_params(isolated_workdir / "params.yaml", preprocess_coco={"source": "raw", "input_dir": "data/raw/nowhere"})
    with pytest.raises(SystemExit, match="preprocess_coco: data/raw/nowhere: no such directory"):
        preprocess_coco.main(["--params", str(params)])


def homework_settings(work: Path, **overrides) -> captioning.Settings:
    """conf/captioning/homework.yaml (conf/'s default), on the CPU."""
    return captioning.load_settings(write_params(work / "params.yaml", captioning=overrides))


@pytest.mark.slow
def test_homework_setting_overfits_50_captions(isolated_workdir: Path):
    tiny_standin(n_train=120, n_val=4)  # 50 of 600 captions: nearly all of different images, as in CS231n's
    preprocess_coco.run(stage_settings(raw_settings(), seed=0))
    s = homework_settings(isolated_workdir, models=["rnn"])
    c = s.task
    assert (c.hidden_dim, c.wordvec_dim, c.batch_size, c.max_train, c.epochs) == (512, 256, 25, 50, 58)
    assert (c.optim.name, c.optim.lr, c.optim.lr_decay) == ("adam", 0.004, 0.95)

    metrics = captioning.run(s, "rnn")

    first = float(Path("plots/captioning/curves/rnn/seed0.csv").read_text().splitlines()[1].split(",")[1])
    assert metrics["train_captions"] == 50 and metrics["epochs"] == 58
    assert metrics["train_captions_per_s"] == pytest.approx(58 * 50 / metrics["train_time_s"], rel=0.02)
    assert first > 10 and metrics["train/loss"] < 0.5  # per caption: from about 3 nats a word to near zero
    assert {"val/bleu1", "val/bleu2", "val/bleu3", "val/bleu4", "val/cider"} <= set(metrics)
    assert metrics["standin"] is True and metrics["cell"] == "rnn" and metrics["blind"] is False

    samples = Path("plots/captioning/samples/rnn/seed0.txt").read_text()
    assert samples.count("  generated: ") == 2 * c.samples and samples.count("  GT: ") == 2 * c.samples
    run = MlflowClient(tracking.tracking_uri()).get_run(metrics["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "rnn (seed 0)"
    assert run.data.params["cell"] == "rnn" and run.data.params["decoding"] == "greedy"
    assert run.data.params["captioning.decoding.beam_width"] == "1" and run.data.tags["data.standin"] == "true"
    assert {"val/bleu4", "val/cider", "train/loss"} <= set(run.data.metrics)
    artifacts = artifact_paths(MlflowClient(tracking.tracking_uri()), metrics["run_id"])
    assert {f"{folder}/rnn/seed0.{ext}" for folder, ext in [
        ("results/captioning", "json"), ("plots/captioning/curves", "csv"), ("plots/captioning/figures", "png"),
        ("plots/captioning/samples", "txt"), ("plots/captioning/samples", "png"), ("models/captioning", "pt")]} <= artifacts

    # The registered model, from its own files in a fresh process: image files in, the captions
    # the stage's network gives their prepared features out (same backbone, PCA, standardisation).
    data = read_layout(paths.COCO, PREPARED_FEATURE_FILES)
    net = Captioner(CaptionerConfig(len(data.vocab), 512, data.vocab.null, data.vocab.start, data.vocab.end, "rnn", 256, 512))
    net.load_state_dict(torch.load("models/captioning/rnn/seed0.pt", weights_only=True))
    tokens = net.eval().decode(torch.from_numpy(data.features["val"]), c.decoding.max_length, c.decoding.beam_width)
    expected = [data.vocab.decode(row) for row in tokens.tolist()]
    files = [str(RAW / url) for url in data.urls["val"]]
    got = run_in_fresh_process(CAPTION_FILES, "models:/hw4-captioner-coco2014-standin@champion", *files)
    assert got == expected and any(got)
    done = subprocess.run([sys.executable, "-m", "hw4", "caption", "models:/hw4-captioner-coco2014-standin@champion", files[0], "nowhere.jpg"],
                          capture_output=True, text=True, env=os.environ, timeout=300)
    assert done.returncode == 1 and done.stdout == f"{files[0]}\t{expected[0]}\n"
    assert "error: nowhere.jpg: " in done.stderr


def test_a_model_outside_the_list_is_refused(isolated_workdir: Path):
    s = homework_settings(isolated_workdir, models=["rnn"])
    with pytest.raises(ValueError, match="'lstm' is not in params captioning.models"):
        captioning.run(s, "lstm")
