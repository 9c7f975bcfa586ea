"""Transfer learning: what each mode trains, and the stage on tiny generated images."""

import json
from pathlib import Path

import pytest
import torch
import torchvision
from mlflow.tracking import MlflowClient
from torch.utils.data import DataLoader, TensorDataset

from hw4.config.settings import ConfigError
from hw4.data.loaders.image_folders import scan
from hw4.data.standins import hymenoptera as standin_hymenoptera
from hw4.models.resnet import ResNet18Config, resnet18_classifier
from hw4.stages import transfer
from hw4.tracking import runs as tracking
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import TrainerSettings, build_trainer
from hw4.training.transfer_module import TransferClassifier, mode_callbacks
from tests.conftest import TEST_TRAINER, artifact_paths, conf_section, write_params
from tests.stages.test_logged_models import run_in_fresh_process
from tests.unit.test_resnet_weights import save_named_by_hash

CPU = conf_section("trainer", TrainerSettings, **TEST_TRAINER)

VAL_ACCURACY = """
import json, sys
import mlflow, pandas as pd
samples = json.loads(sys.argv[2])  # [[file, label], ...]
out = mlflow.pyfunc.load_model(sys.argv[1]).predict(pd.DataFrame({"image": [open(f, "rb").read() for f, _ in samples]}))
hits = sum(int(c == label) for c, (_, label) in zip(out["class"], samples))
print(json.dumps({"acc": hits / len(samples), "labels": out["label"].tolist()}))
"""


def fit(mode: str, net: torch.nn.Module, epochs: int = 2) -> torch.optim.Optimizer:
    """Train on 16 random (3, 32, 32) images for `epochs`; the optimizer the Trainer built."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 3, 32, 32, generator=g), torch.arange(16) % 2)
    module = TransferClassifier(net, OptimSettings("sgd", lr=0.1, momentum=0.9, weight_decay=0.0, lr_decay=1.0), step_size=7, gamma=0.1, num_classes=2)
    inert = tracking.StageRun("unused", "unused", {})  # never entered: logs nothing
    trainer = build_trainer(CPU, inert, epochs, callbacks=mode_callbacks(mode))
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    return trainer.optimizers[0]


def snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers (batch-norm running statistics and batch counters)."""
    return {k: v.clone() for k, v in net.state_dict().items()}


def backbone_keys(state: dict) -> list[str]:
    return [k for k in state if not k.startswith("fc.")]


def test_freeze_trains_the_head_alone_and_keeps_batch_norm_statistics():
    net = resnet18_classifier(ResNet18Config(2))
    before = snapshot(net)
    optimizer = fit("freeze", net)
    after = net.state_dict()
    changed = [k for k in backbone_keys(before) if not torch.equal(before[k], after[k])]
    assert changed == []  # bit-identical, running_mean/var and num_batches_tracked included
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    assert not torch.equal(before["fc.bias"], after["fc.bias"])
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in net.fc.parameters()}


def test_finetune_trains_the_backbone_too():
    net = resnet18_classifier(ResNet18Config(2))
    before = snapshot(net)
    optimizer = fit("finetune", net, epochs=1)
    after = net.state_dict()
    for key in ("conv1.weight", "layer4.1.conv2.weight", "bn1.running_mean", "fc.weight"):
        assert not torch.equal(before[key], after[key]), key
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(net.parameters()))


def test_the_summary_reports_final_and_first_best_accuracy():
    history = [
        {"epoch": e, "val/acc": acc, "val/loss": 1.0, "train/loss": 1.0, "train/acc": 0.5, "epoch_time_s": 2.0}
        for e, acc in enumerate([0.5, 0.9, 0.9, 0.8])
    ]
    summary = transfer.best_epoch_summary(history)
    assert summary["val/acc"] == 0.8 and summary["val/acc_best"] == 0.9 and summary["best_epoch"] == 1
    assert summary["epochs"] == 4 and summary["epoch_time_s"] == 2.0


def tiny_settings(work: Path, **overrides) -> transfer.Settings:
    section = {
        "data_dir": "data/raw/hymenoptera/hymenoptera_data",
        "weights": "data/raw/resnet18_imagenet/resnet18-f37072fd.pth",
        "pretrained": "random",
        "epochs": 2,
        "batch_size": 4,
        "workers": 0,
        "image_size": 32,
        "lr": 0.01,
    }
    return transfer.load_settings(write_params(work / "params.yaml", transfer=section | overrides))


