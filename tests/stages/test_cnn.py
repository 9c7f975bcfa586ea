"""The CNN stage on tiny generated data, with both implementations of its layers."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hw4.config.settings import ConfigError
from hw4.stages import cnn
from hw4.tracking import runs as tracking
from tests.conftest import write_params


def tiny_cnn_params(**overrides) -> dict:
    params = {
        "impls": ["torch", "scratch"],
        "arch": {"channels": 4, "kernel": 7, "padding": 0, "hidden": 16, "extra_channels": []},
        "epochs": 2,
        "batch_size": 50,
        "eval_batch_size": 100,
        "optim": {"name": "adam", "lr": 0.01, "lr_decay": 0.9},
    }
    params.update(overrides)
    return params


@pytest.mark.slow
def test_both_implementations_train_as_comparable_runs(tiny_prepared: Path, isolated_workdir: Path):
    s = cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params()))
    results = {impl: cnn.run(s, impl) for impl in ("torch", "scratch")}
    for impl, m in results.items():
        assert m["test/acc"] > 0.5 and m["train_time_s"] > 0
        assert json.loads(Path(f"metrics/cnn/{impl}/seed0.json").read_text())[impl]["test/acc"] == m["test/acc"]
    c = MlflowClient(tracking.tracking_uri())
    runs = c.search_runs([c.get_experiment_by_name("cnn").experiment_id])
    by_impl = {r.data.params["impl"]: r for r in runs}
    assert set(by_impl) == {"torch", "scratch"}
    # The same params apart from the implementation: the runs compare directly in the UI.
    differing = {k for k in by_impl["torch"].data.params if by_impl["torch"].data.params[k] != by_impl["scratch"].data.params.get(k)}
    assert differing == {"impl"}


def test_bad_cnn_params_stop_before_training(tiny_prepared: Path, isolated_workdir: Path):
    with pytest.raises(ConfigError, match="leaves no pixels"):
        cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params(arch={"kernel": 7, "extra_channels": [8, 8]})))
    s = cnn.load_settings(write_params(isolated_workdir / "params.yaml", cnn=tiny_cnn_params(impls=["torch"])))
    with pytest.raises(ConfigError, match="not in params cnn.impls"):
        cnn.run(s, "scratch")
