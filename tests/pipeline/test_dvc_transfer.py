"""`dvc repro` of both transfer modes on the stand-in, in a temporary git repository."""

import json

import pytest

from hw4.data.sources.manifest import write_manifests
from hw4.data.standins import hymenoptera as standin_hymenoptera
from tests.pipeline.conftest import DvcRepo

MODES = ("finetune", "freeze")
STAGES = {*(f"transfer@{m}-0" for m in MODES), *(f"transfer_seeds@{m}" for m in MODES)}


@pytest.mark.slow
def test_dvc_repro_runs_both_modes_on_the_standin(dvc_repo: DvcRepo, monkeypatch: pytest.MonkeyPatch):
    work = dvc_repo.root
    monkeypatch.setenv("TORCH_HOME", str(work / "no_torch_cache"))
    dvc_repo.write_params({
        "trainer": {"accelerator": "cpu", "devices": 1, "progress_bar": False},
        "transfer": {"pretrained": "random", "epochs": 1, "batch_size": 4, "workers": 0, "image_size": 32},
    })
    standin_hymenoptera.generate(work / "data/raw/hymenoptera", seed=0, per_class={"train": 6, "val": 4})
    write_manifests(work / "data/raw", ["hymenoptera"], work / "data/manifests")  # what the stages depend on

    # --single-item: the stand-in is in place already, so the download stage upstream stays out.
    # The matrix names transfer@<mode>-<seed>; the demo has one seed.
    assert DvcRepo.ran(dvc_repo.repro("--single-item", "transfer", "transfer_seeds")) == STAGES

    for mode in MODES:
        metrics = json.loads((work / f"results/transfer/{mode}.json").read_text())
        assert metrics["standin"] is True and metrics["weights"] == "random" and metrics["epochs"] == 1
        assert metrics["seeds"] == [0] and metrics["val/acc_std"] is None  # one seed: no spread
        assert (work / f"models/transfer/{mode}/seed0.pt").is_file()
    assert DvcRepo.ran(dvc_repo.repro("--single-item", "transfer", "transfer_seeds")) == set()
