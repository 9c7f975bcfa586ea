"""What the side-by-side benchmarks share: another commit's code in a scratch directory, and
running `python -m hw4 ...` with one code or the other as a user's shell would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def extract(commit: str, paths: list[str], dest: Path) -> None:
    """`paths` of `commit` (from `git archive`) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", commit, *paths], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def code_env(root: Path, src: Path | None) -> dict:
    """An environment whose `python -m hw4` is `src`'s (the venv's install when None), with
    `root` as the repository, bytecode on and MLflow's default store, as in a user's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "MLFLOW_TRACKING_URI")}
    env["HW4_ROOT"] = str(root)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def run_timed(cmd: list[str], cwd: Path, env: dict, ok: tuple[int, ...] = (0,)) -> float:
    """Seconds `cmd` took; exits with its stderr if its status is not in `ok`."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr[-3000:]}")
    return seconds


def demo_codes(baseline: str, tmp: Path, seeds: list[int]) -> dict[str, tuple[Path, dict]]:
    """Two scratch repositories under `tmp`, the baseline commit's `src/` and `conf/` and this
    code's, each with the params.yaml its own `compose profile=demo` writes (so each side
    trains with its commit's demo settings) and the same prepared data (the demo's `download`
    and `prepare`, Fashion-MNIST from the Debian package). Label -> (root, environment)."""
    base_root, new_root = tmp / "baseline", tmp / "this_code"
    extract(baseline, ["src", "conf"], base_root)
    shutil.copytree(REPO / "conf", new_root / "conf")
    codes = {baseline: (base_root, code_env(base_root, base_root / "src")), "this code": (new_root, code_env(new_root, None))}
    overrides = ["profile=demo", f"seeds=[{','.join(map(str, seeds))}]", "trainer.progress_bar=false"]
    for root, env in codes.values():
        run_timed([sys.executable, "-m", "hw4", "compose", "--output", "params.yaml", *overrides], root, env)
    for command in ("download", "prepare"):
        run_timed([sys.executable, "-m", "hw4", command], new_root, codes["this code"][1])
    shutil.copytree(new_root / "data/prepared", base_root / "data/prepared")
    return codes