def test_a_mode_outside_the_params_list_is_refused(isolated_workdir: Path):
    with pytest.raises(ConfigError, match="not in params transfer.modes"):
        transfer.run(tiny_settings(isolated_workdir, modes=["freeze"]), "finetune")


@pytest.mark.parametrize("bad, message", [({"modes": []}, "at least one"), ({"pretrained": "yes"}, "not one of"), ({"epochs": 0}, "must be positive")])
def test_bad_params_stop_before_any_work(isolated_workdir: Path, bad: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        tiny_settings(isolated_workdir, **bad)


@pytest.mark.slow
def test_both_modes_on_the_standin(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(isolated_workdir / "no_torch_cache"))
    standin_hymenoptera.generate(isolated_workdir / "data/raw/hymenoptera", seed=0, per_class={"train": 6, "val": 4})
    initial = torchvision.models.resnet18(weights=None).state_dict()  # plays the ImageNet weights
    weights = save_named_by_hash(initial, isolated_workdir / "weights")
    s = tiny_settings(isolated_workdir, pretrained="imagenet", weights=str(weights))

    results = {mode: transfer.run(s, mode) for mode in ("freeze", "finetune")}
    assert all(r["train_images_per_s"] > 0 for r in results.values())  # 12 training images an epoch

    best = {mode: torch.load(f"models/transfer/{mode}/seed0.pt", weights_only=True) for mode in results}
    assert all(torch.equal(best["freeze"]["state_dict"][k], initial[k]) for k in backbone_keys(initial))
    assert not torch.equal(best["finetune"]["state_dict"]["conv1.weight"], initial["conv1.weight"])
    assert best["freeze"]["state_dict"]["fc.weight"].shape == (2, 512)
    assert best["freeze"]["meta"] | {"epoch": 0, "val/acc": 0} == {
        "mode": "freeze", "weights": "imagenet", "standin": True, "dataset": "hymenoptera",
        "classes": ["ants", "bees"], "epoch": 0, "val/acc": 0,
    }
    client = MlflowClient(tracking.tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("transfer").experiment_id])
    assert sorted(r.data.params["mode"] for r in runs) == ["finetune", "freeze"]
    for mode, metrics in results.items():
        on_disk = json.loads(Path(f"results/transfer/{mode}/seed0.json").read_text())
        assert on_disk == metrics and metrics["epochs"] == 2 and metrics["standin"] is True
        assert 0 <= metrics["val/acc"] <= metrics["val/acc_best"] <= 1 and metrics["weights"] == "imagenet"
        run = client.get_run(metrics["run_id"])
        assert run.data.metrics["val/acc_best"] == metrics["val/acc_best"] and "val/acc" in run.data.metrics
        assert run.data.params["data.train.skipped"] == "1" and run.data.tags["data.standin"] == "true"
        assert "STAND-IN" in run.info.run_name
        assert Path(f"plots/transfer/curves/{mode}/seed0.csv").read_text().startswith("epoch,train/loss,train/acc,val/loss,val/acc")
        assert Path(f"plots/transfer/figures/{mode}/seed0.png").is_file()
        assert artifact_paths(client, run.info.run_id) >= {
            f"results/transfer/{mode}/seed0.json", f"plots/transfer/curves/{mode}/seed0.csv", f"models/transfer/{mode}/seed0.pt"}

    # The champion, from its own files in a fresh process, classifies the validation images as its best epoch did.
    champion = client.get_model_version_by_alias("hw4-transfer-hymenoptera-standin", "champion")
    best = max(results.values(), key=lambda r: r["val/acc_best"])  # ties: freeze, registered first
    assert champion.tags["run_id"] == best["run_id"] and champion.tags["validation_score"] == repr(best["val/acc_best"])
    samples = [[str(path), label] for path, label in scan(Path(s.task.data_dir) / "val").samples]
    got = run_in_fresh_process(VAL_ACCURACY, "models:/hw4-transfer-hymenoptera-standin@champion", json.dumps(samples))
    assert got["acc"] == best["val/acc_best"] and set(got["labels"]) <= {"ants", "bees"}
