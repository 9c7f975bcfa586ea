"""The report stage on fixture outputs of every other stage (written here, no training)."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from hw4.config.settings import ConfigError
from hw4.evaluation.captioning import Sample, write_samples
from hw4.io import paths
from hw4.io.outputs import write_csv, write_results
from hw4.io.paths import per_seed
from hw4.report import homework
from hw4.report.inputs import MissingStageOutput, read_samples
from hw4.stages import mlp_select, report
from hw4.stages import seeds as seeds_stage
from hw4.tracking import runs as tracking
from hw4.tracking.provenance import device_description
from tests.conftest import artifact_paths, tiny_mlp_params, write_params

# A 1x1 PNG: the report embeds figures' bytes, it does not look at them.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
SIZES = [8, 16, 150]
SEEDS = [0, 1]
IMPLS = ["torch", "scratch"]
MODELS = ["rnn", "lstm", "blind"]
MODES = ["finetune", "freeze"]
PROBLEMS = ["Problem 1", "Problem 2", "Problem 3", "Problem 4", "Problem 5"]


def _png(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(PNG)


def _provenance(run_id: str, dataset: str = "fashion_mnist", standin: bool = False) -> dict:
    return {"run_id": run_id, "dataset": dataset, "standin": standin}


def _seed(record: dict, seed: int) -> dict:
    """One seed's record: each metric 0.001 below (seed 0) or above (seed 1) the mean wanted,
    so the summary's mean is the record's number and its std 0.0014."""
    shifted = {k: v + (2 * seed - 1) / 1000 if "/" in k else v for k, v in record.items()}
    return shifted | {"seed": seed, "run_id": f"{record['run_id'][:31]}{seed}"}


def write_fixture_outputs(run_ids: dict[str, str] | None = None) -> dict:
    """Every file the report reads, as the stages write them: two seeds' records, summarised by
    the real `mlp_select` and `seeds` stages (MLflow off: the ids are made up). Returns the
    summaries by evaluation."""
    ids = {"cnn@torch": "c" * 32, **(run_ids or {})}
    written: dict[str, dict] = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HW4_TRACKING", "off")
        _write_fixture_outputs(ids, written)
    return written


def _write_fixture_outputs(ids: dict[str, str], written: dict[str, dict]) -> None:
    _settings(Path.cwd())

    def put(evaluation: str, record: dict) -> None:
        for k in SEEDS:
            write_results(per_seed(Path(f"metrics/{evaluation}.json"), k), _seed(record, k))
        written[evaluation] = seeds_stage.run(evaluation, SEEDS) | {"run_id": record["run_id"]}
        write_results(Path(f"metrics/{evaluation}.json"), written[evaluation])  # the parent's made-up id

    write_results(Path("metrics/gradcheck.json"), {
        layer: {"passed": True, "gradcheck": True, "within_tolerance": True, "max_abs_err_out": 1.5e-6 * (i + 1), "max_abs_err_grad": 2.25e-6 * (i + 1)}
        for i, layer in enumerate(["linear", "relu", "conv2d", "maxpool2d"])
    } | {"run_id": "g" * 32})
    for i, h in enumerate(SIZES):
        for k in SEEDS:
            write_results(paths.mlp_point(h, k).metrics, _seed({"hidden": h, "val/acc": 0.8512 + i / 100, "val/acc_best": 0.8601 + i / 100,
                                                          **_provenance(f"{i}" * 32)}, k))
    written["mlp_select"] = mlp_select.run_select(SIZES, SEEDS)
    put("mlp/final", {"hidden": 150, "test/acc": 0.8623, **_provenance("f" * 32)})
    for i, impl in enumerate(IMPLS):
        put(f"cnn/{impl}", {"impl": impl, "test/acc": 0.9011 + i / 100, "train_time_s": 123.45 + i, "epochs": 3,
                            **_provenance(ids.get(f"cnn@{impl}", "d" * 32))})
        _png(f"plots/cnn/figures/{impl}/seed0.png")
    for i, model in enumerate(MODELS):
        scores = {f"val/bleu{n}": 0.5123 - n / 10 + i / 1000 for n in range(1, 5)} | {"val/cider": 0.4321 + i / 100}
        put(f"captioning/{model}", {"model": model, "train/loss": 2.3456, "val/loss": 2.5678, **scores,
                                    **_provenance(f"{model:x<32}", "coco2014-standin", True)})
        write_csv(Path(f"plots/captioning/curves/{model}/seed0.csv"),
                  [{"epoch": e, "train/loss": 3 - e / 2, "lr": 0.004, "val/loss": 3.1 - e / 3} for e in range(3)])
        write_samples(Path(f"plots/captioning/samples/{model}/seed0.txt"), [
            Sample("train", "train2014/a.jpg", f"a red circle {model} <END>", "<START> a red circle <END>"),
            Sample("val", "val2014/b.jpg", "a blue square <END>", "<START> a big blue square <END>"),
        ], f"captioning@{model}-0: generated captions and their ground truth (GT)")
        _png(f"plots/captioning/samples/{model}/seed0.png")
    for i, mode in enumerate(MODES):
        put(f"transfer/{mode}", {"mode": mode, "val/acc": 0.7123 + i / 10, "val/acc_best": 0.7345 + i / 10, "best_epoch": 2,
                                 "epochs": 4, "weights": "random", **_provenance(f"{mode:t<32}", "hymenoptera", True)})
        write_csv(Path(f"plots/transfer/curves/{mode}/seed0.csv"), [{"epoch": e, "val/acc": 0.5 + e / 10, "standin": True} for e in range(4)])


def _settings(work: Path) -> report.Settings:
    params = write_params(work / "params.yaml", profile="demo", report={"title": "HW4 test report"}, seeds=SEEDS,
                          mlp=tiny_mlp_params(hidden_sizes=SIZES), cnn={"impls": IMPLS}, captioning={"models": MODELS},
                          transfer={"modes": MODES})
    return report.load_settings(params)


@pytest.fixture
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow off: the report is written all the same, devices say "unknown"."""
    monkeypatch.setenv("HW4_TRACKING", "off")


