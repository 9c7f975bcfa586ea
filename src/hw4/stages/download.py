"""The `download` stage: the registry's datasets into data/raw/, verified, or stand-ins.

    python -m hw4 download [--params params.yaml]

Each listed dataset lands in `data/raw/<target>/` (archives unpacked there). Datasets in
`generate` are written by their stand-in generators instead, at the place the real archive
would unpack to, and marked with a `STANDIN` file in that directory (what the generator
wrote is listed beside it, so that replacing a stand-in removes that and nothing else).
In a queued DVC experiment's copy, the repository's data/raw is searched first, so files
already verified there are copied, not downloaded again. Every file is tried, and one error
lists every failure. SIGTERM stops the stage cleanly:
no temporary file is left behind.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hw4.config.seeds import data_seed
from hw4.config.settings import ConfigError, load_params, section
from hw4.data.sources.archives import Limits, extract
from hw4.data.sources.download import DownloadError, Fetched, HttpOptions, PinLock, fetch
from hw4.data.sources.registry import Dataset, FileSpec, Registry, load_registry
from hw4.data.standins.marker import STANDIN_MARKER, mark
from hw4.io import atomic, paths

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


@dataclass
class DownloadSettings:
    """params.yaml `download`."""

    datasets: list[str]
    generate: list[str]  # stand-ins to generate instead
    mirror_dirs: list[str]  # searched before the network
    retries: int  # extra attempts per HTTP mirror, for transient failures
    timeout_s: float  # per socket read, and the window min_bytes_per_s is measured over
    attempt_deadline_s: float  # one attempt at one file (COCO's 13 GB at 1 MB/s: 3.6 h)
    min_bytes_per_s: float  # slower than this over timeout_s: the mirror has stalled
    max_extract_bytes: int  # an archive unpacking to more is refused (a zip bomb)
    max_extract_entries: int

    def validate(self, where: str) -> None:
        check_settings(self, load_registry(), where)

    def http(self) -> HttpOptions:
        return HttpOptions(retries=self.retries, timeout_s=self.timeout_s,
                           attempt_deadline_s=self.attempt_deadline_s, min_bytes_per_s=self.min_bytes_per_s)

    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_extract_bytes, max_entries=self.max_extract_entries)


def check_settings(settings: DownloadSettings, registry: Registry, where: str) -> None:
    unknown = [d for d in settings.datasets if d not in registry]
    if unknown:
        raise ConfigError(f"params '{where}.datasets': unknown dataset(s) {unknown}; known: {sorted(registry)}")
    unknown = [g for g in settings.generate if g not in GENERATORS]
    if unknown:
        raise ConfigError(
            f"params '{where}.generate': no stand-in generator for {unknown}; known: {sorted(GENERATORS)}"
        )
    downloaded = {registry[d].target for d in settings.datasets}
    clash = sorted(g for g in settings.generate if GENERATORS[g][1] in downloaded)
    if clash:
        raise ConfigError(
            f"params '{where}': {clash} would be both downloaded and generated into the same "
            f"data/raw directory; list each under `datasets` or under `generate`, not both"
        )
    if settings.retries < 0 or settings.timeout_s <= 0:
        raise ConfigError(f"params '{where}': retries must be >= 0 and timeout_s > 0")
    if settings.attempt_deadline_s <= 0 or settings.min_bytes_per_s < 0:
        raise ConfigError(f"params '{where}': attempt_deadline_s must be > 0 and min_bytes_per_s >= 0")
    if settings.max_extract_bytes <= 0 or settings.max_extract_entries <= 0:
        raise ConfigError(f"params '{where}': max_extract_bytes and max_extract_entries must be > 0")


def run(
    settings: DownloadSettings,
    seed: int = 0,
    raw_dir: Path = paths.RAW,
    lock_path: Path = paths.PINNED_CHECKSUMS,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Fetch every listed dataset, then generate every listed stand-in; say where each came from.

    Every file is tried; when any fails, one DownloadError lists each failure."""
    registry = registry if registry is not None else load_registry()
    check_settings(settings, registry, "download")
    lock = PinLock(lock_path)
    lock.ensure_exists()
    mirror_dirs = [Path(d).expanduser() for d in settings.mirror_dirs]
    workspace_raw = _workspace_raw(Path(raw_dir))
    summary: dict[str, Any] = {"downloaded": {}, "generated": {}}
    failures: list[str] = []
    for key in settings.datasets:
        reuse = [workspace_raw / registry[key].target] if workspace_raw else []
        sources, failed = fetch_dataset(registry, key, Path(raw_dir), lock, [*reuse, *mirror_dirs], settings)
        summary["downloaded"][key] = sources
        failures += failed
    for name in settings.generate:
        summary["generated"][name] = str(generate_standin(name, Path(raw_dir), seed, registry))
    if failures:
        raise DownloadError(_failures_message(failures, summary))
    return summary


