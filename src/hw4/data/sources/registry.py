"""The data-source registry (`registry.yaml`) as validated dataclasses.

The registry is data: adding a dataset or a mirror means editing the YAML only. It is
checked when loaded, so a typo in a checksum or a key fails at once, not after a download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hw4.data.sources.archives import TAR_SUFFIXES
from hw4.data.standins.marker import STANDIN_MARKER

DEFAULT_PATH = Path(__file__).with_name("registry.yaml")

_HEX = {"md5": 32, "sha256": 64, "content_sha256": 64}
_FILE_KEYS = {"name", "path", "md5", "sha256", "content_sha256", "content_size", "sha256_prefix", "pin", "extract",
              "unpacks_to"}
_DATASET_KEYS = {"target", "mirrors", "local_dirs", "classes", "files"}


class RegistryError(ValueError):
    """The registry file itself is wrong (a bug in the project, not in the user's setup)."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset and everything that tells a good copy from a bad one."""

    name: str
    path: str
    md5: str | None = None
    sha256: str | None = None
    content_sha256: str | None = None
    content_size: int | None = None  # bytes of a .gz's decompressed content: no reader goes past it
    sha256_prefix: str | None = None
    pin: bool = False
    extract: bool = False
    unpacks_to: tuple[str, ...] = ()  # an archive's top-level names: no neighbour may write them


@dataclass(frozen=True)
class Dataset:
    key: str
    target: str  # directory under data/raw/
    mirrors: tuple[str, ...]
    local_dirs: tuple[Path, ...]
    files: tuple[FileSpec, ...]
    classes: tuple[str, ...] = ()

    def urls(self, spec: FileSpec) -> list[str]:
        return [mirror + spec.path for mirror in self.mirrors]


Registry = dict[str, Dataset]


def load_registry(path: Path = DEFAULT_PATH) -> Registry:
    with Path(path).open() as f:
        raw = yaml.safe_load(f) or {}
    _require(isinstance(raw, dict), f"{path}: expected a mapping of dataset keys")
    return {key: _dataset(key, entry, f"{path}: {key}") for key, entry in raw.items()}


def _dataset(key: str, entry: Any, where: str) -> Dataset:
    _require(isinstance(entry, dict), f"{where}: expected a mapping")
    _check_keys(entry, _DATASET_KEYS, {"mirrors", "files"}, where)
    mirrors = _strings(entry["mirrors"], f"{where}.mirrors")
    for url in mirrors:
        # A missing slash would silently glue the base and the file name together.
        ok = re.match(r"https?://", url) and url.endswith("/")
        _require(ok, f"{where}: mirror {url!r} must be http(s) and end with '/'")
    files = entry["files"]
    _require(isinstance(files, list) and files, f"{where}.files: expected a non-empty list")
    specs = tuple(_file(f, f"{where}.files[{i}]") for i, f in enumerate(files))
    names = [s.name for s in specs]
    _require(len(set(names)) == len(names), f"{where}: duplicate file names {names}")
    return Dataset(
        key=key,
        target=entry.get("target", key),
        mirrors=tuple(mirrors),
        local_dirs=tuple(Path(d).expanduser() for d in _strings(entry.get("local_dirs", []), f"{where}.local_dirs")),
        files=specs,
        classes=tuple(_strings(entry.get("classes", []), f"{where}.classes")),
    )


def _file(entry: Any, where: str) -> FileSpec:
    _require(isinstance(entry, dict), f"{where}: expected a mapping")
    _check_keys(entry, _FILE_KEYS, {"name"}, where)
    name = entry["name"]
    _require(isinstance(name, str) and name and "/" not in name, f"{where}: bad file name {name!r}")
    for key, length in _HEX.items():
        value = entry.get(key)
        _require(value is None or _is_hex(value, length), f"{where}: {key} must be {length} hex digits, got {value!r}")
    prefix = entry.get("sha256_prefix")
    _require(prefix is None or _is_hex(prefix, None), f"{where}: sha256_prefix must be hex digits, got {prefix!r}")
    size = entry.get("content_size")
    _require(size is None or (type(size) is int and size > 0), f"{where}: content_size must be a positive integer, got {size!r}")
    unpacks_to = _strings(entry.get("unpacks_to", []), f"{where}.unpacks_to")
    _require(all(n and "/" not in n for n in unpacks_to), f"{where}: unpacks_to lists top-level names, got {unpacks_to}")
    spec = FileSpec(
        name=name,
        path=entry.get("path", name),
        md5=entry.get("md5"),
        sha256=entry.get("sha256"),
        content_sha256=entry.get("content_sha256"),
        content_size=size,
        sha256_prefix=prefix,
        pin=entry.get("pin", False) is True,
        extract=entry.get("extract", False) is True,
        unpacks_to=tuple(unpacks_to),
    )
    checked = spec.md5 or spec.sha256 or spec.content_sha256 or spec.sha256_prefix
    _require(bool(checked) != spec.pin, f"{where}: give a checksum or `pin: true` (exactly one of the two)")
    _require(not spec.content_sha256 or name.endswith(".gz"), f"{where}: content_sha256 applies to .gz files only")
    _require(not spec.content_size or name.endswith(".gz"), f"{where}: content_size applies to .gz files only")
    _require(not spec.unpacks_to or spec.extract, f"{where}: unpacks_to applies to archives (`extract: true`) only")
    _require(
        not spec.extract or name.endswith((".zip", *TAR_SUFFIXES)),
        f"{where}: only zip and tar archives ({', '.join(('.zip', *TAR_SUFFIXES))}) can be extracted",
    )
    return spec


def _check_keys(entry: dict, allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    _require(not unknown, f"{where}: unknown key(s) {unknown}; known keys are {sorted(allowed)}")
    missing = sorted(required - set(entry))
    _require(not missing, f"{where}: missing key(s) {missing}")


def _strings(value: Any, where: str) -> list[str]:
    _require(isinstance(value, list) and all(isinstance(v, str) for v in value), f"{where}: expected a list of strings")
    return value


def _is_hex(value: Any, length: int | None) -> bool:
    return isinstance(value, str) and bool(re.fullmatch(r"[0-9a-f]+", value)) and length in (None, len(value))


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise RegistryError(message)


def registry_names(registry: Registry, target: str) -> set[str]:
    """The names of every registry file that lands in data/raw/<target>."""
    return {spec.name for d in registry.values() if d.target == target for spec in d.files}


def owned_names(registry: Registry, dataset: Dataset, spec: FileSpec) -> dict[str, str]:
    """Top-level names in the target that `spec`'s archive may not write: every registry file
    of that target (itself included), what the target's other archives unpack to, the marker."""
    owned = {STANDIN_MARKER: "the stand-in marker"}
    for other in registry.values():
        if other.target != dataset.target:
            continue
        for f in other.files:
            owned[f.name] = f"{other.key} (its file {f.name})"
            if f is not spec:
                owned.update({name: f"{other.key} ({f.name} unpacks to it)" for name in f.unpacks_to})
    return owned
