"""Where things live. Every path a stage writes is relative to the repository root."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The project root: $HW4_ROOT, else the nearest parent of the cwd holding dvc.yaml."""
    if env := os.environ.get("HW4_ROOT"):
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return cwd
