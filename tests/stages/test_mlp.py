"""The MLP sweep stages on tiny generated data, with a real SQLite MLflow store."""

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from hw4.config.settings import ConfigError
from hw4.stages import mlp
from hw4.stages import seeds as seeds_stage
from hw4.stages.mlp_select import run_select, select_best, sweep_sizes
from hw4.tracking import runs as tracking
from tests.conftest import artifact_paths, tiny_mlp_params, write_params
from tests.stages.test_logged_models import PREDICT_TEST_SPLIT, run_in_fresh_process


def test_selection_takes_the_argmax_and_breaks_ties_toward_the_smaller_net():
    assert select_best({10: 0.5, 30: 0.9, 50: 0.7}) == 30
    assert select_best({200: 0.9, 50: 0.9, 100: 0.9}) == 50
    with pytest.raises(ValueError):
        select_best({})


def test_the_selection_says_which_sizes_or_records_it_lacks(isolated_workdir: Path):
    with pytest.raises(ConfigError, match="params 'mlp.hidden_sizes': expected a list of sizes, got 150"):
        sweep_sizes({"mlp": {"hidden_sizes": 150}})
    assert sweep_sizes({"mlp": {"hidden_sizes": [10, 30]}}) == [10, 30]
    with pytest.raises(FileNotFoundError, match="mlp_select needs results/mlp/points/h10/seed0.json, which does not exist"):
        run_select([10, 30], [0])


def _settings(work: Path, **mlp_overrides):
    return mlp.load_settings(write_params(work / "params.yaml", mlp=tiny_mlp_params(**mlp_overrides)))


def _runs():
    c = MlflowClient(tracking.tracking_uri())
    return c.search_runs([c.get_experiment_by_name("mlp").experiment_id])


