"""The one LightningModule: any transcription model, its loss, the AP metric, optimiser and schedule.

Per-epoch numbers, logged under ``{train,val,test}/{loss,ap}``: the mean loss (BCE-with-logits of
every probability head, the velocity head's squared error, plus the model's auxiliary loss) and the
micro average precision over (window, note) pairs (:func:`amt.metrics.ap_metric`, exact), as
MusicNet and the report define it.

The Trainer must stay close to a bare training loop for the small CNNs, whose steps take a few
milliseconds on a CPU: nothing is logged per step (Lightning's ``self.log`` costs about as much as
the step's metric updates), each step updates the stage's metric objects and the epoch-end hooks log
once. Exact AP keeps every prediction and sorts them all at epoch end, so ``train/ap`` is computed
on every ``train_ap_every``-th batch (a systematic sample of the epoch's windows, plus the last
batch); ``val/ap`` and ``test/ap`` always use every window. Binned AP is no way out: its per-step
update is far slower. The README gives the measurements behind these choices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import hydra
import lightning as L
import torch
from torch import nn
from torch.nn import Parameter
from torch.nn import functional as F
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torchmetrics import Metric
from torchmetrics.aggregation import MeanMetric

from amt.errors import AmtError
from amt.metrics import ap_metric

Batch = tuple[torch.Tensor, torch.Tensor | dict[str, torch.Tensor]]
REPORT_ADAM = functools.partial(torch.optim.Adam, lr=1e-3)
"""The report's optimiser, the default when a checkpoint is reloaded for inference."""


