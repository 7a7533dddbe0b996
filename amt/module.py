"""The one LightningModule: any transcription model, its loss, the AP metric, optimiser and schedule.

Per-epoch numbers, logged under ``{train,val,test}/{loss,ap}``: the mean loss (BCE-with-logits
plus the model's auxiliary loss) and the micro average precision over every (window, note) pair,
computed exactly (torchmetrics ``MultilabelAveragePrecision(average="micro")``, no threshold
binning), as MusicNet and the report define it.

Speed matters here: the 12-layer CNN's whole training step takes ≈ 5 ms on a CPU, and Lightning's
``self.log`` costs ≈ 0.5-1 ms a call. So nothing is logged per step; each step only updates the
stage's metric objects (≈ 30 µs each), and the epoch-end hooks log their values once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import hydra
import lightning as L
import torch
from torch import nn
from torch.nn import Parameter
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torchmetrics import Metric
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MultilabelAveragePrecision

from amt.errors import AmtError
from amt.notes import NUM_NOTES


def average_precision() -> MultilabelAveragePrecision:
    """The project's one AP metric: exact micro average precision over all (window, note) pairs.

    ``validate_args=False`` skips per-update input checks that cost more than the update itself;
    the inputs are always our own logits and 0/1 labels.
    """
    return MultilabelAveragePrecision(num_labels=NUM_NOTES, average="micro", validate_args=False)


class TranscriptionModule(L.LightningModule):
    """Trains, validates and tests a model mapping ``[batch, bins]`` spectra to ``[batch, 81]`` note logits.

    ``optimizer`` and ``scheduler`` are factories (Hydra ``_partial_: true``): ``optimizer(params)``
    and ``scheduler(optimizer)``; schedulers step once per epoch, and ``ReduceLROnPlateau`` watches
    ``scheduler_monitor``. Batches are ``(spectra float32 [B, bins], labels float32 [B, 81])``.

    Neither the model nor the optimiser/schedule factories are pickled into checkpoints (they
    would need ``torch.load(weights_only=False)`` to read back); instead ``model_config``, the
    model's plain Hydra config, is saved as a hyperparameter, and :func:`load_model` rebuilds the
    model from it and loads the weights. Resuming a run (``ckpt_path=``) rebuilds the factories
    from the run's own config.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[[Iterable[Parameter]], Optimizer],
        scheduler: Callable[[Optimizer], LRScheduler] | None = None,
        scheduler_monitor: str = "val/ap",
        train_ap_every: int = 1,
        model_config: dict | None = None,
    ):
        super().__init__()
        if not isinstance(train_ap_every, int) or train_ap_every < 1:
            raise AmtError(f"train_ap_every must be a positive integer, got {train_ap_every!r}")
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model, self.optimizer_factory, self.scheduler_factory = model, optimizer, scheduler
        self.criterion = nn.BCEWithLogitsLoss()
        # One metric object per stage, so validation inside a training epoch never mixes with it.
        self.train_ap, self.val_ap, self.test_ap = average_precision(), average_precision(), average_precision()
        # nan_strategy="disable": a NaN loss must show up as a NaN mean, not be dropped with a warning.
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.model(spectra)

    def _step(
        self, batch: tuple[torch.Tensor, torch.Tensor], ap: Metric | None, mean_loss: Metric
    ) -> torch.Tensor:
        spectra, labels = batch
        logits = self.model(spectra)
        loss = self.criterion(logits, labels) + self.model.auxiliary_loss()
        if ap is not None:
            # Probabilities, not logits: the metric applies a sigmoid only to batches with values
            # outside [0, 1], and AP ranks predictions across batches, so all must be on one scale.
            ap.update(logits.detach().sigmoid(), labels.int())
        mean_loss.update(loss.detach(), len(labels))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        sampled = batch_idx % self.hparams.train_ap_every == 0
        return self._step(batch, self.train_ap if sampled else None, self.train_loss)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_ap, self.val_loss)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.test_ap, self.test_loss)

    def _log_epoch(self, stage: str, ap: Metric, mean_loss: Metric) -> None:
        if ap.update_count:
            self.log_dict({f"{stage}/loss": mean_loss.compute(), f"{stage}/ap": ap.compute()})
        ap.reset()
        mean_loss.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_ap, self.train_loss)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_ap, self.val_loss)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_ap, self.test_loss)

    def configure_optimizers(self) -> Optimizer | dict:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        schedule = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, ReduceLROnPlateau):
            schedule["monitor"] = self.hparams.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def load_model(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The trained model of a train.py checkpoint, in eval mode, rebuilt from its saved config."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise AmtError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for files that are not checkpoints
        raise AmtError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    config = (checkpoint.get("hyper_parameters") or {}).get("model_config") if isinstance(checkpoint, dict) else None
    if not config or "state_dict" not in checkpoint:
        raise AmtError(f"{path}: not an amt train.py checkpoint (no model_config / state_dict)")
    model = hydra.utils.instantiate(config)
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise AmtError(f"{path}: weights do not fit {config.get('_target_')} ({str(error).splitlines()[0]})") from None
    return model.eval()
