"""`python -m hw4 <stage> ...`: the command line DVC and MLproject call."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from hw4.config import ConfigError, load_params
from hw4.numerics import MODES, pin_before_torch

# command -> "module:function"; modules are imported only for the stage that runs.
STAGES = {
    "compose": "hw4.compose:main",
    "pipeline": "hw4.pipeline:main",
    "download": "hw4.stages.download:main",
    "prepare": "hw4.stages.prepare:main",
    "gradcheck": "hw4.stages.gradcheck:main",
    "mlp": "hw4.stages.mlp:main",
    "mlp_select": "hw4.stages.mlp_select:main",
    "mlp_final": "hw4.stages.mlp:main_final",
    "cnn": "hw4.stages.cnn:main",
    "preprocess_coco": "hw4.stages.preprocess_coco:main",
    "captioning": "hw4.stages.captioning:main",
    "transfer": "hw4.stages.transfer:main",
    "seeds": "hw4.stages.seeds:main",
    "report": "hw4.stages.report:main",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m hw4 <stage> [options]\nstages: {', '.join(STAGES)}", file=sys.stderr)
        raise SystemExit(2)
    module, func = STAGES[argv[0]].split(":")
    try:
        pin_before_torch(numerics_mode(params_path(argv[1:])))  # before the stage imports torch
        getattr(importlib.import_module(module), func)(argv[1:])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def params_path(args: list[str]) -> Path:
    """The stage's --params file (params.yaml unless given)."""
    for i, arg in enumerate(args):
        if arg.startswith("--params="):
            return Path(arg.split("=", 1)[1])
        if arg == "--params" and i + 1 < len(args):
            return Path(args[i + 1])
    return Path("params.yaml")


def numerics_mode(path: Path) -> str:
    """params `trainer.numerics`. Without a params file or the key nothing is pinned ("fast"):
    the stage's own settings check then reports what is missing."""
    if not path.is_file():
        return "fast"
    trainer = load_params(path).get("trainer")
    mode = trainer.get("numerics", "fast") if isinstance(trainer, dict) else "fast"
    if mode not in MODES:
        raise ConfigError(f"params 'trainer.numerics': {mode!r} is not one of {list(MODES)}")
    return mode
