"""Every stage's settings load from the params each profile composes (no training): a key
renamed in a dataclass or in conf/ fails here, in seconds, not in the slow pipeline tests."""

import importlib
import pkgutil
from pathlib import Path

import pytest

import hw4.stages
from hw4.config.compose import compose
from hw4.config.seeds import seeds_of
from hw4.config.settings import load_params, section
from hw4.stages import captioning, cnn, download, gradcheck, mlp, prepare, report, transfer
from tests.conftest import REPO


@pytest.mark.parametrize("profile", ["real", "demo"])
def test_every_stage_loads_its_settings_from_the_composed_profile(profile: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HW4_ROOT", str(REPO))  # conf/ is the repository's
    path = compose(tmp_path / "params.yaml", [f"profile={profile}"])
    params = load_params(path)
    section(params, "download", download.DownloadSettings)
    section(params, "prepare", prepare.PrepareSettings)
    section(params, "gradcheck", gradcheck.GradcheckSettings)
    for info in pkgutil.iter_modules(hw4.stages.__path__):  # every stage that reads its settings so
        module = importlib.import_module(f"hw4.stages.{info.name}")
        if hasattr(module, "load_settings"):
            module.load_settings(path)
    seeds = seeds_of(params)
    assert (len(seeds) >= 3) == (profile == "real")  # the demo runs fewer, to stay near 15 minutes
    for seed in seeds:
        assert mlp.load_settings(path, seed).seed == seed
    assert set(cnn.load_settings(path).task.impls) == {"torch", "scratch"}
    assert captioning.load_settings(path).task.models == ["rnn", "lstm", "blind"]
    assert transfer.load_settings(path).task.modes == ["finetune", "freeze"]
    assert report.load_settings(path).profile == profile
