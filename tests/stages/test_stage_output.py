"""What a stage prints, as DVC shows it: the libraries' lines that say something, without the
ones its reader can do nothing about (hw4.training.trainer.CHATTER, the system-metrics
thread's INFO lines, the download bars of MLflow's input-example check)."""

from __future__ import annotations

from pathlib import Path

from hw4.training.trainer import ADVERT
from tests.conftest import tiny_mlp_params, write_params
from tests.stages.test_distributed import hw4

CHATTER = [
    "exists and is not empty",  # the checkpoint folder, which holds run.json before any fit
    "LeafSpec",  # a deprecation inside Lightning's calls to torch
    ADVERT,
    "system_metrics_monitor",  # four INFO lines a run
    "Downloading artifacts",  # MLflow's progress bars
]


def test_a_stage_prints_what_the_libraries_say_without_their_chatter(tiny_prepared: Path, isolated_workdir: Path):
    write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params(epochs=1))
    for _ in range(2):  # the second run finds the first one's checkpoint folder
        printed = hw4("mlp", "--hidden", "16").stderr
        assert [line for line in CHATTER if line in printed] == [], printed
        # Lightning's own lines and its warnings still show, and so do MLflow's.
        assert "`Trainer.fit` stopped: `max_epochs=1` reached." in printed, printed
        assert "smaller than the logging interval" in printed, printed  # tiny data: 2 batches an epoch
        assert "INFO mlflow.pyfunc: Validating input example against model signature" in printed, printed
