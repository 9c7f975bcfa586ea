"""Where things live: the repository root, and every path a stage reads or writes.

All paths are relative to the repository root. A training run is one evaluation (`task`/
`name`: cnn/torch, mlp/points/h150, transfer/freeze, captioning/lstm) under one seed, and its
files follow one convention (`RunFiles`):

    metrics/<task>/<name>/seed<k>.json            headline numbers (DVC metrics)
    results/<task>/<name>/seed<k>.json            the full record, read by later stages
    plots/<task>/curves/<name>/seed<k>.csv        one row per epoch (DVC plots)
    plots/<task>/figures/<name>/seed<k>.png       the learning curves
    models/<task>/<name>/seed<k>.pt               the trained network's state_dict
    checkpoints/<task>/<name>/seed<k>/            last.ckpt, best.ckpt, run.json (resume)

and the summary over seeds (`python -m hw4 seeds <task>/<name>`) is metrics/<task>/<name>.json
and results/<task>/<name>.json. The report finds every evaluation's files by this convention.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PARAMS = Path("params.yaml")  # composed from conf/ (hw4.config.compose); every stage's --params
DVC_LOCK = Path("dvc.lock")
RESULTS = Path("results")  # every stage's full record (metrics/ holds the headline numbers)
RAW = Path("data/raw")  # downloads and generated stand-ins, one folder per target
PINNED_CHECKSUMS = Path("data/pinned-checksums.json")
MANIFESTS = Path("data/manifests")  # <target>.json: the files of data/raw/<target> (hw4.data.sources.manifest)
MNIST_FAMILY = Path("data/prepared/mnist_family.pt")
COCO = Path("data/prepared/coco")
GRADCHECK = Path("metrics/gradcheck.json")
MLP_SELECTION = Path("metrics/mlp/select.json")
MLP_SWEEP_CSV = Path("plots/mlp/sweep.csv")
MLP_SWEEP_PNG = Path("plots/mlp/figures/sweep.png")
MLP_FINAL_CSV = Path("plots/mlp/final.csv")  # per seed: not plots/mlp/curves, whose plot draws a validation the final run lacks
REPORTS = Path("reports")
REPORT_MD = REPORTS / "report.md"
REPORT_HTML = REPORTS / "report.html"
REPORT_FIGURES = REPORTS / "figures"
REPORT_SUMMARY = REPORTS / "summary.json"  # the headline numbers, one per problem and run
# In a run's checkpoint folder (RunFiles.checkpoints): what a killed run resumes from, the best
# epoch's weights, and the MLflow run the checkpoint belongs to.
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
RUN_STATE = "run.json"


def repo_root() -> Path:
    """The project root: $HW4_ROOT, else the nearest parent of the cwd holding dvc.yaml."""
    if env := os.environ.get("HW4_ROOT"):
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return cwd


EXPERIMENT_COPIES = Path(".dvc/tmp/exps")  # where `dvc exp run --queue/--temp` runs each experiment


def home_root() -> Path:
    """The repository a run belongs to: `repo_root()`, except in the copy that `dvc exp run
    --queue` (or `--temp`) makes at <repository>/.dvc/tmp/exps/<tmpdir>/ and deletes afterwards.
    What must outlive the run (the tracking store, its artifacts) and what the experiment may
    reuse (verified downloads) live here."""
    root = repo_root()
    for copy in (root, *root.parents):
        if copy.parent.as_posix().endswith("/" + EXPERIMENT_COPIES.as_posix()):
            return copy.parents[len(EXPERIMENT_COPIES.parts)]
    return root


def raw_input(path: str | Path) -> Path:
    """Where a run reads a download that params name (data/raw/...): `path`; in a queued
    experiment's copy, which has no data/raw (no DVC output: the manifests stand for it, so the
    download stage does not rerun there), the repository's own. A path found in neither is
    returned as it is, for the stage to say it is missing (with RAW_MISSING)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    home = home_root() / path
    return home if home.exists() else path


# What to do about a download that is missing (a clone that pulled from a DVC remote has none).
RAW_MISSING = ("a download missing here (data/raw is not in git, nor in a DVC remote unless `dvc add data/raw` "
               "put it there) comes back with `dvc repro -f -s download`")


def tracking_store() -> Path:
    """The default MLflow store: SQLite at the root of the repository the run belongs to."""
    return home_root() / "mlflow.db"


def tracking_artifacts(experiment: str) -> Path:
    """Where the default store keeps an experiment's artifacts, beside it."""
    return home_root() / "mlartifacts" / experiment


def per_seed(path: Path, seed: int) -> Path:
    """Where one seed's file (or folder) goes: metrics/cnn/torch.json -> metrics/cnn/torch/seed1.json."""
    path = Path(path)
    return path.with_suffix("") / f"seed{seed}{path.suffix}"


def evaluation_name(path: Path) -> str:
    """The evaluation a file belongs to: metrics/cnn/torch.json and metrics/cnn/torch/seed1.json -> torch."""
    path = Path(path)
    return path.parent.name if re.fullmatch(r"seed\d+", path.stem) else path.stem


def record_path(metrics_path: Path) -> Path:
    """metrics/<name>.json -> results/<name>.json, the full record behind the metrics file."""
    return RESULTS / Path(metrics_path).relative_to("metrics")


def evaluation_records() -> dict[str, Path]:
    """<task>/<name> -> results/<task>/<name>.json: where each evaluation's summary over seeds
    goes (select.json, a record of the same depth, is among them)."""
    return {f"{p.parent.name}/{p.stem}": p for p in sorted(RESULTS.glob("*/*.json"))}


def summary_metrics(evaluation: str) -> Path:
    """metrics/<task>/<name>.json: an evaluation's summary over its seeds."""
    return Path("metrics") / f"{evaluation}.json"


@dataclass(frozen=True)
class RunFiles:
    """The files of one training run: evaluation `task`/`name` under `seed`."""

    task: str
    name: str
    seed: int

    def _file(self, folder: str, suffix: str = "") -> Path:
        return per_seed(Path(folder) / f"{self.name}{suffix}", self.seed)

    @property
    def evaluation(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def metrics(self) -> Path:
        return self._file(f"metrics/{self.task}", ".json")

    @property
    def record(self) -> Path:
        return record_path(self.metrics)

    @property
    def curve_csv(self) -> Path:
        return self._file(f"plots/{self.task}/curves", ".csv")

    @property
    def curve_png(self) -> Path:
        return self._file(f"plots/{self.task}/figures", ".png")

    @property
    def weights(self) -> Path:
        return self._file(f"models/{self.task}", ".pt")

    @property
    def checkpoints(self) -> Path:
        return self._file(f"checkpoints/{self.task}")

    def extra(self, kind: str, suffix: str) -> Path:
        """plots/<task>/<kind>/<name>/seed<k><suffix>: a stage's further outputs."""
        return self._file(f"plots/{self.task}/{kind}", suffix)

    @property
    def samples_txt(self) -> Path:
        """A captioning run's sample captions, and their images with the captions (png)."""
        return self.extra("samples", ".txt")

    @property
    def samples_png(self) -> Path:
        return self.extra("samples", ".png")


def mlp_point(hidden: int, seed: int) -> RunFiles:
    """A sweep point's files, one folder down (metrics/mlp/points/h150/seed0.json): the
    selection depends on results/mlp/points/ as a whole, whatever the sweep holds."""
    return RunFiles("mlp", f"points/h{hidden}", seed)
