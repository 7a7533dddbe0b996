"""TranscriptionModule through a real Trainer, its AP metric against scikit-learn, and StagedLR."""

import functools
import logging
import re
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from amt.errors import AmtError
from amt.labels import REPORT_NOTES
from amt.metrics import ap_metric
from amt.models.base import TranscriptionModel
from amt.models.cnn import CNN1Layer, CNNMulti
from amt.module import TranscriptionModule
from amt.schedules import StagedLR

BINS = 128
ADAM = functools.partial(torch.optim.Adam, lr=1e-2)


@pytest.fixture(autouse=True)
def quiet_lightning():
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        yield


def separable_data(windows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Note k sounding puts a peak at bin k + 20 on top of noise: learnable by one small convolution."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(windows, REPORT_NOTES.notes, generator=generator) < 0.05).float()
    spectra = 0.3 * torch.rand(windows, BINS, generator=generator)
    spectra[:, 20 : 20 + REPORT_NOTES.notes] += labels
    return spectra, labels


def loader(spectra: torch.Tensor, labels: torch.Tensor, shuffle: bool = False) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(spectra, labels), batch_size=32, shuffle=shuffle)


def trainer(**kwargs) -> L.Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**options, **kwargs})


def test_a_tiny_cnn_learns_a_separable_problem_through_the_trainer():
    torch.manual_seed(0)
    module = TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM)
    fit = trainer(max_epochs=4)
    fit.fit(module, loader(*separable_data(2048, seed=1), shuffle=True), loader(*separable_data(512, seed=2)))
    metrics = fit.callback_metrics
    assert set(metrics) >= {"train/loss", "train/ap", "val/loss", "val/ap"}
    assert metrics["val/ap"] > 0.9, metrics  # chance level is ≈ 0.05, the fraction of notes on
    assert metrics["val/loss"] < 0.15
    tested = fit.test(module, loader(*separable_data(512, seed=3)), verbose=False)[0]
    assert tested["test/ap"] > 0.9 and set(tested) == {"test/loss", "test/ap"}


def test_the_ap_metric_matches_scikit_learn_micro_average_precision():
    preds = torch.tensor([[0.9, 0.1, 0.4], [0.35, 0.8, 0.1], [0.35, 0.6, 0.7], [0.05, 0.2, 0.9]])
    target = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]])
    preds = torch.cat([preds, torch.full((4, REPORT_NOTES.notes - 3), 0.01)], dim=1)  # tied negatives
    target = torch.cat([target, torch.zeros(4, REPORT_NOTES.notes - 3, dtype=torch.int64)], dim=1)
    target[0, 50] = 1  # a positive among the ties
    metric = ap_metric()
    metric.update(preds[:2], target[:2].int())
    metric.update(preds[2:], target[2:].int())
    expected = average_precision_score(target.numpy(), preds.numpy(), average="micro")
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


def test_logged_val_ap_is_the_exact_micro_ap_of_the_models_predictions():
    torch.manual_seed(0)
    model = CNN1Layer(bins=BINS, kernel_size=5)
    spectra, labels = separable_data(300, seed=4)  # 10 batches, the last one partial
    results = trainer().validate(TranscriptionModule(model, optimizer=ADAM), loader(spectra, labels), verbose=False)[0]
    with torch.no_grad():
        logits = model(spectra)
    expected_ap = average_precision_score(labels.numpy(), torch.sigmoid(logits).numpy(), average="micro")
    expected_loss = nn.functional.binary_cross_entropy_with_logits(logits, labels).item()
    assert results["val/ap"] == pytest.approx(expected_ap, abs=1e-5)
    assert results["val/loss"] == pytest.approx(expected_loss, rel=1e-5)


