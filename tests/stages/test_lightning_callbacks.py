"""Lightning's own callbacks see the stages' metrics: EarlyStopping from params, the best
checkpoint (ModelCheckpoint), LearningRateMonitor, and a resume that reshuffles as before."""

import csv
import os
import signal
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

from hw4.data.loaders.caption_batches import CocoCaptions
from hw4.data.loaders.image_folders import ImageFolderData
from hw4.data.loaders.mnist_batches import MnistFamilyData
from hw4.io import paths
from hw4.models.captioner import Captioner, CaptionerConfig
from hw4.data.standins import hymenoptera as standin_hymenoptera
from hw4.models.mlp import MLP, MLPConfig
from hw4.models.resnet import ResNet18Config, resnet18_classifier
from hw4.stages import captioning, mlp, preprocess_coco, transfer
from hw4.tracking import runs as tracking
from hw4.training.captioning_module import CaptioningModule
from hw4.training.image_classifier import ImageClassifier
from hw4.training.tracked_module import OptimSettings
from hw4.training.trainer import Monitor, TrainerSettings, build_trainer
from hw4.training.transfer_module import TransferClassifier
from tests.conftest import TEST_TRAINER, conf_section, tiny_mlp_params, write_params
from tests.stages.test_captioning import raw_settings, stage_settings, tiny_standin
from tests.stages.test_transfer import tiny_settings

# An improvement of more than 1.0 in accuracy (or loss) never comes: the run stops after
# `patience` epochs past the first, on every machine, whatever the floats.
NEVER_ENOUGH = {"mode": "max", "patience": 2, "min_delta": 1.0}
OPTIM = OptimSettings(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, lr_decay=0.9)
ONE_CYCLE = OptimSettings(name="adam", lr=0.01, momentum=0.0, weight_decay=0.0, lr_decay=1.0, schedule="one_cycle")


