"""`dvc repro` of the real dvc.yaml: download, prepare and the MLP sweep, in a temporary repo."""

from __future__ import annotations

import json

import pytest

from hw4.stages.mlp import HEADLINE
from tests.conftest import REPO
from tests.pipeline.conftest import BIN, DvcRepo, sh, tiny_mlp_pipeline

pytestmark = pytest.mark.slow


def test_download_prepare_and_the_sweep_rerun_exactly_what_changed(dvc_repo: DvcRepo):
    dvc_repo.write_params(tiny_mlp_pipeline([4, 8], [0]))
    first = DvcRepo.ran(dvc_repo.repro("mlp_final_seeds"))
    assert first == {"download", "prepare", "mlp@4-0", "mlp@8-0", "mlp_select", "mlp_final@0", "mlp_final_seeds"}
    _each_training_process_accounted_for(dvc_repo)
    assert DvcRepo.ran(dvc_repo.repro("mlp_final_seeds")) == set()  # nothing changed, nothing runs
    _python_caches_everything(dvc_repo)
    assert json.loads(dvc_repo.dvc("status", "--json", "--with-deps", "mlp_final_seeds")) == {}  # bytecode is no change

    dvc_repo.write_params(tiny_mlp_pipeline([4, 12], [0]))  # one size changed
    assert DvcRepo.ran(dvc_repo.repro("mlp_final_seeds")) == {"mlp@12-0", "mlp_select", "mlp_final@0", "mlp_final_seeds"}
    # A seed added: each size trains once more, and the selection, which changes, retrains the final run.
    dvc_repo.write_params(tiny_mlp_pipeline([4, 12], [0, 1]))
    assert DvcRepo.ran(dvc_repo.repro("mlp_final_seeds")) == {
        "mlp@4-1", "mlp@12-1", "mlp_select", "mlp_final@0", "mlp_final@1", "mlp_final_seeds"}

    # An edit to a module: exactly the stages whose command imports it are out of date.
    seeded = {"mlp@4-0", "mlp@12-0", "mlp@4-1", "mlp@12-1", "mlp_final@0", "mlp_final@1"}
    assert _edited("src/hw4/data/loaders/mnist_batches.py", dvc_repo) == seeded  # not the selection: it trains nothing
    # The shared core is a folder dep of every stage: an edit there reruns them all.
    assert _edited("src/hw4/config/seeds.py", dvc_repo) == seeded | {"download", "prepare", "mlp_select", "mlp_final_seeds"}
    assert _edited("src/hw4/data/formats/idx.py", dvc_repo) == {"prepare"}
    # imported by name (importlib), only when download.generate lists it
    assert _edited("src/hw4/data/standins/coco.py", dvc_repo) == {"download"}

    # DVC's metrics are the summaries (a seed's or a point's file is a plain output), each number
    # under its evaluation's name: `dvc exp show` heads them `final.test/acc`, not with file paths.
    metrics = json.loads(dvc_repo.dvc("metrics", "show", "--json"))
    files = {path: f["data"] for path, f in next(iter(metrics.values()))["data"].items() if "data" in f}  # stages run
    assert set(files) == {"metrics/mlp/select.json", "metrics/mlp/final.json"}
    columns = {f"{name}.{k}" for f in files.values() for name, numbers in f.items() for k in numbers}
    assert columns == {"select.hidden", "select.val/acc", "select.val/acc_std", "final.test/acc", "final.test/acc_std"}
    assert set(json.loads((dvc_repo.root / "metrics/mlp/final/seed1.json").read_text())["final"]) == {"test/acc"}
    assert "test/acc" in HEADLINE
    dvc_repo.dvc("plots", "show", "-o", "dvc_plots")
    assert (dvc_repo.root / "dvc_plots/index.html").is_file()
    final = json.loads((dvc_repo.root / "results/mlp/final.json").read_text())
    assert final["dataset"] == "fashion_mnist" and final["standin"] is False and final["test/acc"] > 0.5
    assert final["seeds"] == [0, 1] and final["test/acc_std"] is not None
    selection = json.loads((dvc_repo.root / "results/mlp/select.json").read_text())
    assert selection["seeds"] == [0, 1] and selection["spread"] is not None and "seeds' spread" in selection["verdict"]


def _each_training_process_accounted_for(dvc_repo: DvcRepo) -> None:
    """scripts/time_breakdown.py: a row per stage process that trained, in the order DVC ran
    them, with its start-up, its training and the rest of its run."""
    out = sh(str(BIN / "python"), str(REPO / "scripts/time_breakdown.py"), cwd=dvc_repo.root, stderr=False)
    rows = {cells[0]: [float(c) for c in cells[1:]] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith(("| stage", "| **")) for cells in [line.strip("| ").split(" | ")]}
    trained = ["mlp@4-0", "mlp@8-0", "mlp_final@0"]
    assert set(trained) <= set(rows), out
    for stage in trained:
        startup, training, rest, gap = rows[stage]
        assert startup > 0 and training > 0 and rest > 0 and gap >= 0, out
    assert list(rows).index("mlp_final@0") > max(list(rows).index("mlp@4-0"), list(rows).index("mlp@8-0"))
    assert rows["mlp_final_seeds"][1] == 0  # the summary's train_time_s is its seeds', not its own


def _python_caches_everything(dvc_repo: DvcRepo) -> None:
    """What a user's Pythons leave in the copy's src/: a stage's imports with bytecode on (the
    stages themselves import the installed hw4), every module compiled, optimised bytecode, and
    another version's cache file."""
    sh("env", "PYTHONPATH=src", str(BIN / "python"), "-c", "import hw4.stages.mlp", cwd=dvc_repo.root)
    assert list((dvc_repo.root / "src").rglob("*.pyc")), "no bytecode written: PYTHONDONTWRITEBYTECODE is still set"
    sh(str(BIN / "python"), "-m", "compileall", "-q", "src", cwd=dvc_repo.root)
    sh(str(BIN / "python"), "-O", "-m", "compileall", "-q", "src", cwd=dvc_repo.root)
    for cache in (dvc_repo.root / "src").rglob("__pycache__"):
        (cache / "elsewhere.cpython-399.pyc").write_bytes(b"another Python's bytecode")


def _edited(module: str, dvc_repo: DvcRepo) -> set[str]:
    """The stages upstream of mlp_final_seeds that `dvc status` finds changed after a comment
    is appended to `module` (then taken out again)."""
    path = dvc_repo.root / module
    original = path.read_text()
    path.write_text(original + "# edited\n")
    try:
        return set(json.loads(dvc_repo.dvc("status", "--json", "--with-deps", "mlp_final_seeds")))
    finally:
        path.write_text(original)
