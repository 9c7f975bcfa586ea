"""`dvc repro` of the real dvc.yaml: download, prepare and the MLP sweep, in a temporary repo."""

from __future__ import annotations

import json

import pytest

from hw4.outputs import HEADLINE
from tests.conftest import tiny_mlp_params
from tests.pipeline.conftest import DvcRepo

pytestmark = pytest.mark.slow
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _params(hidden_sizes: list[int]) -> dict:
    return {
        "trainer": {"accelerator": "cpu", "devices": 1, "progress_bar": False},
        "download": {"datasets": ["fashion_mnist"], "generate": [], "mirror_dirs": [FASHION_MNIST], "retries": 0, "timeout_s": 5},
        "prepare": {"dataset": "fashion_mnist", "val_size": 5000},
        "mlp": tiny_mlp_params(hidden_sizes=hidden_sizes, epochs=1, batch_size=500, eval_batch_size=5000),
    }


def test_download_prepare_and_the_sweep_rerun_exactly_what_changed(dvc_repo: DvcRepo):
    dvc_repo.write_params(_params([4, 8]))
    first = DvcRepo.ran(dvc_repo.repro("mlp_final"))
    assert first == {"download", "prepare", "mlp@4", "mlp@8", "mlp_select", "mlp_final"}
    assert DvcRepo.ran(dvc_repo.repro("mlp_final")) == set()  # nothing changed, nothing runs

    dvc_repo.write_params(_params([4, 12]))  # one size changed
    assert DvcRepo.ran(dvc_repo.repro("mlp_final")) == {"mlp@12", "mlp_select", "mlp_final"}
    dvc_repo.write_params(_params([4, 12, 16]))  # one size added
    assert DvcRepo.ran(dvc_repo.repro("mlp_final")) == {"mlp@16", "mlp_select", "mlp_final"}

    metrics = json.loads(dvc_repo.dvc("metrics", "show", "--json"))
    files = next(iter(metrics.values()))["data"]
    assert {f"metrics/mlp/points/h{h}.json" for h in (4, 12, 16)} | {"metrics/mlp/select.json", "metrics/mlp/final.json"} <= set(files)
    columns = {k for f in files.values() for k in f.get("data", {})}  # `dvc metrics show`: one table (stages not run: "error")
    assert columns <= set(HEADLINE) and {"hidden", "val/acc", "test/acc", "train_time_s"} <= columns
    dvc_repo.dvc("plots", "show", "-o", "dvc_plots")
    assert (dvc_repo.root / "dvc_plots/index.html").is_file()
    final = json.loads((dvc_repo.root / "results/mlp/final.json").read_text())
    assert final["dataset"] == "fashion_mnist" and final["standin"] is False and final["test/acc"] > 0.5
