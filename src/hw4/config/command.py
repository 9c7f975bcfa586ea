"""What every `python -m hw4 <command>` shares: its `--params` file and its one-line errors."""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hw4.io import paths


def parser(command: str, doc: str | None = None) -> argparse.ArgumentParser:
    """`python -m hw4 <command>`'s parser with `--params` (params.yaml unless given), described
    by the first line of `doc` (the stage module's docstring)."""
    described = argparse.ArgumentParser(prog=f"python -m hw4 {command}", description=doc.splitlines()[0] if doc else None)
    described.add_argument("--params", type=Path, default=paths.PARAMS, help="the settings (default: params.yaml)")
    return described


@contextmanager
def one_line_errors(command: str, *errors: type[Exception]) -> Iterator[None]:
    """Errors of these kinds end the command with their message alone, which says what was
    wrong and what to do: no traceback."""
    try:
        yield
    except errors as e:
        raise SystemExit(f"{command}: {e}") from None
