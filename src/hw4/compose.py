"""`python -m hw4 compose [override ...]`: write params.yaml from conf/ as `dvc exp run` does.

DVC's Hydra integration composes params.yaml before each `dvc exp run`; this is the same
composition (DVC's own function) for `dvc repro` users and for the test that checks the
committed params.yaml is conf/'s default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hw4.paths import repo_root


def compose(output: Path, overrides: list[str]) -> Path:
    from dvc.utils.hydra import compose_and_dump

    root = repo_root()
    compose_and_dump(output, str(root / "conf"), None, "config", str(root / "conf" / "plugins"), overrides)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 compose")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=demo mlp=homework")
    parser.add_argument("--output", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    print(f"wrote {compose(args.output, args.overrides)}")
