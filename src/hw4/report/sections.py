"""One section per problem of the homework: this project's numbers beside the write-up's.

Every row that carries a number also says the data it came from (real or stand-in), the
device its run trained on (the MLflow run's `device` tag) and the run id. The numbers of
trained models are means over seeds with their standard deviation (`cells.score`); the run
is the parent of the seeds' runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hw4.report import cells
from hw4.report.cells import NA
from hw4.report.document import Figure, Section, Table, Text
from hw4.report.figures import Series, overlay, series
from hw4.report.homework import CaptionSample, HomeworkFigures
from hw4.report.inputs import Inputs

PROVENANCE = ["data", "device", "MLflow run"]
BLEU = [f"val/bleu{n}" for n in range(1, 5)]


@dataclass
class Context:
    homework: HomeworkFigures
    devices: Mapping[str, str]  # run id -> the device its run's tag names
    figures_dir: Path  # where the report's own figures are written

    def device(self, run_id: str | None) -> str:
        return self.devices.get(run_id, "unknown") if run_id else "not tracked"

    def provenance(self, metrics: Mapping[str, Any], run_id: str | None = None) -> list[str]:
        """The data, device and run cells of a row; `run_id` where the file names it otherwise.
        A summary without a run of its own (a sweep point) names its seeds' runs."""
        run_id = run_id or metrics.get("run_id")
        seed_runs = [r for r in metrics.get("run_ids", {}).values() if r]
        if run_id is None and seed_runs:
            return [cells.dataset(metrics), self.device(seed_runs[0]), ", ".join(map(cells.run, seed_runs))]
        return [cells.dataset(metrics), self.device(run_id), cells.run(run_id)]


def comparability(metrics: Mapping[str, Any], homework_dataset: str) -> list[Text]:
    """A warning where this run's data is not the homework's, so nobody compares the two."""
    if metrics.get("dataset") == homework_dataset and not metrics.get("standin"):
        return []
    return [Text(f"The homework ran on {homework_dataset}; these runs used {cells.dataset(metrics)}, "
                 "so their numbers are not expected to match the homework's.")]


def problem1(inputs: Inputs, ctx: Context) -> Section:
    rows = [
        [f"`{layer}`", "pass" if r["gradcheck"] else "FAIL", cells.error(r["max_abs_err_out"]),
         cells.error(r["max_abs_err_grad"]), "pass" if r["passed"] else "FAIL"]
        for layer, r in inputs.layers().items()
    ]
    run_id = inputs.gradcheck.get("run_id")
    columns = ["layer", "finite differences (float64)", "max abs error, output", "max abs error, gradients", "result"]
    return Section("Problem 1: backpropagation by hand", [
        Text("Each hand-derived layer of `hw4.layers` against finite differences in float64 "
             "(`torch.autograd.gradcheck`) and against `torch.nn.functional` in float32 on the CNN's shapes; "
             "errors are the float32 comparison's."),
        Table(columns, rows),
        Text(f"Data: seeded random tensors. Device: {ctx.device(run_id)}. MLflow run: {cells.run(run_id)}."),
        Text(f"Homework: {ctx.homework.gradcheck.note}"),
    ])


def problem2(inputs: Inputs, ctx: Context) -> Section:
    hw = ctx.homework.mlp
    sel, final = inputs.selection, inputs.final
    sizes = sorted(set(inputs.points) | set(hw.val_acc))
    metric = sel["metric"]  # what the selection compared
    sweep = Table(["hidden units", "val acc (last epoch)", "homework val acc", "val acc (best epoch)", *PROVENANCE],
                  [_sweep_row(h, inputs.points.get(h), hw.val_acc.get(h), metric, ctx) for h in sizes],
                  caption=f"The sweep: `{metric}` of the last epoch, averaged over seeds, chooses the size "
                          "(ties go to the smaller net).")
    chosen = Table(["", "this project", "homework", *PROVENANCE], [
        ["hidden units chosen", str(sel["hidden"]), str(hw.chosen_hidden), *ctx.provenance(sel, sel.get("sweep_run_id"))],
        ["its validation accuracy", cells.score(sel, "val/acc"), cells.homework(hw.chosen_val_acc), *ctx.provenance(sel, sel.get("sweep_run_id"))],
        ["test accuracy, retrained", cells.score(final, "test/acc"), cells.homework(hw.test_acc), *ctx.provenance(final)],
    ], caption="The chosen size, retrained on training + validation data and evaluated once on the test set (`mlp_final`).")
    return Section("Problem 2: the MLP's hidden-size sweep", [
        Text("One MLP per hidden size, trained on the training split and validated every epoch; "
             "the best size is retrained on training and validation data together and tested once."),
        sweep, _sweep_figure(inputs, metric, ctx), Text(f"The choice against the seeds' spread: {sel['verdict']}."), chosen,
        *comparability(final, hw.dataset),
    ])


