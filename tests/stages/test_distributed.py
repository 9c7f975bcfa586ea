"""DDP on the CPU (gloo), crash-and-resume, `mlflow run`, and a real tracking server.

Each runs the stage as `python -m hw4 ...` in a subprocess, as DVC does: Lightning's DDP
launcher re-executes the command line for every extra rank, and SIGKILL needs a process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from hw4.data.loaders.mnist_batches import load_prepared
from hw4.models.cnn import CNN, CNNConfig
from hw4.models.mlp import MLP, MLPConfig
from hw4.tracking import runs as tracking
from tests.conftest import REPO, artifact_paths, tiny_mlp_params, tiny_mnist_family, write_params
from tests.mlflow_servers import free_port
from tests.mlflow_servers import mlflow_server as start_server
from tests.stages.test_cnn import tiny_cnn_params

pytestmark = pytest.mark.slow
DDP_TRAINER = {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "progress_bar": False}


def hw4(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "hw4", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"hw4 {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def runs(experiment: str, uri: str | None = None):
    c = MlflowClient(uri or tracking.tracking_uri())
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


def noisy_data(work: Path) -> Path:
    """Tiny data with an odd-sized, partly mislabelled test set: padding would change its accuracy."""
    data = tiny_mnist_family(n_test=201)
    g = torch.Generator().manual_seed(1)
    flip = torch.rand(201, generator=g) < 0.3
    data["test_y"][flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g).to(torch.uint8)
    path = work / "data/prepared/mnist_family.pt"
    path.parent.mkdir(parents=True)
    torch.save(data, path)
    return path


def single_process_test_acc(net: torch.nn.Module, weights: Path, data_path: Path) -> float:
    data = load_prepared(data_path)
    train = data["train_x"].float().div(255)
    net.load_state_dict(torch.load(weights, weights_only=True))
    x = data["test_x"].float().div(255).sub(train.mean()).div(train.std()).unsqueeze(1)
    with torch.no_grad():
        return (net(x).argmax(1) == data["test_y"].long()).float().mean().item()


def _ddp_mlp_final() -> tuple[str, torch.nn.Module, Path, Path]:
    Path("results/mlp").mkdir(parents=True)
    Path("results/mlp/select.json").write_text(json.dumps({"hidden": 16, "val/acc": 1.0, "sweep_run_id": "sweep"}))
    hw4("mlp_final")
    return "mlp", MLP(MLPConfig(hidden=16)), Path("models/mlp/final/seed0.pt"), Path("results/mlp/final/seed0.json")


def _ddp_cnn() -> tuple[str, torch.nn.Module, Path, Path]:
    hw4("cnn", "--impl", "torch")
    return "cnn", CNN(CNNConfig(**tiny_cnn_params()["arch"])), Path("models/cnn/torch/seed0.pt"), Path("results/cnn/torch/seed0.json")


@pytest.mark.parametrize("stage", [_ddp_mlp_final, _ddp_cnn], ids=["mlp_final", "cnn"])
def test_two_ddp_processes_make_one_run_and_exact_test_accuracy(isolated_workdir: Path, stage):
    data_path = noisy_data(isolated_workdir)
    write_params(isolated_workdir / "params.yaml", trainer=DDP_TRAINER, mlp=tiny_mlp_params(epochs=3), cnn=tiny_cnn_params(epochs=3))
    experiment, net, weights, metrics = stage()

    (run,) = runs(experiment)
    assert run.info.status == "FINISHED"
    final = json.loads(metrics.read_text())
    assert final["test/acc"] == pytest.approx(single_process_test_acc(net, weights, data_path), abs=1e-7)
    assert final["test/acc"] < 0.95  # the mislabelled samples are counted, once each
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.info.run_id, "train/acc")
    assert sorted(m.step for m in history) == [0, 1, 2]  # each epoch logged once, by rank 0
    assert run.data.params["trainer.devices"] == "2" and run.data.params["batch_size_semantics"] == "global"


def on_two_nodes(args: list[str], log_dir: Path, timeout: float = 300) -> None:
    """`args` of `python -m hw4` as a two-node job on loopback, as docs/scaling.md launches it:
    torchrun once per node rank, one process each, rendezvous at 127.0.0.1."""
    torchrun = Path(sys.executable).with_name("torchrun")
    port = free_port()
    procs = []
    try:
        for rank in (0, 1):
            log = (log_dir / f"node{rank}.log").open("w")
            procs.append(subprocess.Popen(
                [str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                 "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "hw4", *args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.time() + timeout
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for rank, proc in enumerate(procs):
        assert proc.returncode == 0, f"node {rank}:\n{(log_dir / f'node{rank}.log').read_text()[-3000:]}"


@pytest.mark.parametrize("stage", ["mlp_final", "cnn"])
def test_two_nodes_on_loopback_make_one_run_and_exact_test_accuracy(isolated_workdir: Path, tmp_path: Path, stage: str):
    data_path = noisy_data(isolated_workdir)
    two_nodes = {"accelerator": "cpu", "devices": 1, "num_nodes": 2, "strategy": "ddp", "progress_bar": False}
    write_params(isolated_workdir / "params.yaml", trainer=two_nodes, mlp=tiny_mlp_params(epochs=3), cnn=tiny_cnn_params(epochs=3))
    if stage == "mlp_final":
        Path("results/mlp").mkdir(parents=True)
        Path("results/mlp/select.json").write_text(json.dumps({"hidden": 16, "val/acc": 1.0, "sweep_run_id": "sweep"}))
        experiment, net, files = "mlp", MLP(MLPConfig(hidden=16)), "mlp/final/seed0"
        on_two_nodes(["mlp_final"], tmp_path)
    else:
        experiment, net, files = "cnn", CNN(CNNConfig(**tiny_cnn_params()["arch"])), "cnn/torch/seed0"
        on_two_nodes(["cnn", "--impl", "torch"], tmp_path)

    (run,) = runs(experiment)  # one run: node 1's process opened none
    assert run.info.status == "FINISHED" and run.data.params["trainer.num_nodes"] == "2"
    final = json.loads(Path(f"results/{files}.json").read_text())
    assert final["test/acc"] == pytest.approx(single_process_test_acc(net, Path(f"models/{files}.pt"), data_path), abs=1e-7)
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.info.run_id, "train/acc")
    assert sorted(m.step for m in history) == [0, 1, 2]  # each epoch once


def test_a_killed_run_resumes_into_the_same_mlflow_run(isolated_workdir: Path):
    data = tiny_mnist_family(n_train=20000)
    Path("data/prepared").mkdir(parents=True)
    torch.save(data, "data/prepared/mnist_family.pt")
    epochs = 12
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params(epochs=epochs, batch_size=20))
    ckpt = Path("checkpoints/mlp/points/h16/seed0/last.ckpt")
    proc = subprocess.Popen([sys.executable, "-m", "hw4", "mlp", "--hidden", "16"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not Path("results/mlp/points/h16/seed0.json").exists(), "the run finished before it could be killed"
    (killed,) = runs("mlp")
    assert killed.info.status == "RUNNING"

    hw4("mlp", "--hidden", "16")
    (run,) = runs("mlp")  # no second run
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["resumed"] == "true"
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(run.info.run_id, "val/acc")
    assert sorted({m.step for m in history}) == list(range(epochs))
    record = json.loads(Path("results/mlp/points/h16/seed0.json").read_text())
    assert record["epochs"] == epochs and 0 < record["epochs_trained"] < epochs
    # The speed counts only what this invocation trained, in its own time.
    assert record["train_samples_per_s"] == pytest.approx(record["epochs_trained"] * 20000 / record["train_time_s"], rel=0.02)


def test_mlflow_run_of_an_entry_point_makes_exactly_one_run(tiny_prepared: Path, isolated_workdir: Path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # an activated venv
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params())
    shutil.copy(REPO / "MLproject", isolated_workdir / "MLproject")
    mlflow = Path(sys.executable).with_name("mlflow")
    result = subprocess.run(
        [str(mlflow), "run", ".", "-e", "mlp", "-P", "hidden=16", "-P", "seed=0", "--env-manager", "local", "--experiment-name", "mlp"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = runs("mlp")
    assert run.info.status == "FINISHED"
    assert run.data.params["hidden"] == "16" and "val/acc" in run.data.metrics
    assert json.loads(Path("results/mlp/points/h16/seed0.json").read_text())["run_id"] == run.info.run_id


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real `mlflow server` on 127.0.0.1 with its own SQLite store and artifact root."""
    with start_server(tmp_path / "server") as server:
        yield server.url, server.artifacts


