"""hw4.config.seeds: where a seed's files go, and one record for several seeds' records."""

import statistics
from pathlib import Path

import pytest

from hw4.config.seeds import chosen_seed, summarise
from hw4.config.settings import ConfigError
from hw4.io.paths import per_seed
from hw4.stages.mlp_select import significance
from hw4.stages.seeds import experiment_of, stage_name


def test_a_seeds_files_go_one_folder_below_the_evaluations():
    assert per_seed(Path("metrics/cnn/torch.json"), 1) == Path("metrics/cnn/torch/seed1.json")
    assert per_seed(Path("checkpoints/cnn/torch"), 0) == Path("checkpoints/cnn/torch/seed0")
    assert per_seed(Path("models/transfer/freeze.pt"), 2) == Path("models/transfer/freeze/seed2.pt")


def test_the_seed_is_one_of_the_params_seeds():
    assert chosen_seed({"seeds": [3, 1]}, None) == 3  # the first when not given
    assert chosen_seed({"seeds": [3, 1]}, 1) == 1
    with pytest.raises(ConfigError, match=r"seed 2 is not in params seeds \[3, 1\]"):
        chosen_seed({"seeds": [3, 1]}, 2)
    for bad in ({}, {"seeds": []}, {"seeds": [0, 0]}, {"seeds": [0.5]}, {"seeds": "0"}):
        with pytest.raises(ConfigError, match="params 'seeds'"):
            chosen_seed(bad, None)


def test_a_summary_gives_mean_std_and_every_seed_and_keeps_settings():
    records = {
        0: {"test/acc": 0.90, "epochs": 3, "best_epoch": 1, "dataset": "fashion_mnist", "seed": 0, "run_id": "a", "standin": False},
        1: {"test/acc": 0.92, "epochs": 3, "best_epoch": 2, "dataset": "fashion_mnist", "seed": 1, "run_id": "b", "standin": False},
        2: {"test/acc": 0.97, "epochs": 3, "best_epoch": 2, "dataset": "fashion_mnist", "seed": 2, "run_id": "c", "standin": False},
    }
    s = summarise(records)
    assert s["test/acc"] == pytest.approx(0.93) and s["test/acc_std"] == pytest.approx(statistics.stdev([0.90, 0.92, 0.97]))
    assert s["best_epoch"] == pytest.approx(5 / 3) and "best_epoch_std" in s  # a number that varies is averaged
    assert s["epochs"] == 3 and "epochs_std" not in s  # an integer the same in every seed is a setting
    assert s["dataset"] == "fashion_mnist" and s["standin"] is False and "seed" not in s and "run_id" not in s
    assert s["seeds"] == [0, 1, 2] and s["run_ids"] == {"0": "a", "1": "b", "2": "c"}
    assert s["per_seed"]["2"] == {"test/acc": 0.97, "best_epoch": 2}


def test_one_seed_has_no_spread():
    s = summarise({0: {"val/acc": 0.8, "run_id": "a"}})
    assert s["val/acc"] == 0.8 and s["val/acc_std"] is None


def _point(accs: list[float]) -> dict:
    return summarise({k: {"val/acc": a} for k, a in enumerate(accs)})


def test_the_choice_is_weighed_against_the_seeds_spread():
    clear = significance({50: _point([0.80, 0.81]), 100: _point([0.90, 0.91])}, best=100)
    assert clear["runner_up"] == 50 and clear["margin"] == pytest.approx(0.10) and clear["beats_spread"] is True
    assert "more than the seeds' spread" in clear["verdict"]
    noisy = significance({50: _point([0.86, 0.90]), 100: _point([0.87, 0.90]), 10: _point([0.5, 0.5])}, best=100)
    assert noisy["runner_up"] == 50 and noisy["beats_spread"] is False and "less than" in noisy["verdict"]
    one_seed = significance({50: _point([0.8]), 100: _point([0.9])}, best=100)
    assert one_seed["spread"] is None and one_seed["beats_spread"] is None and "one seed" in one_seed["verdict"]


def test_evaluations_name_their_stage_and_experiment():
    assert stage_name("cnn/torch") == "cnn_seeds@torch" and stage_name("mlp/final") == "mlp_final_seeds"
    assert experiment_of("captioning/rnn") == "captioning"
    assert stage_name("svm/linear") == "svm_seeds@linear" and experiment_of("svm/linear") == "svm"  # a new stage
    assert experiment_of("transfer/resnet-18") == "transfer"  # matrix members need not be identifiers
    for bad in ("cnn", "cnn/", "cnn/torch/x", "../x", "cnn/..", "cnn/tor ch"):
        with pytest.raises(ConfigError, match="expected <task>/<name>"):
            experiment_of(bad)
    with pytest.raises(ConfigError, match="summarised by mlp_select"):
        experiment_of("mlp/h150")