class ConstantPenalty(TranscriptionModel):
    """A linear model whose auxiliary loss is always 1."""

    def __init__(self):
        super().__init__(bins=BINS)
        self.linear = nn.Linear(BINS, REPORT_NOTES.notes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.linear(spectra)

    def auxiliary_loss(self) -> torch.Tensor:
        return torch.ones(())


def test_the_loss_adds_the_models_auxiliary_loss():
    torch.manual_seed(0)
    model = ConstantPenalty()
    spectra, labels = separable_data(64, seed=5)
    results = trainer().validate(TranscriptionModule(model, optimizer=ADAM), loader(spectra, labels), verbose=False)[0]
    with torch.no_grad():
        bce = nn.functional.binary_cross_entropy_with_logits(model(spectra), labels).item()
    assert results["val/loss"] == pytest.approx(bce + 1.0, rel=1e-5)


def test_train_ap_is_logged_even_when_an_epoch_is_shorter_than_its_sampling_interval():
    torch.manual_seed(0)
    module = TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM, train_ap_every=4)
    fit = trainer(max_epochs=1)
    fit.fit(module, loader(*separable_data(64, seed=6)))  # 2 batches
    assert 0.0 < fit.callback_metrics["train/ap"] <= 1.0


def test_optimizer_and_scheduler_factories_are_wired_for_lightning():
    model = CNN1Layer(bins=BINS, kernel_size=5)
    assert isinstance(TranscriptionModule(model, optimizer=ADAM).configure_optimizers(), torch.optim.Adam)
    plateau = functools.partial(ReduceLROnPlateau, mode="max")
    config = TranscriptionModule(model, optimizer=ADAM, scheduler=plateau).configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val/ap" and config["lr_scheduler"]["interval"] == "epoch"
    staged = functools.partial(StagedLR, lrs=[1e-2, 1e-3], epochs=[1, 1])
    config = TranscriptionModule(model, optimizer=ADAM, scheduler=staged).configure_optimizers()
    assert isinstance(config["lr_scheduler"]["scheduler"], StagedLR) and "monitor" not in config["lr_scheduler"]
    assert config["optimizer"].param_groups[0]["lr"] == 1e-2


def two_layer_cnn() -> CNNMulti:
    return CNNMulti(bins=BINS, layers=2, layers_per_skip=2, kernel_size=5)


def test_lr_scale_moves_the_named_layer_that_many_times_as_far_and_the_schedule_keeps_the_ratio():
    torch.manual_seed(0)
    model = two_layer_cnn()
    staged = functools.partial(StagedLR, lrs=[1e-2, 1e-3], epochs=[1, 1])
    scale = {"blocks.0.convs.0": 10.0}
    module = TranscriptionModule(model, optimizer=ADAM, scheduler=staged, lr_scale=scale)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    fit = trainer(max_epochs=1, limit_train_batches=1)
    fit.fit(module, loader(*separable_data(64, seed=4)))
    # Adam's first step moves every weight with a gradient by its group's rate, whatever the gradient's size.
    moved = {name: (p.detach() - before[name]).abs().max().item() for name, p in model.named_parameters()}
    assert moved["blocks.0.convs.0.weight"] == pytest.approx(10 * 1e-2, rel=1e-3)
    assert moved["blocks.0.convs.1.weight"] == pytest.approx(1e-2, rel=1e-3)
    assert moved["head.weight"] == pytest.approx(1e-2, rel=1e-3)
    rates = sorted(group["lr"] for group in fit.optimizers[0].param_groups)
    assert rates == pytest.approx([1e-3, 1e-2])  # the staged schedule's second stage, each group scaled alike


@pytest.mark.parametrize(
    ("lr_scale", "message"),
    [
        ({"encoder": 2.0}, "lr_scale names no parameters: ['encoder']; its modules include"),
        ({"blocks.0.conv": 2.0}, "lr_scale names no parameters"),  # a name, not a prefix of one
        ({"convs.0": 0}, "lr_scale['convs.0'] must be a positive number, got 0"),
        ({"convs.0": True}, "must be a positive number"),
    ],
)
def test_an_lr_scale_that_names_no_parameters_or_is_not_positive_is_refused(lr_scale, message):
    with pytest.raises(AmtError, match=re.escape(message)):
        TranscriptionModule(two_layer_cnn(), optimizer=ADAM, lr_scale=lr_scale)


def test_a_staged_schedule_steps_once_per_epoch_through_the_trainer():
    torch.manual_seed(0)
    staged = functools.partial(StagedLR, lrs=[1e-2, 1e-3], epochs=[1, 1])
    module = TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM, scheduler=staged)
    fit = trainer(max_epochs=2)
    fit.fit(module, loader(*separable_data(64, seed=7)))
    assert fit.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)


