"""The numerics setting: how it is read, what it pins, and what it refuses."""

import subprocess
from pathlib import Path

import pytest
import torch

from hw4 import cli
from hw4.tracking.provenance import git_tags
from hw4.training import numerics


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


def test_portable_mode_refuses_a_process_that_chose_its_code_paths_already():
    """This test process ran torch ops unpinned: a portable stage here must not pretend."""
    torch.ones(2) + 1
    if numerics.in_force() == {"aten_capability": "DEFAULT", "mkl_branch": "COMPATIBLE"}:
        pytest.skip("this process runs the portable code paths already")
    with pytest.raises(numerics.NumericsError, match="python -m hw4"):
        numerics.configure("portable", 2)
    numerics.configure("fast", 0)
    assert torch.backends.mkldnn.enabled


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
