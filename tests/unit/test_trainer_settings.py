"""Trainer and optimiser settings are checked when params load, before any MLflow run opens."""

from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from hw4 import cli
from hw4.tracking import runs as tracking
from tests.conftest import tiny_mlp_params, write_params


@pytest.mark.parametrize(
    "trainer, optim, message",
    [
        ({"devices": 0}, {}, "params 'trainer.devices': 0 is not a device count"),
        ({"devices": -7}, {}, "params 'trainer.devices': -7 is not a device count"),
        ({"precision": "bogus"}, {}, "params 'trainer.precision': 'bogus' is not one of"),
        ({"precision": "16-mixed", "accelerator": "cpu"}, {}, "params 'trainer.precision': 16-mixed is float16 autocast with loss scaling, for GPUs without bfloat16; this stage trains on the CPU: use bf16-mixed or 32-true"),
        ({"accelerator": "warp-drive"}, {}, "params 'trainer.accelerator': 'warp-drive' is not one of"),
        ({"strategy": "telepathy"}, {}, "params 'trainer.strategy': 'telepathy' is not one of"),
        ({"threads": -3}, {}, "params 'trainer.threads': must be 0"),
        ({"numerics": "portable", "threads": 0}, {}, "params 'trainer.threads': portable numerics need a fixed thread count"),
        ({"numerics": "exact"}, {}, "params 'trainer.numerics': 'exact' is not one of"),
        ({}, {"momentum": -5.0}, "params 'mlp.optim.momentum': must be in [0, 1)"),
        ({}, {"weight_decay": -1.0}, "params 'mlp.optim.weight_decay': must be 0 or more"),
    ],
)
def test_bad_trainer_or_optimiser_setting_stops_before_a_run_opens(
    isolated_workdir: Path, capsys: pytest.CaptureFixture, trainer: dict, optim: dict, message: str
):
    mlp = tiny_mlp_params()
    mlp["optim"] = {**mlp["optim"], **optim}
    params = write_params(isolated_workdir / "params.yaml", mlp=mlp)
    data = yaml.safe_load(params.read_text())
    data["trainer"].update(trainer)
    params.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as stop:
        cli.main(["mlp", "--hidden", "8", "--params", str(params)])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    store = isolated_workdir / "mlflow.db"
    if store.exists():  # the store may not even have been created
        c = MlflowClient(tracking.tracking_uri())
        assert c.search_runs([e.experiment_id for e in c.search_experiments()]) == []


@pytest.mark.parametrize("devices", ["auto", -1, 1, 4, "0,1"])
def test_device_choices_lightning_accepts_pass(tmp_path: Path, devices):
    from hw4.stages.mlp import load_settings

    params = write_params(tmp_path / "params.yaml", mlp=tiny_mlp_params())
    data = yaml.safe_load(params.read_text())
    data["trainer"]["devices"] = devices
    params.write_text(yaml.safe_dump(data))
    assert load_settings(params).trainer.devices == devices


def test_the_precision_names_are_lightnings():
    """TrainerSettings checks `precision` against a copy of Lightning's private list of names."""
    import typing

    from lightning_fabric import connector

    from hw4.training.trainer import PRECISIONS

    assert set(PRECISIONS) == set(typing.get_args(connector._PRECISION_INPUT_STR)) | set(typing.get_args(connector._PRECISION_INPUT_STR_ALIAS))


# What one task of `sbatch --nodes=2 --ntasks-per-node=1` sees on the second node (srun sets these).
SECOND_NODE_TASK = {
    "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "hw4", "SLURM_NNODES": "2", "SLURM_NODELIST": "node[0-1]",
    "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NODEID": "1",
}


def test_a_slurm_task_on_the_second_node_is_global_rank_1_and_opens_no_run(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    from pytorch_lightning.plugins.environments import SLURMEnvironment

    from hw4.training.trainer import TrainerSettings, build_trainer
    from tests.conftest import TEST_TRAINER, conf_section

    for key, value in SECOND_NODE_TASK.items():
        monkeypatch.setenv(key, value)
    settings = conf_section("trainer", TrainerSettings, **TEST_TRAINER | {"num_nodes": 2, "devices": 1, "strategy": "ddp"})
    assert not tracking.is_global_rank_zero()
    with tracking.StageRun("cnn", "cnn@torch-0", {"seed": 0}) as run:
        trainer = build_trainer(settings, run, 1)
    assert not run.active
    assert isinstance(trainer.strategy.cluster_environment, SLURMEnvironment)
    assert (trainer.global_rank, trainer.node_rank, trainer.local_rank, trainer.world_size) == (1, 1, 0, 2)
    c = MlflowClient(tracking.tracking_uri())
    assert not c.search_experiments(filter_string="name = 'cnn'")  # nothing was opened in the store
