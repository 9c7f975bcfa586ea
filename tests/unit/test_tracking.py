"""The tracking core against a real SQLite MLflow store."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hw4.io.checksums import file_sha256
from hw4.tracking import runs as tracking
from hw4.tracking.runs import ResumeState, StageRun


def _runs(experiment: str):
    c = MlflowClient(tracking.tracking_uri())
    exp = c.get_experiment_by_name(experiment)
    return [] if exp is None else c.search_runs([exp.experiment_id])


def test_a_stage_run_is_one_finished_run_with_params_tags_and_metrics(tmp_path: Path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    with StageRun("unit", "unit_stage", {"a.b": 1, "lr": 0.5}, [data], standin=True) as run:
        run.log_metrics({"val/acc": 0.5}, step=0)
        run.log_metrics({"val/acc": 0.75}, step=1)
    (r,) = _runs("unit")
    assert r.info.status == "FINISHED"
    assert r.data.params == {"a.b": "1", "lr": "0.5"}
    assert r.data.metrics["val/acc"] == 0.75
    tags = r.data.tags
    assert tags["dvc.stage"] == "unit_stage" and tags["data.standin"] == "true"
    assert tags["data.sha256.data.bin"] == file_sha256(data)
    assert {"git.commit", "device", "version.torch", "version.mlflow"} <= set(tags)


def test_every_experiment_says_it_is_for_training_models_so_the_ui_opens_on_runs():
    c = MlflowClient(tracking.tracking_uri())
    older = c.create_experiment("older")  # made before hw4 tagged them, or by another tool
    for name in ("unit", "older"):
        with StageRun(name, "unit_stage", {}):
            pass
        assert c.get_experiment_by_name(name).tags["mlflow.experimentKind"] == "custom_model_development"
    assert c.get_experiment(older).experiment_id == older


def test_the_lightning_logger_buffers_until_flushed_and_saves_at_most_once_per_interval():
    with StageRun("unit", "unit_stage", {}) as run:
        logger = run.lightning_logger()
        logger.flush_every_s = 3600
        history = lambda key: [(m.step, m.value) for m in MlflowClient(tracking.tracking_uri()).get_metric_history(run.run_id, key)]  # noqa: E731
        for step in range(3):
            logger.log_metrics({"train/loss_step": 1.0 / (step + 1), "epoch": 0}, step=step)
        assert history("train/loss_step") == []  # buffered: no SQLite transaction per step
        logger.save()
        assert history("train/loss_step") == []  # an epoch's end within the interval
        logger.flush()  # before a checkpoint
        assert history("train/loss_step") == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
        logger.flush_every_s = 0
        logger.log_metrics({"val/acc": 0.25}, step=0)
        logger.save()
        assert history("val/acc") == [(0, 0.25)]
        logger.log_metrics({"val/acc": 0.5}, step=1)
        logger.finalize("success")  # what Lightning calls when fit or test ends
        assert history("val/acc") == [(0, 0.25), (1, 0.5)] and history("epoch") == []


def test_a_stage_that_raises_leaves_its_run_failed():
    with pytest.raises(RuntimeError):
        with StageRun("unit", "boom", {}):
            raise RuntimeError("training diverged")
    (r,) = _runs("unit")
    assert r.info.status == "FAILED"
    assert "training diverged" in r.data.tags["error"]


def test_mlflow_run_id_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch):
    c = MlflowClient(tracking.tracking_uri())
    outer = c.create_run(tracking.experiment_id("unit")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer)
    with StageRun("unit", "stage", {"x": 1}) as run:
        assert run.run_id == outer
    assert [r.info.run_id for r in _runs("unit")] == [outer]


def test_non_zero_ranks_open_no_run(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with StageRun("unit", "stage", {"x": 1}) as run:
        run.log_metrics({"a": 1.0})
        assert not run.active
    assert _runs("unit") == []


def test_resume_reopens_the_same_run_only_with_same_params_and_a_checkpoint(tmp_path: Path):
    state = ResumeState(tmp_path / "ckpt")
    with pytest.raises(KeyboardInterrupt):
        with StageRun("unit", "stage", {"x": 1}, resume=state) as first:
            state.checkpoint.write_bytes(b"weights")
            raise KeyboardInterrupt
    with StageRun("unit", "stage", {"x": 1}, resume=state) as second:
        assert second.resumed and second.run_id == first.run_id
    with StageRun("unit", "stage", {"x": 1}, resume=state) as third:
        assert not third.resumed and third.run_id != first.run_id  # the last one finished
    assert not state.checkpoint.exists()


def test_a_changed_param_on_an_existing_run_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    with StageRun("unit", "stage", {"lr": 0.1}) as run:
        pass
    monkeypatch.setenv("MLFLOW_RUN_ID", run.run_id)
    with pytest.raises(ValueError, match="already has param lr='0.1'"):
        with StageRun("unit", "stage", {"lr": 0.2}):
            pass


def test_an_unreadable_run_json_is_nothing_to_resume(tmp_path: Path):
    state = ResumeState(tmp_path / "ckpt")
    state.record("a" * 32, "hash", finished=False)
    state.checkpoint.write_bytes(b"weights")
    (tmp_path / "ckpt" / "run.json").write_text('{"run_id": "aaa')  # cut short by a crash
    with pytest.warns(UserWarning, match=r"run\.json is unreadable .*not resuming, the stage starts a new run"):
        assert state.resumable_run("hash") is None


def test_an_experiment_deleted_in_the_ui_is_restored_for_the_next_run(capsys):
    with StageRun("unit", "unit_stage", {}):
        pass
    c = MlflowClient(tracking.tracking_uri())
    c.delete_experiment(c.get_experiment_by_name("unit").experiment_id)
    with StageRun("unit", "unit_stage", {}) as run:
        pass
    assert "tracking: MLflow experiment 'unit' was deleted; restored it" in capsys.readouterr().err
    assert c.get_run(run.run_id).info.status == "FINISHED" and len(_runs("unit")) == 2
