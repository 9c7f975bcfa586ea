import subprocess
from pathlib import Path

import pytest
import yaml

from hw4.config.compose import compose
from hw4.config.settings import ConfigError, load_params, section
from hw4.stages.mlp import MLPSettings, load_settings
from tests.conftest import REPO, tiny_mlp_params, write_params


@pytest.mark.parametrize(
    "mlp, message",
    [
        (tiny_mlp_params(hidden_sizes=[]), "sweep is empty"),
        (tiny_mlp_params(hidden_sizes=[8, 0, -3]), "must be positive, got [0, -3]"),
        (tiny_mlp_params(hidden_sizes=[8, 8]), "duplicate"),
        (tiny_mlp_params(hiden=3), "unknown key(s) ['hiden']"),
        (tiny_mlp_params(optim={"name": "sgd", "lr": -1.0}), "must be positive"),
        (tiny_mlp_params(optim={"name": "rmsprop"}), "not one of"),
        (tiny_mlp_params(epochs="ten"), "expected int"),
        (tiny_mlp_params(steps_per_call=0), "steps_per_call must be at least 1"),
    ],
)
def test_bad_mlp_params_stop_with_a_clear_error(tmp_path: Path, mlp: dict, message: str):
    params = write_params(tmp_path / "params.yaml", mlp=mlp)
    with pytest.raises(ConfigError) as err:
        load_settings(params)
    assert message in str(err.value)


def test_missing_section_names_it(tmp_path: Path):
    params = load_params(write_params(tmp_path / "params.yaml"))
    del params["mlp"]
    with pytest.raises(ConfigError, match="missing section 'mlp'"):
        section(params, "mlp", MLPSettings)


def test_a_missing_key_is_named_not_defaulted(tmp_path: Path):
    """conf/ is the one source of defaults: a key it lacks is an error, not a silent value."""
    params = load_params(write_params(tmp_path / "params.yaml"))
    del params["mlp"]["optim"]["lr_decay"]
    with pytest.raises(ConfigError, match="params 'mlp.optim': missing key 'lr_decay'"):
        section(params, "mlp", MLPSettings)


def committed_params() -> str:
    """params.yaml as committed: `dvc exp run -S profile=demo` (scripts/pipeline.sh) rewrites
    the working copy, so after the pipeline it holds the demo's composition."""
    try:
        return subprocess.run(["git", "-C", str(REPO), "show", "HEAD:params.yaml"],
                              capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the file is all there is
        return (REPO / "params.yaml").read_text()


def test_committed_params_are_conf_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The committed params.yaml is what `dvc exp run` composes from conf/ with no overrides."""
    monkeypatch.setenv("HW4_ROOT", str(REPO))
    composed = compose(tmp_path / "params.yaml", [])
    assert yaml.safe_load(composed.read_text()) == yaml.safe_load(committed_params())


@pytest.mark.parametrize("overrides", [[], ["profile=demo", "mlp=homework", "cnn.epochs=3"]])
def test_compose_writes_what_dvc_exp_run_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str]):
    """hw4.config.compose uses Hydra's public API where DVC's `compose_and_dump` (an internal function,
    called here only) does the same: this fails when a DVC release composes differently."""
    from dvc.utils.hydra import compose_and_dump

    monkeypatch.setenv("HW4_ROOT", str(REPO))
    ours = compose(tmp_path / "ours.yaml", overrides).read_text()
    compose_and_dump(tmp_path / "dvc.yaml", str(REPO / "conf"), None, "config", str(REPO), overrides)
    assert ours == (tmp_path / "dvc.yaml").read_text()


def test_demo_profile_changes_data_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HW4_ROOT", str(REPO))
    real = yaml.safe_load(compose(tmp_path / "real.yaml", []).read_text())
    demo = yaml.safe_load(compose(tmp_path / "demo.yaml", ["profile=demo"]).read_text())
    assert demo["profile"] == "demo" and real["profile"] == "real"
    assert demo["prepare"]["dataset"] == "fashion_mnist"
    assert demo["mlp"]["hidden_sizes"] == real["mlp"]["hidden_sizes"]


@pytest.mark.parametrize("seeds", [None, 0, [], [True], ["0"]])
def test_a_training_stage_needs_a_list_of_integer_seeds(tmp_path: Path, seeds):
    params = write_params(tmp_path / "params.yaml", mlp=tiny_mlp_params(), seeds=seeds)
    with pytest.raises(ConfigError, match="params 'seeds': list the evaluations' seeds as integers"):
        load_settings(params)
