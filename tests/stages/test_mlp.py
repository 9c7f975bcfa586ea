"""The MLP sweep stages on tiny generated data, with a real SQLite MLflow store."""

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from hw4 import tracking
from hw4.stages import mlp, mlp_select
from hw4.stages.mlp_select import select_best
from tests.conftest import tiny_mlp_params, write_params


def test_selection_takes_the_argmax_and_breaks_ties_toward_the_smaller_net():
    assert select_best({10: 0.5, 30: 0.9, 50: 0.7}) == 30
    assert select_best({200: 0.9, 50: 0.9, 100: 0.9}) == 50
    with pytest.raises(ValueError):
        select_best({})


def _settings(work: Path, **mlp_overrides):
    return mlp.load_settings(write_params(work / "params.yaml", mlp=tiny_mlp_params(**mlp_overrides)))


def _runs():
    c = MlflowClient(tracking.tracking_uri())
    return c.search_runs([c.get_experiment_by_name("mlp").experiment_id])


@pytest.mark.slow
def test_sweep_select_and_final(tiny_prepared: Path, isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-tiny")  # as `dvc exp run` sets it
    s = _settings(isolated_workdir)
    points = {h: mlp.run_point(s, h) for h in s.mlp.hidden_sizes}
    assert all(p["val/acc"] > 0.5 for p in points.values())  # the tiny task is learnable
    chosen = mlp_select.run(s)
    assert chosen["hidden"] == select_best({h: p["val/acc"] for h, p in points.items()})
    final = mlp.run_final(s)
    assert 0.5 < final["test/acc"] <= 1.0 and final["sweep_run_id"] == chosen["sweep_run_id"]

    runs = {r.info.run_id: r for r in _runs()}
    parent = runs[chosen["sweep_run_id"]]
    children = [r for r in runs.values() if r.data.tags.get(tracking.PARENT_TAG) == parent.info.run_id]
    assert sorted(int(r.data.params["hidden"]) for r in children) == [8, 16, 32]
    final_run = runs[final["run_id"]]
    assert final_run.data.tags["sweep.run_id"] == parent.info.run_id
    # Where its floats came from, on the run and in the results file.
    assert final_run.data.tags["dvc.experiment"] == "exp-tiny" and final_run.data.tags["numerics.mode"] == "fast"
    assert final["provenance"] == {k: final_run.data.tags[k] for k in final["provenance"]}
    assert {"cpu.model", "cpu.aten_capability", "cpu.threads", "version.mkl", "version.onednn"} <= set(final["provenance"])
    assert "test/acc" in final_run.data.metrics and all(r.info.status == "FINISHED" for r in runs.values())
    # The retraining learns from the validation split too, so it has no validation metrics.
    assert final_run.data.params["data.train_splits"] == "train+val" and "val/acc" not in final_run.data.metrics
    assert children[0].data.params["data.train_splits"] == "train"
    artifacts = {a.path for a in MlflowClient(tracking.tracking_uri()).list_artifacts(final["run_id"])}
    assert {"final.json", "final.csv", "final.png", "final.pt"} <= artifacts
    assert all(Path(f"checkpoints/mlp/{h}/last.ckpt").is_file() for h in (8, 16, 32))  # what a resume needs
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(children[0].info.run_id, "val/acc")
    assert [m.step for m in history] == [0, 1]
    assert json.loads(Path("results/mlp/select.json").read_text())["points"].keys() == {"8", "16", "32"}


@pytest.mark.slow
def test_same_params_and_seed_give_bit_identical_metrics(tiny_prepared: Path, isolated_workdir: Path):
    s = _settings(isolated_workdir)
    torch.manual_seed(1)  # two processes start from different global RNG states: the run's seed must decide
    first = mlp.run_point(s, 16)
    Path("checkpoints/mlp/16/run.json").unlink()  # a forced rerun, not a resume
    torch.manual_seed(2)
    second = mlp.run_point(s, 16)
    varying = {"run_id", "train_time_s", "train_samples_per_s"}
    assert {k: v for k, v in first.items() if k not in varying} == {k: v for k, v in second.items() if k not in varying}
    assert first["run_id"] != second["run_id"]


@pytest.mark.slow
def test_steps_per_call_changes_no_weight(tiny_prepared: Path, isolated_workdir: Path):
    """10 steps per training_step (the default) train what one step per call trains, bit for bit."""
    weights, curves = {}, {}
    for k in (1, 10):  # 12 steps an epoch: one call each, or calls of 10 and 2
        mlp.run_point(_settings(isolated_workdir, steps_per_call=k), 16)
        weights[k] = torch.load("models/mlp/h16.pt", weights_only=True)
        curves[k] = Path("plots/mlp/curves/h16.csv").read_text()
        Path("checkpoints/mlp/16/run.json").unlink()  # a fresh run, not a resume
    assert weights[1].keys() == weights[10].keys()
    assert all(torch.equal(weights[1][name], weights[10][name]) for name in weights[1])
    assert curves[1] == curves[10]  # the epochs' losses and accuracies too


def test_a_size_outside_the_sweep_is_refused(tiny_prepared: Path, isolated_workdir: Path):
    with pytest.raises(ValueError, match="not in params mlp.hidden_sizes"):
        mlp.run_point(_settings(isolated_workdir), 64)
