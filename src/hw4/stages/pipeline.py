"""`python -m hw4 pipeline [--profile demo|real] [dvc exp run options]`: the whole DVC pipeline.

The one entry for the whole pipeline: `bash scripts/pipeline.sh` runs it after its set-up, and
the MLproject's main entry is it. Each runs the offline demo unless told `real` (the committed
params.yaml is the real profile's: a bare `dvc repro` runs that). Options it does not know go to
`dvc exp run`, e.g. `-S 'seeds=[0,1,2]'`.

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
    parser = argparse.ArgumentParser(prog="python -m hw4 pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=["demo", "real"], help="conf/profile/<name>.yaml (default: demo)")
    args, dvc_options = parser.parse_known_args(argv)
    env = dict(os.environ)
    outer = env.pop("MLFLOW_RUN_ID", None)
    if outer:
        env[PIPELINE_ENV] = outer
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "exp", "run", "--set-param", f"profile={args.profile}", *dvc_options], env=env, check=True)
    if outer:
        log_files(outer, [paths.DVC_LOCK, paths.PARAMS])
