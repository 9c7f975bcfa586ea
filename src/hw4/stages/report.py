"""The `report` stage: the homework's write-up regenerated from every stage's outputs.

    python -m hw4 report [--params params.yaml]

Reads the metrics and plot files of gradcheck, the MLP sweep, the CNN, captioning and
transfer (the matrix members named in params.yaml), and writes
- reports/report.md: the write-up, figures linked;
- reports/report.html: the same, self-contained (figures embedded, no external file);
- reports/figures/: the report's own overlaid curves;
- reports/summary.json: each problem's headline numbers, in one file.
One MLflow run (experiment `report`) holds both reports and is tagged with every run it
summarises (`summarises.<stage>`), listed again in its description.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from hw4.config import command
from hw4.config.seeds import seeds_of
from hw4.config.settings import ConfigError, flatten, load_params, section
from hw4.io import atomic, paths
from hw4.io.outputs import write_json
from hw4.report import homework
from hw4.report.document import Document, Section, Table, Text
from hw4.report.inputs import Inputs, Members, MissingStageOutput, collect
from hw4.report.render import to_html, to_markdown
from hw4.report.sections import Context, problems
from hw4.tracking.provenance import provenance_tags
from hw4.tracking.runs import StageRun, run_tags

EXPERIMENT = "report"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI (Markdown)


@dataclass
class ReportSettings:
    """params.yaml `report`."""

    title: str

    def validate(self, where: str) -> None:
        if not self.title.strip():
            raise ConfigError(f"params '{where}.title': must not be empty")


@dataclass
class Settings:
    report: ReportSettings
    profile: str
    members: Members


def load_settings(params_path: Path) -> Settings:
    params = load_params(params_path)
    profile = params.get("profile")
    if not isinstance(profile, str):
        raise ConfigError(f"{params_path}: missing string key 'profile' (the report names the profile it summarises)")
    members = Members(_matrix(params, "cnn.impls"), _matrix(params, "captioning.models"), _matrix(params, "transfer.modes"),
                      seeds_of(params))
    return Settings(section(params, "report", ReportSettings), profile, members)


def _matrix(params: dict[str, Any], dotted: str) -> list[str]:
    """A DVC matrix list (one stage run per entry): the runs the report summarises."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"params: missing '{dotted}', which names the runs the report summarises")
        node = node[part]
    if not isinstance(node, list) or not node or not all(isinstance(x, str) for x in node):
        raise ConfigError(f"params '{dotted}': expected a non-empty list of names, got {node!r}")
    return node


def run(s: Settings) -> dict[str, Any]:
    """Read every stage's outputs, write the reports and the summary; return the summary."""
    figures = homework.load()
    inputs = collect(s.members)  # before the MLflow run: a missing output leaves no failed run
    run_ids = inputs.run_ids()
    params = flatten({"report": asdict(s.report), "profile": s.profile, "members": asdict(s.members)})
    tags = {f"summarises.{stage.replace('@', '.')}": rid for stage, rid in run_ids.items() if rid}
    with StageRun(EXPERIMENT, "report", params, standin=inputs.standin(), tags=tags, run_name="report") as run:
        ctx = Context(figures, device_tags(run_ids.values()), paths.REPORT_FIGURES)
        doc = Document(s.report.title, [header(s, inputs, run.run_id, figures.source), *problems(inputs, ctx)])
        # Atomically: a report cut short by a crash would still open, and look complete.
        atomic.write_text(paths.REPORT_MD, to_markdown(doc, paths.REPORT_MD.parent))
        atomic.write_text(paths.REPORT_HTML, to_html(doc))
        summary = headline(inputs)
        write_json(paths.REPORT_SUMMARY, summary)
        run.set_tags({NOTE_TAG: note(s, run_ids)})
        for path in (paths.REPORT_MD, paths.REPORT_HTML, paths.REPORT_SUMMARY):
            run.log_artifact(path)
    return summary


def device_tags(run_ids: Iterable[str | None]) -> dict[str, str]:
    """Run id -> the device its run trained on, "unknown" where the store cannot say."""
    devices = {}
    for run_id in set(filter(None, run_ids)):
        devices[run_id] = (run_tags(run_id) or {}).get("device", "unknown")
    return devices


