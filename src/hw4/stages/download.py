"""The `download` stage: the registry's datasets into data/raw/, verified, or stand-ins.

    python -m hw4 download [--params params.yaml]

Each listed dataset lands in `data/raw/<target>/` (archives unpacked there), and what that
directory holds is recorded in `data/manifests/<target>.json`, the stage's DVC output. Datasets in
`generate` are written by their stand-in generators instead, at the place the real archive
would unpack to, and marked with a `STANDIN` file in that directory (what the generator
wrote is listed beside it, so that replacing a stand-in removes that and nothing else).
In a queued DVC experiment's copy, the repository's data/raw is searched first, so files
already verified there are copied, not downloaded again. Every file is tried, and one error
lists every failure. SIGTERM stops the stage cleanly: no temporary file is left behind.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hw4.config import command
from hw4.config.seeds import data_seed
from hw4.config.settings import ConfigError, load_params, section
from hw4.data.sources.archives import Limits, extract
from hw4.data.sources.download import DownloadError, Fetched, HttpOptions, PinLock, fetch
from hw4.data.sources.manifest import write_manifests
from hw4.data.sources.registry import Dataset, FileSpec, Registry, load_registry, owned_names, registry_names
from hw4.data.standins.install import GENERATORS, StandinError, clear_standin, generate_standin
from hw4.data.standins.marker import is_standin
from hw4.io import paths


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
    manifest_dir: Path = paths.MANIFESTS,
) -> dict[str, Any]:
    """Fetch every listed dataset, then generate every listed stand-in, then write each target
    directory's manifest (the stage's output: hw4.data.sources.manifest); say where each came from.

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
    targets = [registry[key].target for key in settings.datasets] + [GENERATORS[name][1] for name in settings.generate]
    write_manifests(Path(raw_dir), targets, manifest_dir)
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
    if is_standin(target_dir):
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


class Terminated(SystemExit):
    """SIGTERM, raised where the process is so that every `finally` removes its temporary files."""


def exit_cleanly_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        print("download: stopped by SIGTERM; temporary files removed, run it again to continue", file=sys.stderr)
        raise Terminated(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> None:
    args = command.parser("download", __doc__).parse_args(argv)
    params = load_params(args.params)
    settings = section(params, "download", DownloadSettings)
    exit_cleanly_on_sigterm()
    with command.one_line_errors("download", DownloadError, StandinError):
        summary = run(settings, seed=data_seed(params))
    for key, files in summary["downloaded"].items():
        for name, source in files.items():
            print(f"download: {key}/{name} <- {source}")
    for name, path in summary["generated"].items():
        print(f"download: {name}: stand-in generated in {path}")
