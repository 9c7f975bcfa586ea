"""`data/manifests/<target>.json`: what the download stage left in `data/raw/<target>/`, each
file's size and sha256, kept in git as the stage's DVC output.

The raw files are no DVC output: not cached (a second copy of COCO's 13 GB) and not pushed to
a remote unless a user asks (`dvc add data/raw`, README). The stages that read them depend on
their target's manifest instead, so they rerun when the data changes, and a clone that pulled
the prepared data and models from a remote is up to date without the downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from hw4.data.standins.marker import is_standin
from hw4.io.checksums import file_sha256
from hw4.io.outputs import write_json


def describe(directory: Path) -> dict[str, Any]:
    """Every file under `directory` (relative POSIX path -> bytes and sha256), and whether it is
    a stand-in: the same data gives the same manifest on every machine."""
    files = sorted(p for p in Path(directory).rglob("*") if p.is_file())
    return {
        "standin": is_standin(directory),
        "files": {p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files},
    }


def write_manifests(raw_dir: Path, targets: Iterable[str], manifest_dir: Path) -> list[Path]:
    """One manifest per target directory of `raw_dir`, in `manifest_dir`."""
    return [write_json(Path(manifest_dir) / f"{target}.json", describe(Path(raw_dir) / target)) for target in sorted(set(targets))]
