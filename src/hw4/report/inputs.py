"""The stages' outputs the report reads, each with the stage that writes it.

Everything is checked before anything is read, so a missing file stops the report with the
list of what is missing and the `dvc repro` that makes it, not with a traceback halfway.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hw4.outputs import record_path
from hw4.report.homework import CaptionSample
from hw4.stages import captioning, cnn, gradcheck, mlp, transfer


class MissingStageOutput(FileNotFoundError):
    """A file the report summarises has not been written by its stage."""


@dataclass(frozen=True)
class Needed:
    path: Path
    stage: str  # the DVC stage that writes it


def require(needed: Sequence[Needed]) -> None:
    missing = [n for n in needed if not Path(n.path).is_file()]
    if not missing:
        return
    stages = " ".join(dict.fromkeys(n.stage for n in missing))
    listing = "\n".join(f"  {n.path}  (written by stage {n.stage})" for n in missing)
    raise MissingStageOutput(f"the report needs stage outputs that do not exist:\n{listing}\nrun `dvc repro {stages}` first")


@dataclass
class Members:
    """Which runs of the matrix stages the report summarises (from params.yaml)."""

    cnn: list[str]  # cnn.impls
    captioning: list[str]  # captioning.models
    transfer: list[str]  # transfer.modes


@dataclass
class CNNRun:
    metrics: dict[str, Any]
    curves_png: Path


@dataclass
class CaptioningRun:
    metrics: dict[str, Any]
    loss: list[dict[str, float | None]]  # one row per epoch: train/loss, val/loss
    samples: list[CaptionSample]
    samples_png: Path


@dataclass
class TransferRun:
    metrics: dict[str, Any]
    curve: list[dict[str, float | None]]  # one row per epoch: val/acc, ...


@dataclass
class Inputs:
    gradcheck: dict[str, Any]  # layer -> its checks, and the run's id
    points: dict[int, dict[str, Any]]  # hidden units -> the sweep point's metrics
    selection: dict[str, Any]
    final: dict[str, Any]
    cnn: dict[str, CNNRun]
    captioning: dict[str, CaptioningRun]
    transfer: dict[str, TransferRun]

    def layers(self) -> dict[str, dict[str, Any]]:
        """The gradient check's results per layer (the file's other entries are about the run)."""
        return {name: r for name, r in self.gradcheck.items() if isinstance(r, dict)}

    def run_ids(self) -> dict[str, str | None]:
        """DVC stage -> the MLflow run that made its numbers (None where it made none)."""
        ids = {"gradcheck": self.gradcheck.get("run_id")}
        ids |= {f"mlp@{h}": p.get("run_id") for h, p in self.points.items()}
        ids |= {"mlp_select": self.selection.get("sweep_run_id"), "mlp_final": self.final.get("run_id")}
        ids |= {f"cnn@{k}": r.metrics.get("run_id") for k, r in self.cnn.items()}
        ids |= {f"captioning@{k}": r.metrics.get("run_id") for k, r in self.captioning.items()}
        ids |= {f"transfer@{k}": r.metrics.get("run_id") for k, r in self.transfer.items()}
        return ids

    def standin(self) -> bool:
        """Whether any number in the report was computed on generated stand-in data."""
        metrics = [*self.points.values(), self.final, *(r.metrics for r in (*self.cnn.values(), *self.captioning.values(), *self.transfer.values()))]
        return any(bool(m.get("standin")) for m in metrics)


# The stages' full records (results/...), which carry run ids and data sets besides the numbers.
GRADCHECK = record_path(gradcheck.METRICS)
SELECTION = record_path(mlp.SELECTION)
FINAL = record_path(mlp.FINAL)


def _point(hidden: int) -> Path:
    return record_path(mlp.POINTS / f"h{hidden}.json")


def _cnn_files(impl: str) -> tuple[Path, Path]:
    return record_path(cnn.METRICS / f"{impl}.json"), cnn.FIGURES / f"{impl}.png"


def _transfer_files(mode: str) -> tuple[Path, Path]:
    return record_path(transfer.METRICS / f"{mode}.json"), transfer.CURVES / f"{mode}.csv"


def _caption_files(model: str) -> tuple[Path, ...]:
    out = captioning.Outputs(model)
    return out.record, out.loss_csv, out.samples_txt, out.samples_png


def needed_before_sweep(members: Members) -> list[Needed]:
    """Every input but the sweep points, whose sizes the selection file lists."""
    needed = [Needed(GRADCHECK, "gradcheck"), Needed(SELECTION, "mlp_select"), Needed(FINAL, "mlp_final")]
    needed += [Needed(p, f"cnn@{k}") for k in members.cnn for p in _cnn_files(k)]
    needed += [Needed(p, f"captioning@{k}") for k in members.captioning for p in _caption_files(k)]
    needed += [Needed(p, f"transfer@{k}") for k in members.transfer for p in _transfer_files(k)]
    return needed


def collect(members: Members) -> Inputs:
    """Read every stage output the report summarises; MissingStageOutput names what is absent."""
    require(needed_before_sweep(members))
    selection = read_json(SELECTION)
    sizes = sorted(int(h) for h in selection["points"])
    require([Needed(_point(h), f"mlp@{h}") for h in sizes])
    return Inputs(
        gradcheck=read_json(GRADCHECK),
        points={h: read_json(_point(h)) for h in sizes},
        selection=selection,
        final=read_json(FINAL),
        cnn={k: _read_cnn(k) for k in members.cnn},
        captioning={k: _read_captioning(k) for k in members.captioning},
        transfer={k: _read_transfer(k) for k in members.transfer},
    )


def _read_cnn(impl: str) -> CNNRun:
    metrics, png = _cnn_files(impl)
    return CNNRun(read_json(metrics), png)


def _read_captioning(model: str) -> CaptioningRun:
    metrics, loss, samples, png = _caption_files(model)
    return CaptioningRun(read_json(metrics), read_csv(loss), read_samples(samples), png)


def _read_transfer(mode: str) -> TransferRun:
    metrics, curve = _transfer_files(mode)
    return TransferRun(read_json(metrics), read_csv(curve))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def read_csv(path: Path) -> list[dict[str, float | None]]:
    """Numeric columns of a plot-data CSV (hw4.outputs.write_csv); empty cells are None."""
    with Path(path).open(newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None  # empty (a metric not logged that epoch) or text (a flag column)


def read_samples(path: Path) -> list[CaptionSample]:
    """The captioning stage's listing (hw4.captioning_eval.write_samples): a title line, then
    per sample `<split>  <url>`, `  generated: ...`, `  GT: ...` and a blank line."""
    samples: list[CaptionSample] = []
    split = generated = None
    for line in Path(path).read_text().splitlines()[1:]:
        if line.startswith("  generated:"):
            generated = line.split(":", 1)[1].strip()
        elif line.startswith("  GT:"):
            if split is None or generated is None:
                raise ValueError(f"{path}: a ground truth without its sample line and generated caption")
            samples.append(CaptionSample(split, generated, line.split(":", 1)[1].strip()))
            split = generated = None
        elif line.strip():
            split = line.split()[0]
    return samples