def header(s: Settings, inputs: Inputs, run_id: str | None, homework_source: str) -> Section:
    """What made this report: code, settings, machine; no host name."""
    tags = provenance_tags("report", (), inputs.standin())
    commit = tags.get("git.commit", "unknown") + (" (with uncommitted changes)" if tags.get("git.dirty") == "true" else "")
    versions = ", ".join(f"{k.removeprefix('version.')} {v}" for k, v in tags.items() if k.startswith("version."))
    machine = f"{platform.platform(terse=True)}, {os.cpu_count()} CPUs; device: {tags['device']}"
    data = ("Numbers computed on generated stand-in data say `(stand-in)` in their data column."
            if inputs.standin() else "Every number comes from the real data sets.")
    rows = [
        ["git commit", f"`{commit}`"],
        ["params profile", f"`{s.profile}`"],
        ["seeds", f"{', '.join(map(str, s.members.seeds))}: " + (
            "each number of a trained model is the mean ± standard deviation over them; figures and samples are "
            f"seed {s.members.seeds[0]}'s" if len(s.members.seeds) > 1 else "one seed, so no spread is given")],
        ["machine", machine],
        ["libraries", versions],
        ["generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")],
        ["MLflow", f"experiment `{EXPERIMENT}`, run `{run_id}`" if run_id else "not tracked"],
        ["homework figures", f"{homework_source}, kept in `src/hw4/report/homework_figures.yaml`"],
    ]
    return Section("About this report", [
        Text("Regenerated by `dvc repro` from the stages' metrics and plot files. Each table puts the homework's "
             "figure (shaded in the HTML) beside this project's, with the data, device and MLflow run of every number."),
        Table(["", ""], rows),
        Text(data),
    ])


def headline(inputs: Inputs) -> dict[str, Any]:
    """The numbers the homework reported, one per problem and run (DVC flattens the nesting)."""
    sel, final = inputs.selection, inputs.final
    return {
        "gradcheck": {"layers_passed": sum(bool(r["passed"]) for r in inputs.layers().values()), "layers": len(inputs.layers())},
        "mlp": {"hidden": sel["hidden"], "beats_runner_up_by_more_than_spread": sel.get("beats_spread"),
                **_mean_std(sel, val_acc="val/acc"), **_mean_std(final, test_acc="test/acc")},
        "cnn": {k: _mean_std(r.metrics, test_acc="test/acc", train_time_s="train_time_s") for k, r in inputs.cnn.items()},
        "captioning": {k: _mean_std(r.metrics, bleu4="val/bleu4", cider="val/cider") for k, r in inputs.captioning.items()},
        "transfer": {k: _mean_std(r.metrics, val_acc="val/acc", val_acc_best="val/acc_best") for k, r in inputs.transfer.items()},
        **{evaluation: _mean_std(r, **{k: k for k in r["headline"]}) for evaluation, r in inputs.others.items()},
    }


def _mean_std(summary: dict[str, Any], **names: str) -> dict[str, Any]:
    """name -> the summary's mean of key, and name_std -> its standard deviation over seeds."""
    return {k: v for name, key in names.items() for k, v in ((name, summary.get(key)), (f"{name}_std", summary.get(f"{key}_std")))}


def note(s: Settings, run_ids: dict[str, str | None]) -> str:
    """The run's description: what it is and the runs it summarises."""
    rows = "\n".join(f"| {stage} | `{rid}` |" for stage, rid in run_ids.items() if rid)
    return (f"**{s.report.title}** (profile `{s.profile}`): the homework's write-up regenerated from the runs below. "
            f"Artifacts: `{paths.REPORT_HTML.name}` (self-contained), `{paths.REPORT_MD.name}`, `{paths.REPORT_SUMMARY.name}`.\n\n"
            f"| stage | run |\n|---|---|\n{rows}\n")


def main(argv: list[str] | None = None) -> None:
    args = command.parser("report", __doc__).parse_args(argv)
    settings = load_settings(args.params)
    with command.one_line_errors("report", MissingStageOutput):  # the message lists the files and the stages to run
        run(settings)
    print(f"report: wrote {paths.REPORT_MD}, {paths.REPORT_HTML} and {paths.REPORT_SUMMARY}")
