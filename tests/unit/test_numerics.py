"""The numerics setting: how it is read, what it pins, and what it refuses."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hw4 import cli
from hw4.config import numerics
from hw4.config.compose import default_params
from hw4.config.settings import ConfigError
from hw4.stages import preprocess_coco
from hw4.tracking.provenance import git_tags
from hw4.tracking.runs import StageRun
from hw4.training.trainer import TrainerSettings, build_trainer
from tests.conftest import write_params


def test_the_mode_is_read_from_the_stage_params_file(tmp_path: Path):
    params = tmp_path / "p.yaml"
    params.write_text("trainer: {numerics: portable}\n")
    assert cli.params_path(["--hidden", "8", "--params", str(params)]) == params
    assert cli.params_path([f"--params={params}"]) == params
    assert cli.params_path(["--impl", "torch"]) == Path("params.yaml")
    assert cli.numerics_mode(params) == "portable"
    params.write_text("trainer: {threads: 2}\n")
    assert cli.numerics_mode(params) == "fast"  # nothing pinned: the settings check names the missing key
    assert cli.numerics_mode(tmp_path / "none.yaml") == "fast"


@pytest.mark.parametrize("command, pinned", [("gradcheck", "avx2"), ("pipeline", None)])
def test_a_stage_pins_its_params_numerics_and_the_pipeline_leaves_them_to_its_stages(
        tmp_path: Path, command: str, pinned: str | None):
    """`python -m hw4 pipeline --profile demo` in a checkout whose params.yaml is the real
    profile's: pinned there, portable_avx2 would reach every demo stage through the environment."""
    (tmp_path / "params.yaml").write_text("trainer: {numerics: portable_avx2, accelerator: cpu}\n")
    code = ("import os, sys; from hw4 import cli\n"
            f"try: cli.main([{command!r}, '--help'])\nexcept SystemExit: pass\n"
            "print(os.environ.get('ATEN_CPU_CAPABILITY'), file=sys.stderr)")
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == str(pinned)


def test_portable_mode_refuses_a_process_that_chose_its_code_paths_already():
    """This test process ran torch ops unpinned: a portable stage here must not pretend."""
    torch.ones(2) + 1
    if numerics.in_force() == {"aten_capability": "DEFAULT", "mkl_branch": "COMPATIBLE"}:
        pytest.skip("this process runs the portable code paths already")
    with pytest.raises(numerics.NumericsError, match="python -m hw4"):
        numerics.configure("portable", 2)
    numerics.configure("fast", 0)
    assert torch.backends.mkldnn.enabled


@pytest.mark.parametrize(
    "accelerator, gpu, on_cpu, pinned",
    [("cpu", True, True, "portable_avx2"), ("auto", False, True, "portable_avx2"), ("auto", True, False, "portable_avx2"),
     ("gpu", False, False, "fast"), ("cuda", True, False, "fast")],
)
def test_a_stage_trains_on_the_cpu_where_its_accelerator_says_or_auto_finds_no_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accelerator: str, gpu: bool, on_cpu: bool, pinned: str
):
    """`python -m hw4` pins the CPU unless the accelerator names a GPU (`auto` without asking the
    driver: that would import torch for every command); the trainer asks (test below)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert numerics.trains_on_cpu(accelerator) == on_cpu
    params = tmp_path / "p.yaml"
    params.write_text(f"trainer: {{accelerator: {accelerator}, numerics: portable_avx2, threads: 2}}\n")
    assert cli.numerics_mode(params) == pinned


def real_trainer_settings() -> TrainerSettings:
    return TrainerSettings(**default_params()["trainer"])


def test_the_cpu_only_settings_give_way_on_a_gpu():
    settings = real_trainer_settings()
    assert (settings.numerics, settings.threads) == ("portable_avx2", 2)  # the real profile's, as on the CPU
    assert settings.for_device(on_cpu=True) == settings
    on_gpu = settings.for_device(on_cpu=False)
    assert (on_gpu.numerics, on_gpu.threads) == ("fast", 0)  # the GPU's floats; torch's own threads
    assert replace(on_gpu, numerics=settings.numerics, threads=settings.threads) == settings  # nothing else moves


def test_a_trainer_built_for_a_gpu_neither_pins_nor_refuses_the_cpu(monkeypatch: pytest.MonkeyPatch):
    """This process ran torch ops unpinned, which a portable CPU stage refuses (test above); built
    as on a GPU machine (`auto` finding one), the same settings run, and the run says `fast`."""
    torch.ones(2) + 1
    threads = torch.get_num_threads()
    monkeypatch.setattr(numerics, "trains_on_cpu", lambda accelerator: False)
    run = StageRun("mlp", "mlp@8-0", {})  # not entered: no MLflow run
    build_trainer(replace(real_trainer_settings(), progress_bar=False, system_metrics_s=0), run, max_epochs=1)
    assert run.provenance["numerics.mode"] == "fast"
    assert torch.get_num_threads() == threads and torch.backends.mkldnn.enabled


def test_provenance_names_the_code_paths():
    info = numerics.provenance("fast")
    assert info["numerics.mode"] == "fast" and info["cpu.threads"] == str(torch.get_num_threads())
    assert info["cpu.aten_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"cpu.model", "cpu.mkl_branch", "version.mkl", "cpu.onednn"} <= set(info)
    assert info["version.onednn"] == "none" or info["version.onednn"][0].isdigit()  # "3.12.0"


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_git_dirty_counts_changes_by_hand_not_what_the_pipeline_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  mlp:\n    cmd: x\n    outs:\n      - results/mlp/h${item.hidden}.json:\n          cache: false\n"
        "    metrics:\n      - metrics/mlp.json\n"
    )
    for name in ("params.yaml", "dvc.lock", "results/mlp/h10.json", "metrics/mlp.json", "src.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    for name in ("dvc.lock", "results/mlp/h10.json", "metrics/mlp.json"):
        (tmp_path / name).write_text("2\n")
    assert git_tags(tmp_path)["git.dirty"] == "false"
    (tmp_path / "params.yaml").write_text("2\n")
    assert git_tags(tmp_path)["git.changed"] == "params.yaml"  # changed by hand: plain `dvc repro`
    monkeypatch.setenv("DVC_EXP_NAME", "exp-1")
    assert git_tags(tmp_path)["git.dirty"] == "false"  # `dvc exp run` composed it
    (tmp_path / "src.py").write_text("2\n")
    tags = git_tags(tmp_path)
    assert tags["git.dirty"] == "true" and tags["git.changed"] == "src.py"


@pytest.mark.parametrize("gpu", [False, True])
def test_preprocess_coco_needs_fixed_threads_for_portable_numerics_only_on_the_cpu(
        gpu: bool, isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    params = write_params(isolated_workdir / "params.yaml", trainer={"numerics": "portable_avx2", "threads": 2},
                          preprocess_coco={"source": "raw", "raw": {"threads": 0, "device": "auto"}})
    if gpu:  # the backbone runs on the GPU: the CPU's pinning does not apply, torch's threads are fine
        assert preprocess_coco.load_settings(params).preprocess_coco.raw.threads == 0
    else:
        with pytest.raises(ConfigError, match=r"preprocess_coco.raw.threads': trainer.numerics 'portable_avx2' needs a fixed thread count on the CPU"):
            preprocess_coco.load_settings(params)
