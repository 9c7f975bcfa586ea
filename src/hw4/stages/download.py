"""The `download` stage: the registry's datasets into data/raw/, verified, or stand-ins.

    python -m hw4 download [--params params.yaml]

Each listed dataset lands in `data/raw/<target>/` (archives unpacked there). Datasets in
`generate` are written by their stand-in generators instead, at the place the real archive
would unpack to, and marked with a `STANDIN` file in that directory.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw4.config import ConfigError, load_params, section
from hw4.data.archives import ArchiveError, extract
from hw4.data.download import LOCK_PATH, DownloadError, HttpOptions, PinLock, fetch
from hw4.data.registry import STANDIN_MARKER, Dataset, Registry, load_registry

RAW_DIR = Path("data/raw")

# name in `generate` -> (module, directory under data/raw). Each module has
# `generate(target_dir: Path, seed: int)`, which writes what the real archive(s) would unpack
# to inside target_dir (a fresh empty directory, moved into place afterwards, so it must not
# record its own path). Imported only when listed: the stage runs without the others.
GENERATORS = {
    "hymenoptera": ("hw4.data.standin_hymenoptera", "hymenoptera"),
    "coco2014_raw": ("hw4.data.standin_coco", "coco2014"),
}


class StandinError(RuntimeError):
    """A stand-in that cannot be generated where it should go."""


@dataclass
class DownloadSettings:
    """params.yaml `download`."""

    datasets: list[str] = field(default_factory=list)
    generate: list[str] = field(default_factory=list)  # stand-ins to generate instead
    mirror_dirs: list[str] = field(default_factory=list)  # searched before the network
    retries: int = 3  # extra attempts per HTTP mirror, for transient failures
    timeout_s: float = 60.0

    def validate(self, where: str) -> None:
        check_settings(self, load_registry(), where)


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


def read_seed(params: dict[str, Any]) -> int:
    """The top-level `seed` (0 when absent): the stand-in generators' seed."""
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"params 'seed': expected an integer, got {seed!r}")
    return seed


def run(
    settings: DownloadSettings,
    seed: int = 0,
    raw_dir: Path = RAW_DIR,
    lock_path: Path = LOCK_PATH,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Fetch every listed dataset, then generate every listed stand-in; say where each came from."""
    registry = registry if registry is not None else load_registry()
    check_settings(settings, registry, "download")
    http = HttpOptions(retries=settings.retries, timeout_s=settings.timeout_s)
    lock = PinLock(lock_path)
    lock.ensure_exists()
    mirror_dirs = [Path(d).expanduser() for d in settings.mirror_dirs]
    summary: dict[str, Any] = {"downloaded": {}, "generated": {}}
    for key in settings.datasets:
        summary["downloaded"][key] = fetch_dataset(registry[key], Path(raw_dir), lock, mirror_dirs, http)
    for name in settings.generate:
        summary["generated"][name] = str(generate_standin(name, Path(raw_dir), seed))
    return summary


def fetch_dataset(
    dataset: Dataset, raw_dir: Path, lock: PinLock, mirror_dirs: list[Path], http: HttpOptions
) -> dict[str, str]:
    """Every file of `dataset` in place (archives unpacked); file name -> where it came from."""
    target_dir = raw_dir / dataset.target
    if (target_dir / STANDIN_MARKER).exists():
        # Generated data is cheap to remake and must not be mixed with (or mistaken for) real data.
        shutil.rmtree(target_dir)
    sources = {}
    for spec in dataset.files:
        fetched = fetch(dataset, spec, target_dir, lock, mirror_dirs, http)
        if spec.extract:
            extract(fetched.path, target_dir, fetched.sha256)
        sources[spec.name] = fetched.source + (f" (sha256 pinned in {lock.path})" if fetched.newly_pinned else "")
    return sources


def generate_standin(name: str, raw_dir: Path, seed: int) -> Path:
    """Run the stand-in generator `name` into a fresh directory, then swap it into place."""
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
        marker = tmp / STANDIN_MARKER
        if not marker.exists():
            marker.write_text(f"generated by {module_name}.generate(seed={seed}); not the real data\n")
        if target_dir.exists():
            shutil.rmtree(target_dir)
        os.replace(tmp, target_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target_dir


def _holds_real_data(target_dir: Path) -> bool:
    return target_dir.is_dir() and not (target_dir / STANDIN_MARKER).exists() and any(target_dir.iterdir())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw4 download", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    settings = section(params, "download", DownloadSettings)
    try:
        summary = run(settings, seed=read_seed(params))
    except (DownloadError, ArchiveError, StandinError) as e:
        raise SystemExit(f"download: {e}") from None  # the message says it all; no traceback
    for key, files in summary["downloaded"].items():
        for name, source in files.items():
            print(f"download: {key}/{name} <- {source}")
    for name, path in summary["generated"].items():
        print(f"download: {name}: stand-in generated in {path}")
