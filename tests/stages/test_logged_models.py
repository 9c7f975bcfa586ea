"""The MLP's and the CNN's MLflow Models, loaded in a fresh process, and the registry's champion."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from hw4.stages import cnn
from hw4.tracking import runs as tracking
from hw4.data.formats.images import encode_png
from hw4.serving.image_classifier import png_column
from hw4.serving.predict import load
from hw4.tracking.logged_models import CHAMPION, ModelToLog, register
from hw4.tracking.model_requirements import requirements
from hw4.io.checksums import arrays_sha256
from tests.conftest import REPO, write_params
from tests.mlflow_servers import mlflow_server
from tests.stages.test_cnn import tiny_cnn_params

# A fresh interpreter: the model comes back from the registry with nothing of the test's imported.
PREDICT_TEST_SPLIT = """
import json, sys
import mlflow, numpy as np, torch
from hw4.serving.image_classifier import png_column
data = torch.load("data/prepared/mnist_family.pt", weights_only=True)
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(png_column(data["test_x"].numpy()))
print(json.dumps({"classes": out["class"].tolist(), "labels": out["label"].tolist()[:3],
                  "sums": [float(sum(p)) for p in out["probabilities"]][:3],
                  "acc": float((out["class"].to_numpy() == data["test_y"].numpy()).mean())}))