def test_a_stage_logs_to_a_tracking_server(tiny_prepared: Path, isolated_workdir: Path, mlflow_server, monkeypatch):
    url, artifact_root = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params())
    hw4("mlp", "--hidden", "16")
    (run,) = runs("mlp", url)
    assert run.info.status == "FINISHED" and "val/acc" in run.data.metrics
    artifacts = artifact_paths(MlflowClient(url), run.info.run_id)
    assert {"results/mlp/points/h16/seed0.json", "plots/mlp/curves/points/h16/seed0.csv", "plots/mlp/figures/points/h16/seed0.png",
            "models/mlp/points/h16/seed0.pt"} <= artifacts
    assert any(p.match("models/mlp/points/h16/seed0.pt") for p in artifact_root.rglob("*"))  # stored by the server
    assert not Path("mlflow.db").exists()  # nothing went to the local default store
    assert any(p.name == "MLmodel" for p in artifact_root.rglob("*"))  # the MLflow Model too, proxied

    # Another client, elsewhere, with nothing but the server's URL, loads the model the stage logged.
    elsewhere = isolated_workdir.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.copy("data/prepared/mnist_family.pt", elsewhere / "data.pt")
    script = ("import sys, torch, mlflow; from hw4.serving.image_classifier import png_column; "
              "x = torch.load('data.pt', weights_only=True)['test_x'][:5].numpy(); "
              "print(len(mlflow.pyfunc.load_model(sys.argv[1]).predict(png_column(x))))")
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "HW4_ROOT": str(elsewhere)}
    other = subprocess.run([sys.executable, "-c", script, f"runs:/{run.info.run_id}/model"], cwd=elsewhere, capture_output=True,
                           text=True, timeout=300, env=env)
    assert other.returncode == 0 and other.stdout.split()[-1] == "5", other.stderr[-2000:]

    # `predict` does the same through the server and leaves nothing behind in the temporary folders.
    Image.fromarray(torch.load("data/prepared/mnist_family.pt", weights_only=True)["test_x"][0].numpy()).save(elsewhere / "a.png")
    (elsewhere / "tmp").mkdir()
    answer = subprocess.run([sys.executable, "-m", "hw4", "predict", f"runs:/{run.info.run_id}/model", "a.png"], cwd=elsewhere,
                            capture_output=True, text=True, timeout=300, env={**env, "TMPDIR": str(elsewhere / "tmp")})
    assert answer.returncode == 0 and answer.stdout.startswith("a.png\t"), answer.stderr[-2000:]
    assert not any(p.name == "MLmodel" for p in (elsewhere / "tmp").rglob("*")), sorted((elsewhere / "tmp").rglob("*"))