class StopAfter(Callback):
    """Ends the fit after `epochs` epochs, as an interruption would: the rest of the fit
    (its schedule's total steps) is still the whole fit's."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module) -> None:
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


class SignalAt(Callback):
    """Sends this process `signum` as training item `item` of epoch `epoch` starts (None: as its
    validation starts), as a scheduler would: the handler runs between two Python instructions."""

    def __init__(self, signum: int, epoch: int, item: int | None):
        self.signum, self.epoch, self.item = signum, epoch, item

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.item):
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_start(self, trainer, module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if (trainer.current_epoch, batch_idx, self.item) == (self.epoch, 0, None):
            os.kill(os.getpid(), self.signum)


def _fit(data_path: Path, epochs: int, checkpoint_dir: Path | None = None, ckpt_path: Path | None = None,
         optim: OptimSettings = OPTIM, steps_per_call: int = 1, stop_after: int | None = None, callbacks=()):
    torch.manual_seed(0)
    data = MnistFamilyData(data_path, 50, 100, seed=0, steps_per_call=steps_per_call)
    module = ImageClassifier(MLP(MLPConfig(hidden=16)), optim, data.mean, data.std)
    inert = tracking.StageRun("unused", "unused", {})  # never entered: logs nothing
    trainer = build_trainer(conf_section("trainer", TrainerSettings, **TEST_TRAINER), inert, epochs,
                            checkpoint_dir=checkpoint_dir, best=Monitor("val/acc", "max") if checkpoint_dir else None,
                            callbacks=[StopAfter(stop_after)] if stop_after else list(callbacks))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer, module


def test_epoch_metrics_reach_lightnings_callback_metrics(tiny_prepared: Path):
    trainer, module = _fit(tiny_prepared, epochs=2)
    last = module.history[-1]
    assert set(trainer.callback_metrics) >= {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "lr"}
    for name in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"):
        assert trainer.callback_metrics[name].item() == last[name]  # float32 both ways: exact
    assert trainer.callback_metrics["lr"].item() == pytest.approx(last["lr"])


@pytest.mark.parametrize("optim", [OPTIM, ONE_CYCLE], ids=["exponential", "one_cycle"])
def test_a_resumed_fit_trains_what_an_uninterrupted_fit_trains(tiny_prepared: Path, tmp_path: Path, optim: OptimSettings):
    """Each epoch's order comes from its number (TensorBatches.set_epoch): a fit resumed from
    the last checkpoint takes the later epochs' batches, not the first epoch's again; a
    per-step schedule goes on from the step it had reached."""
    _, straight = _fit(tiny_prepared, epochs=3, optim=optim)
    _fit(tiny_prepared, epochs=3, checkpoint_dir=tmp_path, optim=optim, stop_after=2)
    _, resumed = _fit(tiny_prepared, epochs=3, ckpt_path=tmp_path / "last.ckpt", optim=optim)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert resumed.history == straight.history


@pytest.mark.parametrize(
    "signum, steps_per_call, item",
    [(signal.SIGTERM, 1, 2), (signal.SIGUSR1, 3, 2), (signal.SIGTERM, 1, None)],
    ids=["SIGTERM", "SIGUSR1-3-steps-per-item", "SIGTERM-in-validation"],
)
def test_a_fit_stopped_by_a_signal_mid_epoch_resumes_to_what_an_uninterrupted_fit_trains(
    tiny_prepared: Path, tmp_path: Path, signum: int, steps_per_call: int, item: int | None
):
    """The checkpoint taken at the signal is of that step (or of the end of the validation it
    came in): weights, optimiser, the one-cycle schedule, the loops' counters, the loader's
    place in the epoch's order and the epoch's training predictions so far; the resumed fit
    ends as the uninterrupted one, bit for bit."""
    _, straight = _fit(tiny_prepared, epochs=3, optim=ONE_CYCLE, steps_per_call=steps_per_call)
    with pytest.raises(SIGTERMException):
        _fit(tiny_prepared, epochs=3, checkpoint_dir=tmp_path, optim=ONE_CYCLE, steps_per_call=steps_per_call,
             callbacks=[SignalAt(signum, epoch=1, item=item)])
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # the fit's handlers are gone
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    items = 3 if item == 2 else 12 // steps_per_call  # the step the signal came in, included; or all
    assert saved["hw4_train_loader"] == {"epoch": 1, "items_done": items}
    assert saved["global_step"] == 12 + items * steps_per_call  # 600 images in batches of 50: 12 steps an epoch
    _, resumed = _fit(tiny_prepared, epochs=3, ckpt_path=tmp_path / "last.ckpt", optim=ONE_CYCLE, steps_per_call=steps_per_call)
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert resumed.history == straight.history


def _fit_module(module, data, best: Monitor, epochs: int, checkpoint_dir: Path | None, ckpt_path: Path | None, callbacks):
    """`module` fitted on `data` by the stages' Trainer, logging nothing; checkpoints (the best
    by `best`, and the last) only where `checkpoint_dir` is given."""
    inert = tracking.StageRun("unused", "unused", {})
    trainer = build_trainer(conf_section("trainer", TrainerSettings, **TEST_TRAINER), inert, epochs, checkpoint_dir=checkpoint_dir,
                            best=best if checkpoint_dir else None, callbacks=list(callbacks))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module


def _fit_captioner(epochs: int, checkpoint_dir: Path | None = None, ckpt_path: Path | None = None, callbacks=()):
    torch.manual_seed(0)
    data = CocoCaptions(paths.COCO, 4, 8, seed=0)
    v = data.vocab
    net = Captioner(CaptionerConfig(len(v), data.feature_dim, v.null, v.start, v.end, "lstm", wordvec_dim=8, hidden_dim=16))
    return _fit_module(CaptioningModule(net, ONE_CYCLE), data, Monitor("val/loss", "min"), epochs, checkpoint_dir, ckpt_path, callbacks)


@pytest.mark.slow
def test_a_captioner_stopped_by_a_signal_mid_epoch_resumes_to_what_an_uninterrupted_fit_trains(isolated_workdir: Path):
    """The captioner's checkpoint at the signal holds the epoch's loss so far (its MeanMetric's
    sum and weight): the resumed epoch's train/loss counts every step once, bit for bit."""
    tiny_standin(n_train=6, n_val=2)
    preprocess_coco.run(stage_settings(raw_settings(), seed=0))
    straight = _fit_captioner(epochs=2)
    with pytest.raises(SIGTERMException):
        _fit_captioner(epochs=2, checkpoint_dir=isolated_workdir / "ckpt", callbacks=[SignalAt(signal.SIGTERM, epoch=1, item=2)])
    saved = torch.load(isolated_workdir / "ckpt/last.ckpt", weights_only=False)
    assert saved["hw4_train_loss"]["weight"] > 0  # three batches' captions counted before the signal
    resumed = _fit_captioner(epochs=2, ckpt_path=isolated_workdir / "ckpt/last.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    assert resumed.history == straight.history


def _fit_transfer(root: Path, epochs: int, checkpoint_dir: Path | None = None, ckpt_path: Path | None = None, callbacks=()):
    torch.manual_seed(0)
    data = ImageFolderData(root, image_size=32, batch_size=4, workers=0, seed=0)
    module = TransferClassifier(resnet18_classifier(ResNet18Config(2)), OPTIM, step_size=1, gamma=0.5, num_classes=2)
    return _fit_module(module, data, Monitor("val/acc", "max"), epochs, checkpoint_dir, ckpt_path, callbacks)


@pytest.mark.slow
def test_transfer_stopped_by_a_signal_mid_epoch_resumes_to_what_an_uninterrupted_fit_trains(isolated_workdir: Path):
    """The image folders' loader starts the resumed epoch after the batches trained before the
    signal, and each image's random crop and flip are its own (seed, epoch, index): the
    resumed fit ends as the uninterrupted one, bit for bit (epoch times aside)."""
    standin_hymenoptera.generate(isolated_workdir, seed=0, per_class={"train": 6, "val": 2})
    root = isolated_workdir / "hymenoptera_data"
    straight = _fit_transfer(root, epochs=2)
    with pytest.raises(SIGTERMException):
        _fit_transfer(root, epochs=2, checkpoint_dir=isolated_workdir / "ckpt", callbacks=[SignalAt(signal.SIGTERM, epoch=1, item=1)])
    saved = torch.load(isolated_workdir / "ckpt/last.ckpt", weights_only=False)
    assert saved["hw4_train_loader"] == {"epoch": 1, "items_done": 2}  # of 3 batches of 4
    resumed = _fit_transfer(root, epochs=2, ckpt_path=isolated_workdir / "ckpt/last.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))

    def timeless(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]

    assert timeless(resumed.history) == timeless(straight.history)


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_a_one_cycle_schedule_spans_exactly_the_fits_optimiser_steps(tiny_prepared: Path, steps_per_call: int):
    """Warm-up to the peak rate, then annealed to its floor at the very last step: the
    schedule counts optimiser steps, several per training_step for the MLP."""
    trainer, module = _fit(tiny_prepared, epochs=3, optim=ONE_CYCLE, steps_per_call=steps_per_call)
    schedule = module.lr_schedulers()
    assert schedule.last_epoch == schedule.total_steps == trainer.global_step
    rates = [row["lr"] for row in module.history]  # each epoch's last step's
    assert rates[0] > ONE_CYCLE.lr / 2 and rates[0] > rates[1] > rates[2]
    assert rates[2] == pytest.approx(ONE_CYCLE.lr / 25 / 1e4)  # the floor, at the last step


@pytest.mark.slow
def test_early_stopping_from_params_stops_the_mlp_and_the_run_finishes(tiny_prepared: Path, isolated_workdir: Path):
    stopping = NEVER_ENOUGH | {"monitor": "val/acc"}
    s = mlp.load_settings(write_params(isolated_workdir / "params.yaml", mlp=tiny_mlp_params(epochs=10, early_stopping=stopping)))
    metrics = mlp.run_point(s, 16)

    assert metrics["epochs"] == 3  # the first epoch, then `patience` without an improvement
    client = MlflowClient(tracking.tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("mlp").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["mlp.early_stopping.monitor"] == "val/acc"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/acc")) == [0, 1, 2]
    # LearningRateMonitor's `lr`: the rate each epoch trained with.
    assert [m.value for m in client.get_metric_history(run.info.run_id, "lr")] == pytest.approx([0.1, 0.09, 0.081])

    # Lightning's best checkpoint holds the first epoch of the best validation accuracy.
    with Path("plots/mlp/curves/points/h16/seed0.csv").open() as f:
        accs = [float(row["val/acc"]) for row in csv.DictReader(f)]
    best = torch.load("checkpoints/mlp/points/h16/seed0/best.ckpt", weights_only=True)
    assert best["epoch"] == accs.index(max(accs))


@pytest.mark.slow
def test_early_stopping_from_params_stops_transfer(isolated_workdir: Path, monkeypatch: pytest.MonkeyPatch):
    from hw4.data.standins import hymenoptera as standin_hymenoptera

    monkeypatch.setenv("TORCH_HOME", str(isolated_workdir / "no_torch_cache"))
    standin_hymenoptera.generate(isolated_workdir / "data/raw/hymenoptera", seed=0, per_class={"train": 4, "val": 2})
    s = tiny_settings(isolated_workdir, epochs=5, modes=["freeze"], early_stopping=NEVER_ENOUGH | {"monitor": "val/acc", "patience": 1})
    metrics = transfer.run(s, "freeze")
    assert metrics["epochs"] == 2
    assert torch.load("models/transfer/freeze/seed0.pt", weights_only=True)["meta"]["epoch"] == metrics["best_epoch"]


@pytest.mark.slow
def test_early_stopping_from_params_stops_captioning(isolated_workdir: Path):
    tiny_standin(n_train=6, n_val=2)
    preprocess_coco.run(stage_settings(raw_settings(), seed=0))
    stopping = NEVER_ENOUGH | {"monitor": "val/loss", "mode": "min", "patience": 1}
    small = {"models": ["rnn"], "hidden_dim": 16, "wordvec_dim": 8, "epochs": 6, "max_train": 0, "early_stopping": stopping}
    s = captioning.load_settings(write_params(isolated_workdir / "params.yaml", captioning=small))
    metrics = captioning.run(s, "rnn")
    assert metrics["epochs"] == 2
    assert Path("checkpoints/captioning/rnn/seed0/best.ckpt").is_file()


class _HookNames(ImageClassifier):
    """Records the hook name Lightning has set when training_step runs."""

    def training_step(self, batch, batch_idx):
        self.seen = self.__dict__.get("_current_fx_name")
        return super().training_step(batch, batch_idx)


def test_lightning_still_names_the_running_hook_as_tracked_module_expects(tiny_prepared: Path):
    """TrackedModule.__setattr__ stores `_current_fx_name`, a Lightning internal, without
    nn.Module's search (benchmarks/bench_lightning.py): this fails when a Lightning release
    renames or stops setting it, and the override must then go."""
    data = MnistFamilyData(tiny_prepared, 50, 100, seed=0)
    module = _HookNames(MLP(MLPConfig(hidden=8)), OPTIM, data.mean, data.std)
    trainer = build_trainer(conf_section("trainer", TrainerSettings, **TEST_TRAINER), tracking.StageRun("unused", "unused", {}), 1,
                            limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    assert module.seen == "training_step"

