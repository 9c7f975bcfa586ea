"""Stand-ins put in place in data/raw/<target>/, and taken out again.

A stand-in is generated data in place of a dataset that cannot be downloaded here. Its
generator writes what the real archive(s) would unpack to, into a fresh directory that is
then moved into place, marked by a `STANDIN` file, with the names it wrote listed beside the
marker, so that replacing a stand-in (by another, or by the real data) removes what it
wrote and nothing else: never a file a user put there, nor a file the registry names.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

from hw4.data.sources.registry import Registry, load_registry, registry_names
from hw4.data.standins.marker import STANDIN_MARKER, mark
from hw4.io import atomic

STANDIN_MANIFEST = ".standin-entries.json"  # beside STANDIN: the top-level names the generator wrote

# name in `generate` -> (module, directory under data/raw). Each module has
# `generate(target_dir: Path, seed: int)`, which writes what the real archive(s) would unpack
# to inside target_dir (a fresh empty directory, moved into place afterwards, so it must not
# record its own path). Imported only when listed: the stage runs without the others.
GENERATORS = {
    "hymenoptera": ("hw4.data.standins.hymenoptera", "hymenoptera"),
    "coco2014_raw": ("hw4.data.standins.coco", "coco2014"),
}


class StandinError(RuntimeError):
    """A stand-in that cannot be generated where it should go."""


def clear_standin(target_dir: Path, keep: set[str]) -> None:
    """Remove what a stand-in generator wrote into `target_dir`, never the names in `keep`
    (files of the registry a user may have put there by hand) nor anything else not generated."""
    generated = _standin_entries(target_dir)
    for name in [*generated, STANDIN_MANIFEST, STANDIN_MARKER]:
        path = target_dir / name
        if name in keep or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if not any(target_dir.iterdir()):
        target_dir.rmdir()


def _standin_entries(target_dir: Path) -> list[str]:
    """The names the manifest lists; every name there if it is missing (a stand-in made before
    manifests: all of it was generated, but for what `clear_standin` keeps)."""
    try:
        entries = json.loads((target_dir / STANDIN_MANIFEST).read_text())["entries"]
        if isinstance(entries, list) and all(isinstance(e, str) and "/" not in e for e in entries):
            return entries
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return sorted(p.name for p in target_dir.iterdir())


def generate_standin(name: str, raw_dir: Path, seed: int, registry: Registry | None = None) -> Path:
    """Run the stand-in generator `name` into a fresh directory, then move it into place
    (replacing an older stand-in, keeping any file a user put there and every file the
    registry, by default the project's, names)."""
    module_name, target = GENERATORS[name]
    target_dir = raw_dir / target
    if _holds_real_data(target_dir):
        raise StandinError(
            f"{target_dir} holds downloaded data; a stand-in will not overwrite it. "
            f"Remove that directory yourself, or take '{name}' out of download.generate"
        )
    try:
        generator = importlib.import_module(module_name)
    except ImportError as e:
        raise StandinError(f"download.generate lists '{name}', but {module_name} cannot be imported: {e}") from e
    tmp = raw_dir / f".{target}.standin-{os.getpid()}"  # mkdir, not mkdtemp: the usual permissions
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        generator.generate(tmp, seed)
        if not (tmp / STANDIN_MARKER).exists():
            mark(tmp, module_name, seed)
        entries = sorted(p.name for p in tmp.iterdir() if p.name != STANDIN_MARKER)
        atomic.write_text(tmp / STANDIN_MANIFEST, json.dumps({"generator": module_name, "entries": entries}) + "\n")
        if target_dir.exists():
            clear_standin(target_dir, registry_names(registry or load_registry(), target))
        _move_in(tmp, target_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target_dir


def _move_in(tmp: Path, target_dir: Path) -> None:
    """The whole directory in one rename where nothing is left; else entry by entry, beside
    the files a user keeps there (the marker last: until it is in, nothing says stand-in)."""
    if not target_dir.exists():
        os.replace(tmp, target_dir)
        return
    names = sorted(p.name for p in tmp.iterdir())
    in_the_way = [n for n in names if (target_dir / n).exists()]
    if in_the_way:
        raise StandinError(f"{target_dir}: {in_the_way} are in the way of the stand-in; move them elsewhere")
    for name in sorted(names, key=lambda n: n == STANDIN_MARKER):
        os.replace(tmp / name, target_dir / name)


def _holds_real_data(target_dir: Path) -> bool:
    return target_dir.is_dir() and not (target_dir / STANDIN_MARKER).exists() and any(target_dir.iterdir())
