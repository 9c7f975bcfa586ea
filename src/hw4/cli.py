"""`python -m hw4 <command> ...`: the command line DVC and MLproject call."""

from __future__ import annotations

import atexit
import importlib
import os
import pkgutil
import sys
import threading
from pathlib import Path
from typing import NoReturn

from hw4.config.allocator import keep_freed_memory
from hw4.config.numerics import MODES, pin_before_torch
from hw4.config.settings import ConfigError, load_params
from hw4.io import paths

# Commands that are not `main` of the stage module of their name (hw4.stages.<command>):
# the final run, and using what was trained (hw4.serving).
OTHER_COMMANDS = {
    "compose": "hw4.config.compose:main",
    "mlp_final": "hw4.stages.mlp:main_final",
    "predict": "hw4.serving.predict:main",
    "caption": "hw4.serving.predict:main_caption",
}

# Commands that run the stages as processes of their own, each pinning its own numerics: pinned
# here, the variables would reach every stage, whatever profile it runs.
LAUNCHERS = {"pipeline"}


def commands() -> dict[str, str]:
    """command -> "module:function": every stage module by its name, and the others.
    Modules are imported only for the command that runs."""
    from hw4 import stages

    found = {m.name: f"hw4.stages.{m.name}:main" for m in pkgutil.iter_modules(stages.__path__)}
    return dict(sorted((found | OTHER_COMMANDS).items()))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    known = commands()
    if not argv or argv[0] not in known:
        print(f"usage: python -m hw4 <command> [options]\ncommands: {', '.join(known)}", file=sys.stderr)
        raise SystemExit(2)
    module, func = known[argv[0]].split(":")
    keep_freed_memory()  # training steps reuse their freed tensors' pages (hw4.config.allocator)
    try:
        if argv[0] not in LAUNCHERS:
            pin_before_torch(numerics_mode(params_path(argv[1:])))  # before the stage imports torch
        getattr(importlib.import_module(module), func)(argv[1:])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_now(code: object = 0) -> NoReturn:
    """End the process as `sys.exit(code)` does, less the interpreter's teardown.

    After a command, Python would free every module and object one by one: with torch,
    Lightning and MLflow loaded, 1.7 s of a 2-core machine per stage process (0.35 s for torch
    alone), for memory the kernel takes back at once. What an exit does first is kept, in the
    same order: wait for the threads that are not daemons, run the atexit handlers (logging's
    flush, multiprocessing's children, weakref finalizers, temporary directories), flush
    stdout and stderr."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): printed, status 1
        print(code, file=sys.stderr)
        status = 1
    threading._shutdown()  # type: ignore[attr-defined]  # what Python's exit calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to deliver
            pass
    os._exit(status)


def params_path(args: list[str]) -> Path:
    """The stage's --params file (params.yaml unless given)."""
    for i, arg in enumerate(args):
        if arg.startswith("--params="):
            return Path(arg.split("=", 1)[1])
        if arg == "--params" and i + 1 < len(args):
            return Path(args[i + 1])
    return paths.PARAMS


def numerics_mode(path: Path) -> str:
    """The CPU code paths to pin: params `trainer.numerics` unless `trainer.accelerator` names a
    GPU (then "fast"); "fast" too without a params file or the key (the stage's own settings
    check then reports what is missing). `auto` is pinned without asking for a GPU, which would
    cost every command torch's import: where `auto` finds one, the variables only steer the
    host's few CPU kernels, and the trainer computes as on a GPU (`TrainerSettings.for_device`)."""
    if not path.is_file():
        return "fast"
    trainer = load_params(path).get("trainer")
    if not isinstance(trainer, dict):
        return "fast"
    mode = trainer.get("numerics", "fast")
    if mode not in MODES:
        raise ConfigError(f"params 'trainer.numerics': {mode!r} is not one of {list(MODES)}")
    return mode if trainer.get("accelerator", "auto") in ("cpu", "auto") else "fast"
