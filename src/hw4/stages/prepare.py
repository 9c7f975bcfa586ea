"""The `prepare` stage: one MNIST-family dataset's raw IDX files -> data/prepared/mnist_family.pt.

    python -m hw4 prepare [--params params.yaml]

Output: {train,val,test}_{x,y} uint8 tensors (images (N, 28, 28), labels (N,)) and `meta`
(dataset, class names, stand-in flag, sha256 of every source file).

Real data is read only if every file matches the checksums the registry records (the
container's or, for recompressed copies, the content's), whatever put it in data/raw.
Stand-in data (a `STANDIN` marker) is generated and has none to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hw4.config import command
from hw4.config.settings import ConfigError, load_params, section
from hw4.data.formats.mnist import FILES, prepare, save
from hw4.data.sources.download import verify_file
from hw4.data.sources.registry import Dataset, Registry, load_registry
from hw4.data.standins.marker import is_standin
from hw4.io import paths


@dataclass
class PrepareSettings:
    """params.yaml `prepare`."""

    dataset: Literal["mnist", "fashion_mnist", "kmnist"]
    val_size: int  # the last val_size training images; the homework holds out 5,000

    def validate(self, where: str) -> None:
        if self.val_size < 1:
            raise ConfigError(f"params '{where}.val_size': must be at least 1, got {self.val_size}")


def run(
    settings: PrepareSettings,
    raw_dir: Path = paths.RAW,
    out_path: Path = paths.MNIST_FAMILY,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Read, check, split and save; return the split sizes and what the data is."""
    registry = registry if registry is not None else load_registry()
    dataset = registry[settings.dataset]
    source = paths.raw_input(Path(raw_dir) / dataset.target)
    missing = [name for name in FILES.values() if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source}: missing {missing}; run the download stage with "
            f"'{settings.dataset}' in download.datasets first ({paths.RAW_MISSING})"
        )
    if not is_standin(source):
        check_recorded(dataset, source)
    sizes = {spec.name: spec.content_size for spec in dataset.files}
    data = prepare(source, settings.dataset, list(dataset.classes), settings.val_size, sizes)
    save(data, out_path)
    sizes = {split: len(data[f"{split}_y"]) for split in ("train", "val", "test")}
    return {"dataset": settings.dataset, "standin": data["meta"]["standin"], **sizes}


def check_recorded(dataset: Dataset, source: Path) -> None:
    """Raise ValueError naming every file that does not match what the registry records."""
    specs = {spec.name: spec for spec in dataset.files}
    wrong = []
    for name in FILES.values():
        reason = verify_file(source / name, specs[name], pinned=None)  # the MNIST family publishes checksums
        if reason is not None:
            wrong.append(f"  - {source / name}: {reason}")
    if wrong:
        raise ValueError(
            f"{source}: not the files the registry records for '{dataset.key}':\n" + "\n".join(wrong) + "\n"
            "Run the download stage: it moves each wrong file aside (to <name>.rejected) and fetches a verified copy."
        )


def main(argv: list[str] | None = None) -> None:
    args = command.parser("prepare", __doc__).parse_args(argv)
    settings = section(load_params(args.params), "prepare", PrepareSettings)
    with command.one_line_errors("prepare", FileNotFoundError, ValueError):  # IdxError is a ValueError
        summary = run(settings)
    standin = " (stand-in data)" if summary["standin"] else ""
    print(
        f"prepare: {summary['dataset']}{standin}: train {summary['train']}, val {summary['val']}, "
        f"test {summary['test']} -> {paths.MNIST_FAMILY}"
    )
