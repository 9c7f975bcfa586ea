import json
from pathlib import Path

from hw4.io.outputs import record_path, write_results


def test_the_metrics_file_keeps_the_headline_numbers_and_the_record_keeps_everything(isolated_workdir: Path):
    record = {"val/acc": 0.9, "test/acc": 0.8, "train/loss": 0.3, "hidden": 16, "run_id": "abc", "standin": True,
              "points": {"16": 0.9}, "train_time_s": 1.5, "headline": ["hidden", "val/acc", "test/acc", "val/bleu4", "train_time_s"]}
    results, metrics = write_results(Path("metrics/mlp/final.json"), record)
    assert results == record_path(metrics) == Path("results/mlp/final.json")
    assert json.loads(results.read_text()) == record
    # under the evaluation's name, so `dvc exp show` heads the column `final.test/acc`
    assert json.loads(metrics.read_text()) == {"final": {"val/acc": 0.9, "test/acc": 0.8, "hidden": 16, "train_time_s": 1.5}}
    _, seed_metrics = write_results(Path("metrics/mlp/final/seed1.json"), record)
    assert json.loads(seed_metrics.read_text()) == json.loads(metrics.read_text())  # a seed's file: the same shape
