"""A process killed in the middle of writing a file a later step reads leaves nothing corrupt.

Each writer runs in a child process that dies abruptly partway through the data: when it
opens the file for writing (or its temporary file, which carries the name), a file-size
limit is set and SIGXFSZ restored to its default action, so the kernel kills the process at
that byte count, as SIGKILL would (no `finally`, no cleanup; Python ignores SIGXFSZ unless
told otherwise). Then the reader must see the previous complete file or none, and a rerun
must recover.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hw4.data.sources.archives import Limits, extract
from hw4.io import paths
from hw4.io.outputs import read_json, write_csv, write_results
from hw4.report.inputs import read_csv

CHILD = """
import os, resource, signal, sys

target, limit = sys.argv[1], int(sys.argv[2])

def die_past_the_limit(event, args):
    if event != "open" or not isinstance(args[0], (str, os.PathLike)) or target not in os.fspath(args[0]):
        return
    mode, flags = args[1], args[2]
    if (mode and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

sys.addaudithook(die_past_the_limit)
exec(sys.argv[3])
"""


def killed_mid_write(code: str, target: str, limit: int) -> None:
    """Run `code` in a child that dies once it has written `limit` bytes to a file named like `target`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, target, str(limit), code], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == -signal.SIGXFSZ, f"not killed mid-write (rc {done.returncode}): {done.stderr}"


BIG = {"val/acc": 0.75, "notes": "x" * 50_000, "headline": ["val/acc"]}  # big enough to be cut in the middle
SMALL = {"val/acc": 0.5, "headline": ["val/acc"]}


def test_results_and_metrics_json(isolated_workdir: Path):
    write_results(Path("metrics/m.json"), SMALL)
    code = f"from pathlib import Path; from hw4.io.outputs import write_results; write_results(Path('metrics/m.json'), {BIG!r})"
    killed_mid_write(code, "m.json", 4096)
    assert read_json(Path("results/m.json"), "test") == SMALL  # the old record, whole
    assert read_json(Path("metrics/m.json"), "test") == {"m": {"val/acc": 0.5}}

    write_results(Path("metrics/m.json"), BIG)
    assert read_json(Path("results/m.json"), "test") == BIG


def test_plot_data_csv(isolated_workdir: Path):
    make_rows = '[{"epoch": e, "val/acc": e / 1000} for e in range(5000)]'
    code = f"from pathlib import Path; from hw4.io.outputs import write_csv; write_csv(Path('plots/curve.csv'), {make_rows})"
    killed_mid_write(code, "curve.csv", 4096)
    assert not Path("plots/curve.csv").exists()  # never a shorter curve that reads as a whole one

    write_csv(Path("plots/curve.csv"), eval(make_rows))
    assert len(read_csv(Path("plots/curve.csv"))) == 5000


def _zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("top/big.bin", b"\1" * 200_000)
        zf.writestr("top/small.txt", b"s")
    return path


@pytest.mark.parametrize("target", ["big.bin", ".extracted-"], ids=["entry", "marker"])
def test_extracted_files(isolated_workdir: Path, target: str):
    archive, out, sha = _zip(Path("a.zip")), Path("raw"), "ab" * 32
    limits = "Limits(max_bytes=10**9, max_entries=1000)"
    killed_mid_write(f"from hw4.data.sources.archives import Limits, extract; extract('a.zip', 'raw', {sha!r}, {limits})", target, 16)

    assert extract(archive, out, sha, Limits(max_bytes=10**9, max_entries=1000)) == ["top"]  # the rerun unpacks again, from scratch
    assert (out / "top" / "big.bin").read_bytes() == b"\1" * 200_000
    assert sorted(p.name for p in out.iterdir()) == [f".extracted-{sha}", "top"]  # nothing half-written left
    assert json.loads((out / f".extracted-{sha}").read_text())["entries"] == ["top"]


@pytest.mark.slow  # the child imports Lightning and MLflow (about 5 s)
def test_run_json_beside_checkpoints(isolated_workdir: Path):
    from hw4.tracking.runs import ResumeState

    state = ResumeState(Path("ckpt"))
    state.record("a" * 32, "hash", finished=False)
    state.checkpoint.write_bytes(b"weights")
    code = "from pathlib import Path; from hw4.tracking.runs import ResumeState; ResumeState(Path('ckpt')).record('b' * 32, 'hash', False)"
    killed_mid_write(code, "run.json", 8)
    assert state.resumable_run("hash") == "a" * 32  # the run id is not lost

    state.record("b" * 32, "hash", finished=False)
    assert state.resumable_run("hash") == "b" * 32


@pytest.mark.slow  # the child imports the report stage (matplotlib, MLflow)
def test_report(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.stages.test_report import _settings, write_fixture_outputs

    monkeypatch.setenv("HW4_TRACKING", "off")
    write_fixture_outputs()
    _settings(isolated_workdir)  # writes params.yaml
    code = "from pathlib import Path; from hw4.stages import report; report.run(report.load_settings(Path('params.yaml')))"
    killed_mid_write(code, "report.html", 4096)
    assert not Path("reports/report.html").exists()  # no cut-short page that still opens

    from hw4.stages import report

    report.run(report.load_settings(Path("params.yaml")))
    assert paths.REPORT_HTML.read_text().rstrip().endswith("</html>")
