"""A team's tracking server with logins (MLflow's basic-auth app), on loopback: a stage with a
user's credentials logs its run and model; without them, with a user who may not write, or
with a server that is down, it says so in one line before it trains, and leaves nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import artifact_paths, tiny_mlp_params, write_params
from tests.mlflow_servers import free_port, mlflow_server
from tests.stages.test_distributed import hw4

ALICE = ("alice", "alice-password-for-tests")


def refused(monkeypatch: pytest.MonkeyPatch, expected: str) -> None:
    """The MLP point stage ends with exit status 1 and one line `error: ...expected...`, in
    seconds, having written nothing: no checkpoint, no result."""
    start = time.monotonic()
    done = hw4("mlp", "--hidden", "16", check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and expected in done.stderr.splitlines()[-1], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and time.monotonic() - start < 60
    assert not Path("checkpoints/mlp/points/h16/seed0/last.ckpt").exists() and not Path("results/mlp").exists()


@pytest.mark.slow
def test_a_stage_logs_with_a_login_and_stops_before_training_without_one(
        tiny_prepared: Path, isolated_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params())
    with mlflow_server(tmp_path / "server", logins=True) as server:
        server.add_user(*ALICE)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        refused(monkeypatch, f"the MLflow tracking server at {server.url} wants a login and refused this one: "
                             "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ALICE[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-her-password")
        refused(monkeypatch, "wants a login and refused this one")

        # The admin's experiment: every other user may read it (default_permission READ), not write.
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ALICE[1])
        experiment = server.as_admin("/api/2.0/mlflow/experiments/create", {"name": "mlp"})["experiment_id"]
        refused(monkeypatch, "does not let alice write to experiment 'mlp': ask the server's admin for EDIT permission")
        server.as_admin("/api/3.0/mlflow/users/permissions/grant", {
            "username": ALICE[0], "resource_type": "experiment", "resource_id": experiment, "permission": "EDIT"})
        hw4("mlp", "--hidden", "16")
        client = MlflowClient(server.url)  # alice's login, from the environment
        (run,) = client.search_runs([experiment])
        assert run.info.status == "FINISHED" and "val/acc" in run.data.metrics
        assert "models/mlp/points/h16/seed0.pt" in artifact_paths(client, run.info.run_id)
        assert any(p.name == "MLmodel" for p in server.artifacts.rglob("*"))  # the MLflow Model, through the server


@pytest.mark.slow
def test_a_server_that_is_down_stops_the_stage_before_training(tiny_prepared: Path, isolated_workdir: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params())
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    refused(monkeypatch, f"the MLflow tracking server at {url} does not answer (Connection refused): start it, "
                         "or fix MLFLOW_TRACKING_URI")
