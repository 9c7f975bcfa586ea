"""`python -m hw4 pipeline [--profile demo]`: the whole DVC pipeline, as the MLproject's main entry.

`mlflow run` opens a run and exports MLFLOW_RUN_ID. Passed on, every stage would log into
that one run; instead each stage opens its own run, tagged `pipeline.run_id`, and the
outer run receives dvc.lock (what ran, with which params and data) once DVC is done.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from hw4.io import paths
from hw4.tracking.provenance import PIPELINE_ENV
from hw4.tracking.runs import log_files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 pipeline")
    parser.add_argument("--profile", default="", help="conf/profile/<name>.yaml: demo or real (default: conf/config.yaml's)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    outer = env.pop("MLFLOW_RUN_ID", None)
    if outer:
        env[PIPELINE_ENV] = outer
    dvc = Path(sys.executable).with_name("dvc")
    profile = ["--set-param", f"profile={args.profile}"] if args.profile else []
    subprocess.run([str(dvc), "exp", "run", *profile], env=env, check=True)
    if outer:
        log_files(outer, [paths.DVC_LOCK, paths.PARAMS])