class TranscriptionModule(L.LightningModule):
    """Trains, validates and tests a model mapping ``[batch, bins]`` spectra to ``[batch, notes]`` note logits,
    or (context models) ``[batch, frames, bins]`` excerpts to a dict of ``[batch, frames, notes]`` head logits.

    ``optimizer`` and ``scheduler`` are factories (Hydra ``_partial_: true``): ``optimizer(params)``
    and ``scheduler(optimizer)``; schedulers step once per epoch, and ``ReduceLROnPlateau`` watches
    ``scheduler_monitor``. Batches are ``(spectra float32 [B, bins], labels float32 [B, notes])``, or
    for context models excerpts with a dict of targets named like the heads. The loss is the sum of
    the heads' losses (:meth:`head_loss`) plus ``model.auxiliary_loss()``. ``pos_weight`` maps a head's
    name to the weight of its positive targets in that head's BCE (``{"onset": 4.0}``): onsets are a
    frame per note, so a head trained on them unweighted learns to doubt the notes that are hard to hear.

    Checkpoints hold tensors and plain values only, so they load with ``torch.load(weights_only=True)``
    (the default since torch 2.6, which Lightning follows): neither the model nor the optimiser and
    schedule factories are pickled. ``model_config``, the model's plain Hydra config that train.py
    passes, is saved as a hyperparameter instead, so ``TranscriptionModule.load_from_checkpoint(path)``
    rebuilds a train.py checkpoint's model by itself (``amt.checkpoint.load`` reads the same
    entry); for a checkpoint without one, pass the architecture: ``load_from_checkpoint(path,
    model=CNNMulti())``. The optimiser then defaults to the report's Adam at 1e-3; resuming a run
    (``ckpt_path=``) gets its factories from the run's own config.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        optimizer: Callable[[Iterable[Parameter]], Optimizer] = REPORT_ADAM,
        scheduler: Callable[[Optimizer], LRScheduler] | None = None,
        scheduler_monitor: str = "val/ap",
        train_ap_every: int = 4,
        model_config: dict | None = None,
        pos_weight: dict[str, float] | None = None,
        lr_scale: dict[str, float] | None = None,
    ):
        super().__init__()
        if not isinstance(train_ap_every, int) or isinstance(train_ap_every, bool) or train_ap_every < 1:
            raise AmtError(f"train_ap_every must be a positive integer, got {train_ap_every!r}")
        if model is None:
            if model_config is None:
                raise AmtError("TranscriptionModule needs a model, or a model_config to build one from")
            model = hydra.utils.instantiate(model_config)
        pos_weight = dict(pos_weight or {})
        for head, weight in pos_weight.items():
            if head == "velocity" or not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
                raise AmtError(f"pos_weight[{head!r}] must be a positive number for a probability head, got {weight!r}")
        lr_scale = dict(lr_scale or {})
        parameter_groups(model, lr_scale)  # an unknown name or a bad scale fails here, not in fit
        self.save_hyperparameters(ignore=["model", "optimizer", "scheduler"])
        self.model = model
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        self.pos_weight, self.lr_scale = pos_weight, lr_scale
        # One metric object per stage, so validation inside a training epoch never mixes with it.
        notes = model.labels.notes
        self.train_ap, self.val_ap, self.test_ap = ap_metric(notes), ap_metric(notes), ap_metric(notes)
        # nan_strategy="disable": a NaN loss must show up as a NaN mean, not be dropped with a warning.
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.model(spectra)

    def _step(self, batch: Batch, ap: Metric | None, mean_loss: Metric) -> torch.Tensor:
        spectra, targets = batch
        outputs = self.model(spectra)
        # Window models return frame logits; context models a dict of heads ({"frame", "onset"}),
        # each with a target of the same name. Every head's loss counts; AP scores the frames.
        heads = outputs if isinstance(outputs, dict) else {"frame": outputs}
        targets = targets if isinstance(targets, dict) else {"frame": targets}
        loss = sum(self.head_loss(name, logits, targets[name]) for name, logits in heads.items())
        loss = loss + self.model.auxiliary_loss()
        notes = heads["frame"].shape[-1]
        frames, labels = heads["frame"].reshape(-1, notes), targets["frame"].reshape(-1, notes)
        if ap is not None:
            # Probabilities, not logits: the metric applies a sigmoid only to batches with values
            # outside [0, 1], and AP ranks predictions across batches, so all must be on one scale.
            ap.update(frames.detach().sigmoid(), labels.int())
        # The batch's mean once per frame, so batches weigh by size: MeanMetric's own weight argument
        # is ignored under nan_strategy="disable" (torchmetrics 1.9).
        mean_loss.update(loss.detach().expand(len(labels)))
        return loss

    def head_loss(self, name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE-with-logits for a probability head (its positive targets weighted by ``pos_weight``); for
        ``velocity``, the squared error of its sigmoid against velocity / 127, over the frames where a
        note with a known velocity starts (target > 0), as Onsets and Frames trains its velocity head."""
        if name != "velocity":
            weight = self.pos_weight.get(name, 1.0)
            return F.binary_cross_entropy_with_logits(
                logits, target, pos_weight=None if weight == 1.0 else logits.new_tensor(weight)
            )
        known = target > 0
        return ((logits.sigmoid() - target) ** 2 * known).sum() / known.sum().clamp(min=1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        # Batches train_ap_every - 1, 2 · train_ap_every - 1, … and the last: the sample skips the
        # first batch, whose untrained, saturated predictions would weigh train_ap_every times too
        # much in it, and still has a batch when an epoch is shorter than train_ap_every.
        position = batch_idx + 1
        sampled = position % self.hparams.train_ap_every == 0 or position == self.trainer.num_training_batches
        loss = self._step(batch, self.train_ap if sampled else None, self.train_loss)
        if batch_idx % self.trainer.log_every_n_steps == 0:  # the step-level curve, at the loggers' own pace
            self.log("train/step_loss", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, self.val_ap, self.val_loss)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, self.test_ap, self.test_loss)

    def _log_epoch(self, stage: str, ap: Metric, mean_loss: Metric) -> None:
        # The metric objects themselves: Lightning computes them (synced across processes by
        # torchmetrics) and resets them, where a logged tensor would draw a sync_dist warning under DDP.
        if mean_loss.update_count:
            self.log(f"{stage}/loss", mean_loss, prog_bar=stage != "test")
        if ap.update_count:
            self.log(f"{stage}/ap", ap, prog_bar=stage != "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_ap, self.train_loss)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_ap, self.val_loss)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_ap, self.test_loss)

    def configure_optimizers(self) -> Optimizer | dict:
        optimizer = self.make_optimizer(parameter_groups(self.model, self.lr_scale))
        for group in optimizer.param_groups:
            group["lr"] *= group["lr_scale"]
        if self.make_scheduler is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer)
        schedule = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, ReduceLROnPlateau):
            schedule["monitor"] = self.hparams.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def parameter_groups(model: nn.Module, lr_scale: dict[str, float]) -> list[dict]:
    """The model's parameters as optimiser groups, each with the ``lr_scale`` of the longest name in
    ``lr_scale`` that is it or a module above it (``{"encoder.convs.0": 10.0}``: the first convolution's
    weights), 1 for the rest; :meth:`TranscriptionModule.configure_optimizers` multiplies each group's
    learning rate by it, and a schedule then scales every group alike.

    Why: with Adam a weight moves by about the learning rate a step whatever its gradient's size, so
    weights that start at zero beside trained ones (a layer's new inputs grown in by amt/grow.py) stay
    small for thousands of steps at a fine-tuning rate; the layer's own rate is the lever."""
    for name, scale in lr_scale.items():
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            raise AmtError(f"lr_scale[{name!r}] must be a positive number, got {scale!r}")
    groups: dict[str | None, list[Parameter]] = {}
    for name, parameter in model.named_parameters():
        owners = [key for key in lr_scale if name == key or name.startswith(key + ".")]
        groups.setdefault(max(owners, key=len, default=None), []).append(parameter)
    if unknown := sorted(set(lr_scale) - set(groups)):
        raise AmtError(
            f"lr_scale names no parameters: {unknown}; "
            f"its modules include {sorted({name.rsplit('.', 1)[0] for name, _ in model.named_parameters()})[:12]}"
        )
    return [{"params": parameters, "lr_scale": float(lr_scale.get(key, 1.0))} for key, parameters in groups.items()]