def _workspace_raw(raw_dir: Path) -> Path | None:
    """The repository's own `raw_dir` when this run is a queued DVC experiment's copy (which
    starts without the uncached data/raw): its verified files are copied, not downloaded again."""
    workspace = paths.home_root() / raw_dir
    return workspace if workspace.resolve() != raw_dir.resolve() and workspace.is_dir() else None


def _failures_message(failures: list[str], summary: dict[str, Any]) -> str:
    done = sum(len(files) for files in summary["downloaded"].values())
    head = f"{len(failures)} file(s) failed; {done} other file(s) are in place. Each failure:"
    return "\n\n".join([head, *(f"{i}. {text}" for i, text in enumerate(failures, 1))])


def fetch_dataset(
    registry: Registry, key: str, raw_dir: Path, lock: PinLock, mirror_dirs: list[Path], settings: DownloadSettings
) -> tuple[dict[str, str], list[str]]:
    """Every file of dataset `key` in place (archives unpacked): (file name -> where it came
    from, the failures' messages). A failed file does not stop the others."""
    dataset = registry[key]
    target_dir = raw_dir / dataset.target
    if (target_dir / STANDIN_MARKER).exists():
        # Generated data must not be mixed with (or mistaken for) real data; a user's files stay.
        clear_standin(target_dir, registry_names(registry, dataset.target))
    sources, failures = {}, []
    for spec in dataset.files:
        unpack = _unpacker(registry, dataset, spec, target_dir, settings.limits()) if spec.extract else None
        try:
            fetched = fetch(dataset, spec, target_dir, lock, settings.http(), mirror_dirs, accept=unpack)
        except DownloadError as e:
            failures.append(str(e))
            continue
        sources[spec.name] = fetched.source + (f" (sha256 pinned in {lock.path})" if fetched.newly_pinned else "")
    return sources, failures


def _unpacker(
    registry: Registry, dataset: Dataset, spec: FileSpec, target_dir: Path, limits: Limits
) -> Callable[[Fetched], None]:
    owned = owned_names(registry, dataset, spec)

    def unpack(fetched: Fetched) -> None:
        extract(fetched.path, target_dir, fetched.sha256, limits, owned)

    return unpack


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


class Terminated(SystemExit):
    """SIGTERM, raised where the process is so that every `finally` removes its temporary files."""


def exit_cleanly_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        print("download: stopped by SIGTERM; temporary files removed, run it again to continue", file=sys.stderr)
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 download", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    settings = section(params, "download", DownloadSettings)
    exit_cleanly_on_sigterm()
    try:
        summary = run(settings, seed=data_seed(params))
    except (DownloadError, StandinError) as e:
        raise SystemExit(f"download: {e}") from None  # the message says it all; no traceback
    for key, files in summary["downloaded"].items():
        for name, source in files.items():
            print(f"download: {key}/{name} <- {source}")
    for name, path in summary["generated"].items():
        print(f"download: {name}: stand-in generated in {path}")
