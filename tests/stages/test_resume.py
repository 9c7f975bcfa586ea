"""A stage killed mid-training, then left with a fault a kill or a user causes, runs again to
one FINISHED run with no hand work: a torn checkpoint, one made by other code, a deleted MLflow
run, a checkpoint write cut short. Each stage is a real process, SIGKILLed after its first checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from hw4.io import atomic
from hw4.tracking import runs as tracking
from hw4.training.checkpoint_io import AtomicCheckpointIO, unreadable
from tests.conftest import tiny_mlp_params, tiny_mnist_family, write_params
from tests.stages.test_distributed import hw4

EPOCHS = 12
CKPT = Path("checkpoints/mlp/points/h16/seed0/last.ckpt")
RECORD = Path("results/mlp/points/h16/seed0.json")


def all_runs() -> list:
    c = MlflowClient(tracking.tracking_uri())
    return c.search_runs([c.get_experiment_by_name("mlp").experiment_id], run_view_type=ViewType.ALL)


def val_acc_steps(run_id: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(tracking.tracking_uri()).get_metric_history(run_id, "val/acc"))


def killed_mlp_run(work: Path) -> str:
    """The run id of an MLP point SIGKILLed after its first complete checkpoint."""
    Path("data/prepared").mkdir(parents=True)
    torch.save(tiny_mnist_family(n_train=20000), "data/prepared/mnist_family.pt")
    write_params(work / "params.yaml", mlp=tiny_mlp_params(epochs=EPOCHS, batch_size=20))
    proc = subprocess.Popen([sys.executable, "-m", "hw4", "mlp", "--hidden", "16"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not CKPT.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert CKPT.exists() and not RECORD.exists(), "the run was not killed between its first checkpoint and its end"
    (killed,) = all_runs()
    assert killed.info.status == "RUNNING"
    return killed.info.run_id


@pytest.mark.slow
def test_a_torn_checkpoint_is_moved_aside_and_the_stage_starts_over(isolated_workdir: Path):
    killed = killed_mlp_run(isolated_workdir)
    CKPT.write_bytes(CKPT.read_bytes()[: CKPT.stat().st_size // 2])  # what a kill mid-write left before

    result = hw4("mlp", "--hidden", "16")
    aside = CKPT.with_name("last.ckpt.unreadable")
    assert f"resume: {CKPT} is not a complete checkpoint" in result.stderr and f"moved aside to {aside}" in result.stderr
    assert aside.is_file() and unreadable(aside)  # kept for a look, never resumed from
    assert f"MLflow run {killed} was interrupted and cannot be continued; marked KILLED" in result.stderr
    status = {r.info.run_id: r.info.status for r in all_runs()}
    assert status.pop(killed) == "KILLED" and list(status.values()) == ["FINISHED"]
    (new,) = status
    assert val_acc_steps(new) == list(range(EPOCHS))
    record = json.loads(RECORD.read_text())
    assert record["run_id"] == new and record["epochs"] == record["epochs_trained"] == EPOCHS


@pytest.mark.slow
def test_a_checkpoint_other_code_made_is_moved_aside_and_the_stage_starts_over(isolated_workdir: Path):
    killed = killed_mlp_run(isolated_workdir)
    # The network was edited after the kill (a layer renamed), its params unchanged.
    checkpoint = torch.load(CKPT, weights_only=False)
    checkpoint["state_dict"] = {k.replace("net.", "net.renamed_", 1): v for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, CKPT)

    result = hw4("mlp", "--hidden", "16")
    assert f"resume: {CKPT} was made by other code: its weights do not fit this network" in result.stderr
    status = {r.info.run_id: r.info.status for r in all_runs()}
    assert status.pop(killed) == "KILLED" and list(status.values()) == ["FINISHED"]
    assert json.loads(RECORD.read_text())["epochs_trained"] == EPOCHS


@pytest.mark.slow
def test_a_run_deleted_in_the_ui_resumes_its_training_into_a_new_run(isolated_workdir: Path):
    killed = killed_mlp_run(isolated_workdir)
    MlflowClient(tracking.tracking_uri()).delete_run(killed)

    result = hw4("mlp", "--hidden", "16")
    assert f"resume: MLflow run {killed} was deleted; the training resumes from {CKPT} into a new run" in result.stderr
    (new,) = [r for r in all_runs() if r.info.run_id != killed]
    assert new.info.status == "FINISHED" and new.data.tags["resumed_from"] == killed and new.data.tags["resumed"] == "true"
    record = json.loads(RECORD.read_text())
    assert record["run_id"] == new.info.run_id and record["epochs"] == EPOCHS and 0 < record["epochs_trained"] < EPOCHS


@pytest.mark.slow
def test_a_checkpoint_write_cut_short_loses_nothing_the_last_complete_one_holds(isolated_workdir: Path):
    killed = killed_mlp_run(isolated_workdir)
    # A kill during the next write: its temporary file, half written, beside the complete checkpoint.
    part = CKPT.with_name(f"{atomic.part_prefix(CKPT)}4242-0badf00d")
    part.write_bytes(CKPT.read_bytes()[: CKPT.stat().st_size // 2])

    hw4("mlp", "--hidden", "16")
    (run,) = all_runs()
    assert run.info.run_id == killed and run.info.status == "FINISHED"
    assert val_acc_steps(killed) == list(range(EPOCHS))  # the full history, each epoch once
    assert not part.exists()
    record = json.loads(RECORD.read_text())
    assert record["epochs"] == EPOCHS and 0 < record["epochs_trained"] < EPOCHS


def test_a_checkpoint_write_that_fails_leaves_the_previous_checkpoint(tmp_path: Path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)
    with pytest.raises(Exception):
        AtomicCheckpointIO().save_checkpoint({"epoch": 2, "unpicklable": lambda: None}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert unreadable(path) is None and [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signalled_stage_checkpoints_ends_killed_and_exits_nonzero_then_resumes_into_its_run(isolated_workdir: Path, signum: int):
    """What a cluster does to a long job (hw4.training.preemption): the signal mid-epoch makes a
    checkpoint of that step, the run KILLED and the exit status 128 + signum; the next run
    continues the same MLflow run from that step, every epoch logged once."""
    Path("data/prepared").mkdir(parents=True)
    torch.save(tiny_mnist_family(n_train=20000), "data/prepared/mnist_family.pt")
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params(epochs=EPOCHS, batch_size=20))
    proc = subprocess.Popen([sys.executable, "-m", "hw4", "mlp", "--hidden", "16"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not CKPT.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    (stopped,) = all_runs()
    assert stopped.info.status == "KILLED" and not RECORD.exists()
    position = torch.load(CKPT, weights_only=False)["hw4_train_loader"]
    assert 0 < position["items_done"], "the checkpoint is not of the step the signal came in"

    hw4("mlp", "--hidden", "16")
    (finished,) = all_runs()
    assert finished.info.run_id == stopped.info.run_id and finished.info.status == "FINISHED"
    assert val_acc_steps(finished.info.run_id) == list(range(EPOCHS))
    record = json.loads(RECORD.read_text())
    assert record["epochs"] == EPOCHS and record["epochs_trained"] == EPOCHS - position["epoch"]  # this process's part