def _sweep_row(hidden: int, point: Mapping[str, Any] | None, homework_acc: float | None, metric: str,
               ctx: Context) -> list[str]:
    theirs = NA if homework_acc is None else cells.homework(homework_acc)
    if point is None:  # a size only the homework tried
        return [str(hidden), NA, theirs, NA, NA, NA, NA]
    return [str(hidden), cells.score(point, metric), theirs, cells.score(point, "val/acc_best"), *ctx.provenance(point)]


def _sweep_figure(inputs: Inputs, metric: str, ctx: Context) -> Figure:
    hw = ctx.homework.mlp
    mine = sorted((h, p[metric]) for h, p in inputs.points.items())
    theirs = sorted(hw.val_acc.items())
    path = overlay(ctx.figures_dir / "mlp_sweep.png", [
        Series(f"this project ({cells.dataset(inputs.final)})", [h for h, _ in mine], [a for _, a in mine]),
        Series(f"homework ({hw.dataset})", [h for h, _ in theirs], [a for _, a in theirs], style="s--"),
    ], "hidden units", "validation accuracy", "MLP: validation accuracy against hidden size")
    return Figure(path, "Validation accuracy against the number of hidden units, this project's sweep and the homework's.")


def problem3(inputs: Inputs, ctx: Context) -> Section:
    hw = ctx.homework.cnn
    rows = [
        [f"`{impl}`", cells.score(r.metrics, "test/acc"), cells.homework(hw.test_acc), cells.seconds(r.metrics.get("train_time_s")),
         hw.train_time, str(r.metrics.get("epochs", NA)), *ctx.provenance(r.metrics)]
        for impl, r in inputs.cnn.items()
    ]
    columns = ["layers", "test acc", "homework test acc", "training time", "homework training time", "epochs", *PROVENANCE]
    figures = [Figure(r.curves_png, f"Learning curves, `{impl}` layers.") for impl, r in inputs.cnn.items()]
    first = next(iter(inputs.cnn.values()), None)
    return Section("Problem 3: the CNN", [
        Text("The same CNN and settings with `torch.nn` layers and with the hand-derived layers of Problem 1 (`scratch`). "
             "The homework trained one CNN."),
        Table(columns, rows),
        *(comparability(first.metrics, hw.dataset) if first else []),
        *figures,
    ])


def problem4(inputs: Inputs, ctx: Context) -> Section:
    hw = ctx.homework.captioning
    rows = [
        [_model_name(model), *(cells.score(r.metrics, k) for k in (*BLEU, "val/cider")),
         cells.score(r.metrics, "train/loss"), cells.score(r.metrics, "val/loss"), *ctx.provenance(r.metrics)]
        for model, r in inputs.captioning.items()
    ]
    columns = ["model", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "train loss", "val loss", *PROVENANCE]
    first = next(iter(inputs.captioning.values()), None)
    samples = [_samples_section(model, r.samples, r.samples_png) for model, r in inputs.captioning.items()]
    homework_samples = Section("The homework's samples", [
        Text("As the write-up prints them (two of its ground truths are cut off there)."),
        _samples_table(hw.samples),
    ])
    return Section("Problem 4: image captioning", [
        Text("Scores on the validation images, every reference caption counted; losses are the last epoch's, per caption. "
             "The blind baseline never sees the image: a model must beat it to have used the picture."),
        Table(columns, rows),
        Text(f"Homework: {hw.note}"),
        *(comparability(first.metrics, hw.dataset) if first else []),
        _loss_figure(inputs, ctx),
    ], subsections=[*samples, homework_samples])


