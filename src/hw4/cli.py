"""`python -m hw4 <stage> ...`: the command line DVC and MLproject call."""

from __future__ import annotations

import importlib
import sys

from hw4.config import ConfigError

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
    "report": "hw4.stages.report:main",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m hw4 <stage> [options]\nstages: {', '.join(STAGES)}", file=sys.stderr)
        raise SystemExit(2)
    module, func = STAGES[argv[0]].split(":")
    try:
        getattr(importlib.import_module(module), func)(argv[1:])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