def _row(markdown: str, first_cell: str) -> list[str]:
    """The cells of the first Markdown table row starting with `first_cell`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_every_section_is_in_both_reports(isolated_workdir: Path, no_tracking: None):
    write_fixture_outputs()
    report.run(_settings(isolated_workdir))
    md, page = paths.REPORT_MD.read_text(), paths.REPORT_HTML.read_text()
    for title in ["About this report", *PROBLEMS, "Sample captions", "The homework's samples"]:
        assert title in md and html.escape(title) in page, title
    assert "`demo`" in md and "<code>demo</code>" in page  # the params profile in the header
    assert "HW4 test report" in page and page.count("<img ") == md.count("![")
    for figure in ("mlp_sweep.png", "captioning_loss.png", "transfer_val_acc.png"):
        assert (paths.REPORT_FIGURES / figure).stat().st_size > 1000
        assert f"](figures/{figure})" in md
    assert "](../plots/cnn/figures/torch/seed0.png)" in md  # the first seed's figures


def test_numbers_equal_the_metrics_files_and_sit_beside_the_homeworks(isolated_workdir: Path, no_tracking: None):
    m = write_fixture_outputs()
    summary = report.run(_settings(isolated_workdir))
    md = paths.REPORT_MD.read_text()
    hw = homework.load()

    assert _row(md, "`conv2d`")[2:5] == ["4.50e-06", "6.75e-06", "pass"]
    assert f"Device: unknown. MLflow run: `{'g' * 32}`." in md
    # Means over the two seeds with their standard deviation; a point names both seeds' runs.
    assert _row(md, "16") == ["16", "0.8612 ± 0.0014", "—", "0.8701 ± 0.0014", "fashion_mnist", "unknown",
                              f"`{'1' * 31}0`, `{'1' * 31}1`"]
    assert _row(md, "150")[:4] == ["150", "0.8712 ± 0.0014", "0.9810", "0.8801 ± 0.0014"]  # the homework's figure beside
    assert _row(md, "10")[:3] == ["10", "—", "0.9496"]  # a size only the homework tried
    assert _row(md, "hidden units chosen")[1:3] == ["150", "150"]
    assert "150 units beat 16 by 0.0100 in mean val/acc, more than the seeds' spread (std 0.0014)" in md
    assert _row(md, "test accuracy, retrained")[1:4] == ["0.8623 ± 0.0014", "0.9767", "fashion_mnist"]
    assert _row(md, "`scratch`")[:5] == ["`scratch`", "0.9111 ± 0.0014", "0.9795", "124.5 s (2.1 min)", "about 35 minutes"]
    lstm = m["captioning/lstm"]
    assert _row(md, "`lstm`")[1:6] == [f"{lstm[k]:.4f} ± 0.0014" for k in (*(f"val/bleu{n}" for n in range(1, 5)), "val/cider")]
    assert _row(md, "`lstm`")[8] == "coco2014-standin (stand-in)"
    assert _row(md, "`freeze`")[1:8] == ["0.8123 ± 0.0014", "0.9346", "0.8345 ± 0.0014 (epoch 2)", "0.954248", "4", "24", "random"]
    assert "each number of a trained model is the mean ± standard deviation over them" in md
    assert "hymenoptera (stand-in)" in _row(md, "`freeze`")
    assert _row(md, "train")[1:] == ["`a red circle rnn <END>`", "`<START> a red circle <END>`"]  # a sample and its ground truth
    assert f"`{hw.captioning.samples[0].generated}`" in md
    assert "no BLEU or CIDEr-D" in md and "not expected to match" in md

    assert summary == json.loads(paths.REPORT_SUMMARY.read_text())
    assert summary["mlp"] == {"hidden": 150, "beats_runner_up_by_more_than_spread": True,
                              "val_acc": pytest.approx(0.8712), "val_acc_std": pytest.approx(2 ** 0.5 / 1000),
                              "test_acc": pytest.approx(0.8623), "test_acc_std": pytest.approx(2 ** 0.5 / 1000)}
    assert summary["cnn"]["torch"]["test_acc"] == m["cnn/torch"]["test/acc"]
    assert summary["captioning"]["blind"]["cider_std"] == m["captioning/blind"]["val/cider_std"]
    assert summary["transfer"]["freeze"]["val_acc_best"] == m["transfer/freeze"]["val/acc_best"]
    assert summary["gradcheck"] == {"layers_passed": 4, "layers": 4}


def test_the_html_is_self_contained(isolated_workdir: Path, no_tracking: None):
    write_fixture_outputs()
    report.run(_settings(isolated_workdir))
    page = paths.REPORT_HTML.read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "&lt;START&gt;" in page  # caption tokens escaped, not swallowed as tags


@pytest.mark.parametrize("missing, stage", [
    ("results/cnn/scratch.json", "cnn_seeds@scratch"),
    ("plots/transfer/curves/freeze/seed0.csv", "transfer@freeze-0"),
    ("plots/captioning/samples/blind/seed0.txt", "captioning@blind-0"),
    ("results/mlp/final.json", "mlp_final_seeds"),
    ("results/gradcheck.json", "gradcheck"),
])
def test_a_missing_output_names_the_file_and_its_stage(isolated_workdir: Path, no_tracking: None, missing: str, stage: str):
    write_fixture_outputs()
    Path(missing).unlink()
    with pytest.raises(MissingStageOutput, match=re.escape(missing)) as e:
        report.run(_settings(isolated_workdir))
    assert f"written by stage {stage}" in str(e.value) and f"dvc repro {stage}" in str(e.value)
    assert not paths.REPORT_MD.exists()


def test_the_command_line_says_what_is_missing_without_a_traceback(isolated_workdir: Path, no_tracking: None):
    _settings(isolated_workdir)
    with pytest.raises(SystemExit, match=r"(?s)report: .*results/gradcheck.json  \(written by stage gradcheck\)"):
        report.main(["--params", str(isolated_workdir / "params.yaml")])


def test_params_must_name_the_runs_to_summarise(isolated_workdir: Path):
    params = write_params(isolated_workdir / "params.yaml", profile="demo", cnn={"impls": IMPLS}, transfer={"modes": MODES})
    values = yaml.safe_load(params.read_text())
    del values["captioning"]["models"]
    params.write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="captioning.models"):
        report.load_settings(params)


def test_caption_samples_are_read_back_as_the_captioning_stage_wrote_them(isolated_workdir: Path):
    items = [Sample("train", "a.jpg", "x y <END>", "<START> x y <END>"), Sample("val", "b.jpg", "z: w", "GT: z")]
    samples = read_samples(write_samples(Path("s.txt"), items, "title"))
    assert [(s.split, s.generated, s.truth) for s in samples] == [(i.split, i.generated, i.truth) for i in items]


def test_the_homework_figures_are_the_write_ups():
    hw = homework.load()
    assert (hw.mlp.chosen_hidden, hw.mlp.chosen_val_acc, hw.mlp.test_acc) == (150, 0.9810, 0.9767)
    assert max(hw.mlp.val_acc, key=hw.mlp.val_acc.get) == hw.mlp.chosen_hidden and len(hw.mlp.val_acc) == 9
    assert hw.cnn.test_acc == 0.9795 and hw.transfer.epochs == 24
    assert (hw.transfer.modes["finetune"].final_val_acc, hw.transfer.modes["freeze"].best_val_acc) == (0.9216, 0.954248)
    assert [s.split for s in hw.captioning.samples] == ["train", "train", "val", "val"]


def test_the_mlflow_run_holds_the_reports_and_links_the_runs_it_summarises(isolated_workdir: Path):
    with tracking.StageRun("cnn", "cnn@torch", {"impl": "torch"}) as cnn_run:
        pass
    write_fixture_outputs({"cnn@torch": cnn_run.run_id})
    report.run(_settings(isolated_workdir))
    c = MlflowClient(tracking.tracking_uri())
    (run,) = c.search_runs([c.get_experiment_by_name("report").experiment_id])
    tags = run.data.tags
    assert tags["summarises.cnn_seeds.torch"] == cnn_run.run_id and tags["summarises.cnn.torch-1"] == cnn_run.run_id[:31] + "1"
    assert tags["summarises.mlp.150-0"] == "2" * 31 + "0" and tags["summarises.gradcheck"] == "g" * 32
    assert tags["data.standin"] == "true"
    assert cnn_run.run_id in tags[report.NOTE_TAG] and "transfer_seeds@freeze" in tags[report.NOTE_TAG]
    assert artifact_paths(c, run.info.run_id) == {"reports/report.md", "reports/report.html", "reports/summary.json"}
    md = paths.REPORT_MD.read_text()
    assert _row(md, "`torch`")[7] == device_description()  # read from the run's tag
    assert _row(md, "`scratch`")[7] == "unknown"  # a run this store does not hold
    assert f"run `{run.info.run_id}`" in md


INJECTIONS = [
    "[x](javascript:alert(1))",
    "![](http://tracker.example/pixel.png)",
    "<img src=x onerror=alert(1)> <http://example.com>",
    "a `code \\` then [y](javascript:alert(2)) and `more`",  # a backslash before a code span's backtick
    "*bold* _it_ ~~gone~~ http://bare.example",
]


def test_markdown_syntax_in_data_stays_text(isolated_workdir: Path):
    markdown_it = pytest.importorskip("markdown_it")
    from hw4.report.document import Document, Figure, Section, Table, Text
    from hw4.report.render import to_html, to_markdown

    _png("figures/f.png")
    doc = Document("# " + INJECTIONS[0], [Section(INJECTIONS[1], [
        *(Text(t) for t in INJECTIONS),
        Table(["caption", "truth"], [[t, f"`{t}`"] for t in INJECTIONS], caption=INJECTIONS[0]),
        Figure(Path("figures/f.png"), INJECTIONS[1]),
        Text("- a list item? 1. or a heading:"),
        Text("# heading"),
    ])])  # fmt: skip

    md = to_markdown(doc, Path("."))
    rendered = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)
    assert "<a " not in rendered and "<h1>heading" not in rendered and "<ul>" not in rendered
    assert "<em>bold</em>" not in rendered and "<em>it</em>" not in rendered and "<s>" not in rendered  # captions are *...* by design
    assert re.findall(r"<img [^>]*>", rendered) == [f'<img src="figures/f.png" alt="{html.escape(INJECTIONS[1], quote=True)}" />']
    assert "[x](javascript:alert(1))" in html.unescape(re.sub(r"<[^>]+>", "", rendered))  # still there, as text
    assert "fashion_mnist" == to_markdown(Document("fashion_mnist", []), Path(".")).split("\n")[0][2:]  # words keep _

    page = to_html(doc)  # the HTML was already safe: keep it so
    assert "<a " not in page and re.findall(r'<img src="(?!data:image/png;base64,)', page) == []
    assert "onerror" not in re.sub(r"&lt;img src=x onerror=alert\(1\)&gt;", "", page)