def _model_name(model: str) -> str:
    return "`blind` (baseline)" if model == "blind" else f"`{model}`"


def _loss_figure(inputs: Inputs, ctx: Context) -> Figure:
    lines = []
    for i, (model, r) in enumerate(inputs.captioning.items()):
        color = f"C{i}"
        lines += [series(f"{model} train", r.loss, "epoch", "train/loss", "-o", color),
                  series(f"{model} val", r.loss, "epoch", "val/loss", "--", color)]
    path = overlay(ctx.figures_dir / "captioning_loss.png", lines, "epoch", "loss per caption", "Captioning: loss per epoch")
    return Figure(path, "The loss curves of every model (solid: training, dashed: validation).")


def _samples_table(samples: list[CaptionSample]) -> Table:
    return Table(["split", "generated", "ground truth"], [[s.split, f"`{s.generated}`", f"`{s.truth}`"] for s in samples])


def _samples_section(model: str, samples: list[CaptionSample], png: Path) -> Section:
    return Section(f"Sample captions, {_model_name(model)}", [_samples_table(samples), Figure(png, f"Samples of `{model}` with their pictures.")])


def problem5(inputs: Inputs, ctx: Context) -> Section:
    hw = ctx.homework.transfer
    rows = []
    for mode, r in inputs.transfer.items():
        m, theirs = r.metrics, hw.modes.get(mode)
        rows.append([
            f"`{mode}`", cells.score(m, "val/acc"), cells.homework(theirs.final_val_acc) if theirs else NA,
            f"{cells.score(m, 'val/acc_best')} ({_best_epoch(m)})", cells.homework(theirs.best_val_acc) if theirs else NA,
            str(m.get("epochs", NA)), str(hw.epochs), str(m.get("weights", "unknown")), *ctx.provenance(m),
        ])
    columns = ["mode", "final val acc", "homework final", "best val acc", "homework best", "epochs", "homework epochs", "backbone", *PROVENANCE]
    lines = [series(mode, r.curve, "epoch", "val/acc") for mode, r in inputs.transfer.items()]
    path = overlay(ctx.figures_dir / "transfer_val_acc.png", lines, "epoch", "validation accuracy", "Transfer learning: validation accuracy")
    first = next(iter(inputs.transfer.values()), None)
    return Section("Problem 5: transfer learning", [
        Text("ResNet18 with a new 2-way head, every layer fine-tuned (`finetune`) against the backbone frozen (`freeze`). "
             "Best is the highest validation accuracy of any epoch, the weights the stage keeps."),
        Table(columns, rows),
        *(comparability(first.metrics, hw.dataset) if first else []),
        Figure(path, "Validation accuracy per epoch, both modes overlaid."),
    ])


def _best_epoch(m: Mapping[str, Any]) -> str:
    epoch = m.get("best_epoch")
    if isinstance(epoch, float):  # a mean over seeds
        return f"epoch {epoch:.1f} on average"
    return f"epoch {NA if epoch is None else epoch}"


def other_tasks(inputs: Inputs, ctx: Context) -> list[Section]:
    """A section per task without a problem of its own: each evaluation's headline numbers, as
    its stage names them (the record's `headline`), mean ± std over its seeds."""
    tasks: dict[str, dict[str, Mapping[str, Any]]] = {}
    for evaluation, record in inputs.others.items():
        task, name = evaluation.split("/")
        tasks.setdefault(task, {})[name] = record
    sections = []
    for task, evaluations in tasks.items():
        numbers = list(dict.fromkeys(k for r in evaluations.values() for k in r["headline"]))
        rows = [[f"`{name}`", *(cells.score(r, k) for k in numbers), ", ".join(map(str, r.get("seeds", []))), *ctx.provenance(r)]
                for name, r in evaluations.items()]
        sections.append(Section(f"Task `{task}`", [
            Text(f"Each evaluation of `{task}` over its seeds (`results/{task}/<name>.json`), with the numbers its stage names."),
            Table(["evaluation", *numbers, "seeds", *PROVENANCE], rows),
        ]))
    return sections


def problems(inputs: Inputs, ctx: Context) -> list[Section]:
    return [*(f(inputs, ctx) for f in (problem1, problem2, problem3, problem4, problem5)), *other_tasks(inputs, ctx)]