@pytest.mark.slow
def test_sweep_select_and_final_over_two_seeds(tiny_prepared: Path, isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-tiny")  # as `dvc exp run` sets it
    seeds = [0, 1]
    params = write_params(isolated_workdir / "params.yaml", seeds=seeds, mlp=tiny_mlp_params())
    sizes = mlp.load_settings(params).task.hidden_sizes
    points = {(h, k): mlp.run_point(mlp.load_settings(params, k), h) for h in sizes for k in seeds}
    assert all(p["val/acc"] > 0.5 for p in points.values())  # the tiny task is learnable
    assert points[(16, 0)]["train/loss"] != points[(16, 1)]["train/loss"]  # the seed decides the run
    chosen = run_select(sizes, seeds)
    means = {h: (points[(h, 0)]["val/acc"] + points[(h, 1)]["val/acc"]) / 2 for h in sizes}
    assert chosen["hidden"] == select_best(means) and chosen["val/acc"] == pytest.approx(means[chosen["hidden"]])
    point = chosen["points"][str(chosen["hidden"])]
    assert point["per_seed"]["1"]["val/acc"] == points[(chosen["hidden"], 1)]["val/acc"]
    assert point["val/acc_std"] == pytest.approx(abs(points[(chosen["hidden"], 0)]["val/acc"] - points[(chosen["hidden"], 1)]["val/acc"]) / 2 ** 0.5)
    assert chosen["margin"] == pytest.approx(means[chosen["hidden"]] - means[chosen["runner_up"]])
    assert chosen["beats_spread"] == (chosen["margin"] > chosen["spread"]) and str(chosen["runner_up"]) in chosen["verdict"]
    finals = {k: mlp.run_final(mlp.load_settings(params, k)) for k in seeds}
    assert all(0.5 < f["test/acc"] <= 1.0 and f["sweep_run_id"] == chosen["sweep_run_id"] for f in finals.values())
    final = seeds_stage.run("mlp/final", seeds)
    assert final["test/acc"] == pytest.approx((finals[0]["test/acc"] + finals[1]["test/acc"]) / 2)
    assert json.loads(Path("metrics/mlp/final.json").read_text())["final"]["test/acc_std"] == final["test/acc_std"]

    runs = {r.info.run_id: r for r in _runs()}
    parent = runs[chosen["sweep_run_id"]]
    children = [r for r in runs.values() if r.data.tags.get(tracking.PARENT_TAG) == parent.info.run_id]
    assert sorted((int(r.data.params["hidden"]), int(r.data.params["seed"])) for r in children) == sorted(points)
    # The final runs of both seeds side by side, children of the evaluation's parent run.
    final_children = {r.data.params["seed"]: r for r in runs.values() if r.data.tags.get(tracking.PARENT_TAG) == final["run_id"]}
    assert set(final_children) == {"0", "1"} and runs[final["run_id"]].data.metrics["test/acc"] == final["test/acc"]
    # The parent's row in the runs view shows the seeds' datasets and models.
    parent_final = runs[final["run_id"]]
    assert {(d.dataset.name, d.dataset.digest) for d in parent_final.inputs.dataset_inputs} == {
        (d.dataset.name, d.dataset.digest) for r in final_children.values() for d in r.inputs.dataset_inputs}
    assert {m.model_id for m in parent_final.outputs.model_outputs} == {
        m.model_id for r in final_children.values() for m in r.outputs.model_outputs} != set()
    final_run = final_children["0"]
    assert final_run.data.tags["sweep.run_id"] == parent.info.run_id
    # Where its floats came from, on the run and in the results file.
    assert final_run.data.tags["dvc.experiment"] == "exp-tiny" and final_run.data.tags["numerics.mode"] == "fast"
    assert finals[0]["provenance"] == {k: final_run.data.tags[k] for k in finals[0]["provenance"]}
    assert {"cpu.model", "cpu.aten_capability", "cpu.threads", "version.mkl", "version.onednn"} <= set(finals[0]["provenance"])
    assert "test/acc" in final_run.data.metrics and all(r.info.status == "FINISHED" for r in runs.values())
    # The retraining learns from the validation split too, so it has no validation metrics.
    assert final_run.data.params["data.train_splits"] == "train+val" and "val/acc" not in final_run.data.metrics
    assert children[0].data.params["data.train_splits"] == "train"
    artifacts = artifact_paths(MlflowClient(tracking.tracking_uri()), finals[0]["run_id"])
    assert {"results/mlp/final/seed0.json", "plots/mlp/final/seed0.csv", "plots/mlp/figures/final/seed0.png",
            "models/mlp/final/seed0.pt"} <= artifacts
    assert all(Path(f"checkpoints/mlp/points/h{h}/seed{k}/last.ckpt").is_file() for h, k in points)  # what a resume needs
    history = MlflowClient(tracking.tracking_uri()).get_metric_history(children[0].info.run_id, "val/acc")
    assert [m.step for m in history] == [0, 1]
    assert json.loads(Path("results/mlp/select.json").read_text())["points"].keys() == {"8", "16", "32"}
    # The registered champion, from its own files where no training library can be imported.
    champion = MlflowClient(tracking.tracking_uri()).get_model_version_by_alias("hw4-mlp-stripes-standin", "champion")
    got = run_in_fresh_process(PREDICT_TEST_SPLIT, "models:/hw4-mlp-stripes-standin@champion")
    assert got["acc"] == next(f["test/acc"] for f in finals.values() if f["run_id"] == champion.tags["run_id"])


def test_a_seed_outside_the_seeds_is_refused(tiny_prepared: Path, isolated_workdir: Path):
    with pytest.raises(ValueError, match=r"seed 3 is not in params seeds \[0\]"):
        mlp.load_settings(write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params()), 3)
    with pytest.raises(ValueError, match="duplicate seeds"):
        mlp.load_settings(write_params(isolated_workdir / "params.yaml", seeds=[1, 1], mlp=tiny_mlp_params()))


@pytest.mark.slow
def test_same_params_and_seed_give_bit_identical_metrics(tiny_prepared: Path, isolated_workdir: Path):
    s = _settings(isolated_workdir)
    torch.manual_seed(1)  # two processes start from different global RNG states: the run's seed must decide
    first = mlp.run_point(s, 16)
    Path("checkpoints/mlp/points/h16/seed0/run.json").unlink()  # a forced rerun, not a resume
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
        weights[k] = torch.load("models/mlp/points/h16/seed0.pt", weights_only=True)
        curves[k] = Path("plots/mlp/curves/points/h16/seed0.csv").read_text()
        Path("checkpoints/mlp/points/h16/seed0/run.json").unlink()  # a fresh run, not a resume
    assert weights[1].keys() == weights[10].keys()
    assert all(torch.equal(weights[1][name], weights[10][name]) for name in weights[1])
    assert curves[1] == curves[10]  # the epochs' losses and accuracies too


def test_a_size_outside_the_sweep_is_refused(tiny_prepared: Path, isolated_workdir: Path):
    with pytest.raises(ValueError, match="not in params mlp.hidden_sizes"):
        mlp.run_point(_settings(isolated_workdir), 64)
