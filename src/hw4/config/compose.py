"""`python -m hw4 compose [override ...]`: write params.yaml from conf/ as `dvc exp run` does.

conf/ is the one source of every setting's default; the settings dataclasses hold types and
checks only. DVC's Hydra integration composes params.yaml before each `dvc exp run`; this is
the same composition for `dvc repro` users, for the test that checks the committed
params.yaml is conf/'s default, and for tests and benchmarks that need a stage's defaults.
DVC composes with Hydra's public API (compose, resolve, to_yaml), and so does this module;
tests/unit/test_config.py checks that the two write the same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from hw4.io import paths
from hw4.io.paths import repo_root

# conf/ of the source tree this package is installed from (an editable install: src/hw4/..).
SOURCE_CONF = Path(__file__).resolve().parents[3] / "conf"


def composed_yaml(overrides: Sequence[str] = (), conf: Path | None = None) -> str:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    conf = conf or repo_root() / "conf"
    with initialize_config_dir(str(conf.resolve()), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def compose(output: Path, overrides: Sequence[str]) -> Path:
    Path(output).write_text(composed_yaml(overrides), encoding="utf-8")
    return output


def default_params(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The params conf/ composes (the real profile unless an override says otherwise)."""
    import yaml

    return yaml.safe_load(composed_yaml(overrides, SOURCE_CONF))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 compose")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=demo mlp=homework")
    parser.add_argument("--output", type=Path, default=paths.PARAMS)
    args = parser.parse_args(argv)
    print(f"wrote {compose(args.output, args.overrides)}")