"""


# What a model's requirements never list: the process that loads a model sees a site-packages
# without them, as a virtual environment built from the requirements would be. A model whose
# code reached for one (serving importing a training module) fails to load there.
TRAINING_ONLY = {"pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics", "tqdm", "dvc", "hydra", "omegaconf"}


def site_packages_without(names: set[str], where: Path) -> Path:
    """`where`, filled with links to this venv's site-packages entries but those of `names`
    (their packages and their .dist-info; .pth files too, since `python -S` skips them)."""
    where.mkdir(parents=True)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top not in names and entry.suffix != ".pth":
            (where / entry.name).symlink_to(entry)
    return where


def run_in_fresh_process(script: str, *args: str) -> dict:
    """`script`'s last line of output, JSON, run by a new interpreter with `args`, in which
    no training library (`TRAINING_ONLY`) can be imported."""
    with tempfile.TemporaryDirectory() as tmp:
        site = site_packages_without(TRAINING_ONLY, Path(tmp) / "site-packages")
        env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
        done = subprocess.run([sys.executable, "-S", "-c", script, *args], capture_output=True, text=True,
                              env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_champion_predicts_the_test_split_as_the_stage_did(tiny_prepared: Path, isolated_workdir: Path):
    # Sampled every 10 s (conf's) and at the end: a run of a second has one sample.
    s = cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params()))
    records = {impl: cnn.run(s, impl) for impl in ("torch", "scratch")}
    c = MlflowClient(tracking.tracking_uri())
    # The runs view's Dataset column: each split by content, with its context; and system metrics.
    run = c.get_run(records["torch"]["run_id"])
    data = torch.load("data/prepared/mnist_family.pt", weights_only=True)
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert {k: v.name for k, v in inputs.items()} == {"train": "stripes/train", "validation": "stripes/val", "test": "stripes/test"}
    assert inputs["test"].digest == arrays_sha256(data["test_x"], data["test_y"])[:32] != inputs["train"].digest
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    versions = {v.tags["run_id"]: v for v in c.search_model_versions("name = 'hw4-cnn-stripes-standin'")}
    assert set(versions) == {r["run_id"] for r in records.values()}
    for record in records.values():
        tags = versions[record["run_id"]].tags
        assert (tags["seed"], tags["standin"], tags["dataset"]) == ("0", "true", "stripes")
        assert tags["commit"] and float(tags["validation_score"]) == record["val/acc"]
    best = max(records.values(), key=lambda r: (r["val/acc"], r["impl"] == "torch"))  # ties: the first registered
    champion = c.get_model_version_by_alias("hw4-cnn-stripes-standin", CHAMPION)
    assert champion.tags["run_id"] == best["run_id"]

    got = run_in_fresh_process(PREDICT_TEST_SPLIT, "models:/hw4-cnn-stripes-standin@champion")
    assert got["acc"] == best["test/acc"]  # the stage's own test accuracy, from the model's files alone
    classes = torch.load("data/prepared/mnist_family.pt", weights_only=True)["meta"]["classes"]
    assert got["labels"] == [classes[k] for k in got["classes"][:3]]
    assert got["sums"] == pytest.approx([1.0] * 3)


@pytest.mark.slow
def test_bad_input_is_refused_with_what_was_expected(tiny_prepared: Path, isolated_workdir: Path):
    import mlflow

    s = cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params(impls=["torch"], epochs=1)))
    record = cnn.run(s, "torch")
    model = mlflow.pyfunc.load_model(f"runs:/{record['run_id']}/model")
    images = torch.load("data/prepared/mnist_family.pt", weights_only=True)["test_x"][:4].numpy()
    frame = png_column(images)
    for bad, expected in [
        (frame.iloc[:0], "empty batch"),
        (frame.assign(image=[b"not an image"] * 4), "row 0 .* no readable image"),
    ]:
        with pytest.raises(MlflowException, match=expected):
            model.predict(bad)
    # Any size and colour: resized to the data's 28x28 grey as the data were.
    big = np.kron(images, np.ones((3, 3), dtype=np.uint8))  # (4, 84, 84)
    rgb = np.repeat(big[..., None], 3, axis=-1)
    assert len(model.predict(png_column(rgb))) == 4


CLASSIFY_FILES = """
import importlib.util, json, sys
import mlflow, pandas as pd
assert importlib.util.find_spec("hw4") is None and importlib.util.find_spec("pytorch_lightning") is None
model = mlflow.pyfunc.load_model(sys.argv[1])  # its code (the hw4 package) comes with it
print(json.dumps(model.predict(pd.DataFrame({"image": [open(f, "rb").read() for f in sys.argv[2:]]}))["class"].tolist()))
"""


@pytest.mark.slow
def test_a_model_loads_in_a_virtual_environment_built_from_its_requirements_alone(tiny_prepared: Path, tmp_path: Path):
    """What `mlflow models serve --env-manager virtualenv`, a Docker image built by MLflow, or a
    colleague's machine does: a new venv, `pip install -r requirements.txt`, load, predict."""
    import mlflow

    s = cnn.load_settings(write_params(Path("params.yaml"), cnn=tiny_cnn_params(impls=["torch"], epochs=1)))
    record = cnn.run(s, "torch")
    model_dir = Path(mlflow.artifacts.download_artifacts(f"runs:/{record['run_id']}/model", dst_path=str(tmp_path / "model")))
    listed = (model_dir / "requirements.txt").read_text().split()
    assert listed == requirements("hw4.serving.image_classifier")  # derived from the code, mlflow among them
    images = torch.load("data/prepared/mnist_family.pt", weights_only=True)["test_x"][:8].numpy()
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(encode_png(image))
    expected = mlflow.pyfunc.load_model(str(model_dir)).predict(png_column(images))["class"].tolist()

    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with tempfile.TemporaryDirectory() as env_dir:  # about 6 GB with CUDA's torch: gone when done
        subprocess.run([sys.executable, "-m", "venv", env_dir], check=True, timeout=120)
        # --no-compile: the same packages, without byte-compiling them (a third of pip's 80 s)
        pip = subprocess.run([f"{env_dir}/bin/pip", "install", "--quiet", "--no-compile", "-r", model_dir / "requirements.txt"],
                             capture_output=True, text=True, env=clean, timeout=1200)
        assert pip.returncode == 0, pip.stderr[-3000:]
        done = subprocess.run([f"{env_dir}/bin/python", "-c", CLASSIFY_FILES, model_dir, *files], capture_output=True,
                              text=True, env=clean, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == expected


def test_each_dataset_has_its_own_champion_and_a_bare_task_name_says_which_exist(isolated_workdir: Path, tmp_path: Path):
    """Versions of two datasets and a stand-in in one store: three models, three champions; a
    champion of one never answers with another's network (a digit model for a photo of a shirt)."""
    c = tracking.client()
    run = c.create_run(c.create_experiment("toy")).info.run_id
    for dataset, standin, score in [("mnist", False, 0.98), ("fashion_mnist", False, 0.91), ("mnist", True, 0.99),
                                    ("fashion_mnist", False, 0.93), ("fashion_mnist", False, 0.93)]:
        model = ModelToLog("hw4.serving.image_classifier", {}, {}, None, task="cnn", score=score, score_name="val/acc",
                           dataset=dataset, standin=standin)
        register(run, f"runs:/{run}/model", model)
    champions = {m.name: c.get_model_version_by_alias(m.name, CHAMPION) for m in c.search_registered_models()}
    assert {name: (str(v.version), v.tags["validation_score"]) for name, v in champions.items()} == {
        "hw4-cnn-mnist": ("1", "0.98"),
        "hw4-cnn-fashion-mnist": ("2", "0.93"),  # the tie's older version keeps the alias
        "hw4-cnn-mnist-standin": ("1", "0.99"),
    }
    assert c.get_registered_model("hw4-cnn-fashion-mnist").tags == {"task": "cnn", "dataset": "fashion_mnist", "standin": "false"}
    with pytest.raises(SystemExit, match=r"(?s)hw4-cnn.*not found.*hw4-cnn-fashion-mnist, hw4-cnn-mnist, "
                                         r"hw4-cnn-mnist-standin; name the one you want"):
        load("models:/hw4-cnn@champion", str(tmp_path))


REGISTER_AT = """
import sys, time
from pathlib import Path
from hw4.tracking.logged_models import crown_best
from hw4.tracking.runs import client
name, run, score, me, sync = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])
def wait_for(pattern, count):
    while len(list(sync.glob(pattern))) < count:
        time.sleep(0.001)
c = client()  # the project's: a store in write-ahead-log mode, as every stage opens it
(sync / f"ready-{me}").touch()
wait_for("go", 1)  # every process registers at the same moment
c.create_model_version(name, source=f"runs:/{run}/model", run_id=run, tags={"standin": "false", "validation_score": score})
(sync / f"registered-{me}").touch()
wait_for("registered-*", 4)  # and every one crowns at the same moment: the alias's writes collide
crown_best(name)
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_versions_registered_at_the_same_moment_all_succeed_and_the_best_is_champion(
        store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What `dvc queue start --jobs 4` does when evaluations end together: four processes each
    register a version and crown the best, at the same moment, three rounds on the SQLite
    store and two on a tracking server."""
    with contextlib.ExitStack() as stack:
        if store == "server":
            monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.enter_context(mlflow_server(tmp_path / "server")).url)
        race(rounds=3 if store == "sqlite" else 2)


def race(rounds: int) -> None:
    c = tracking.client()
    run = c.create_run(c.create_experiment("toy")).info.run_id
    scores = ["0.61", "0.93", "0.75", "0.88"]
    for round_ in range(rounds):
        name = f"hw4-race{round_}"
        c.create_registered_model(name)
        sync = Path(tempfile.mkdtemp(prefix="race-"))  # the processes' starting line: files
        procs = [subprocess.Popen([sys.executable, "-c", REGISTER_AT, name, run, score, str(i), str(sync)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i, score in enumerate(scores)]
        deadline = time.time() + 120
        while len(list(sync.glob("ready-*"))) < len(procs) and time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        (sync / "go").touch()  # once every interpreter has imported mlflow and opened the store
        done = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        shutil.rmtree(sync)
        assert all(code == 0 for code, _ in done), [err[-2000:] for code, err in done if code]
        champion = c.get_model_version_by_alias(name, CHAMPION)
        assert champion.tags["validation_score"] == "0.93", f"round {round_}: {champion.tags}"