def test_a_checkpoint_is_plain_data_and_resumes(tmp_path):
    torch.manual_seed(0)
    staged = functools.partial(StagedLR, lrs=[1e-2, 1e-3], epochs=[1, 1])
    module = TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM, scheduler=staged)
    fit = trainer(max_epochs=1, default_root_dir=tmp_path)
    fit.fit(module, loader(*separable_data(64, seed=8)))
    path = tmp_path / "model.ckpt"
    fit.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["hyper_parameters"]
    assert saved == {
        "scheduler_monitor": "val/ap",
        "train_ap_every": 4,
        "model_config": None,
        "pos_weight": {},
        "lr_scale": {},
    }
    reloaded = TranscriptionModule.load_from_checkpoint(path, model=CNN1Layer(bins=BINS, kernel_size=5))
    spectra = torch.rand(3, BINS)
    torch.testing.assert_close(reloaded(spectra), module(spectra))
    resumed = trainer(max_epochs=2, default_root_dir=tmp_path)
    resumed.fit(
        TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM, scheduler=staged),
        loader(*separable_data(64, seed=8)),
        ckpt_path=path,
    )
    assert resumed.current_epoch == 2 and resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3)


def test_a_checkpoint_with_a_model_config_rebuilds_its_model_alone(tmp_path):
    config = {"_target_": "amt.models.cnn.CNNMulti", "bins": 64, "layers": 2, "layers_per_skip": 1, "kernel_size": 9}
    module = TranscriptionModule(model_config=config)
    assert isinstance(module.model, CNNMulti) and len(module.model.blocks) == 2
    fit = trainer(max_epochs=1, default_root_dir=tmp_path)
    fit.fit(module, loader(torch.rand(64, 64), (torch.rand(64, REPORT_NOTES.notes) < 0.05).float()))
    fit.save_checkpoint(tmp_path / "model.ckpt")
    reloaded = TranscriptionModule.load_from_checkpoint(tmp_path / "model.ckpt")
    spectra = torch.rand(3, 64)
    torch.testing.assert_close(reloaded(spectra), module(spectra))
    with pytest.raises(AmtError, match="needs a model"):
        TranscriptionModule()


@pytest.mark.parametrize("every", [0, -1, 1.5])
def test_a_bad_train_ap_interval_is_refused(every):
    with pytest.raises(AmtError, match="train_ap_every"):
        TranscriptionModule(CNN1Layer(bins=BINS, kernel_size=5), optimizer=ADAM, train_ap_every=every)


def learning_rates(scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def test_staged_lr_changes_rate_exactly_at_the_stage_boundaries():
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    rates = learning_rates(StagedLR(optimizer), 32)
    assert rates[:10] == pytest.approx([1e-3] * 10)
    assert rates[10:20] == pytest.approx([5e-4] * 10)
    assert rates[20:] == pytest.approx([1e-4] * 12)  # the last rate stays after the last stage


def test_staged_lr_scales_with_the_optimizers_rate_and_resumes_from_its_state():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = StagedLR(optimizer, lrs=[1.0, 0.5, 0.25], epochs=[2, 1, 1])
    assert learning_rates(scheduler, 3) == pytest.approx([2.0, 2.0, 1.0])
    resumed_optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2.0)
    resumed = StagedLR(resumed_optimizer, lrs=[1.0, 0.5, 0.25], epochs=[2, 1, 1])
    resumed.load_state_dict(scheduler.state_dict())
    resumed.step()
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("lrs", "epochs", "message"),
    [
        ([1e-3, 1e-4], [10], "one entry per stage"),
        ([], [], "one entry per stage"),
        ([1e-3, 0.0], [1, 1], "positive"),
        ([1e-3], [0], "positive integers"),
        ([1e-3], [2.5], "positive integers"),
    ],
)
def test_bad_staged_lr_config_raises_one_clear_amt_error(lrs, epochs, message):
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    with pytest.raises(AmtError, match=message):
        StagedLR(optimizer, lrs=lrs, epochs=epochs)


def test_micro_ap_of_random_scores_is_near_the_positive_rate():
    generator = np.random.default_rng(0)
    target = torch.from_numpy((generator.random((400, REPORT_NOTES.notes)) < 0.05).astype(np.int32))
    metric = ap_metric()
    metric.update(torch.rand(400, REPORT_NOTES.notes), target)
    assert abs(metric.compute().item() - target.float().mean().item()) < 0.02
