"""Callbacks for cross-cutting training work: per-epoch history and log lines, the loss/AP curves
figure, the progress bar, the best-checkpoint tracking that survives a resume into a new run folder,
and CPU threads that follow what other programs leave idle.

Epochs are counted from 1 everywhere a person reads them: the progress bar, the log lines,
``metrics.json``, ``curves.png`` and checkpoint names (Lightning counts from 0 inside).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

from amt.files import write_atomically
from amt.threads import CpuLoad, ThreadSettings

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger("amt.train")

CURVE_METRICS = ("train/loss", "val/loss", "train/ap", "val/ap")


def epoch_line(row: dict[str, float], max_epochs: int | None) -> str:
    """One epoch in one line: ``epoch 3/10: train loss 0.0571 AP 0.812 | val loss 0.0612 AP 0.794``."""
    parts = []
    for split in ("train", "val"):
        values = [
            f"{name} {row[key]:{fmt}}"
            for name, fmt in (("loss", ".4f"), ("AP", ".3f"))
            if (key := f"{split}/{name.lower()}") in row
        ]
        if values:
            parts.append(f"{split} " + " ".join(values))
    total = f"/{max_epochs}" if max_epochs and max_epochs > 0 else ""
    return f"epoch {row['epoch']}{total}: " + " | ".join(parts)


class TrainingCurves(L.Callback):
    """Records train/val loss and AP per epoch and draws them like the report's figures.

    Epoch-level metrics reach ``trainer.callback_metrics`` only after every non-monitoring
    callback's ``on_train_epoch_end`` has run, so an epoch is read when a checkpoint is saved (the
    checkpoint callback saves at the end of the epoch, after the metrics are logged), at the start of
    the next epoch, and when fitting ends. The history is part of the checkpoint, the epoch it was
    saved at included, so a resumed run draws its whole curve.
    """

    def __init__(self, path: str | Path, title: str = ""):
        self.path, self.title = Path(path), title
        self.history: list[dict[str, float]] = []

    def _record(self, trainer: L.Trainer) -> None:
        """Record (and log in one line) the last finished epoch, once."""
        epoch = trainer.fit_loop.epoch_progress.current.processed  # finished epochs, so counted from 1
        if epoch < 1 or any(row["epoch"] == epoch for row in self.history):
            return
        metrics = {
            name: float(trainer.callback_metrics[name]) for name in CURVE_METRICS if name in trainer.callback_metrics
        }
        if metrics:
            self.history.append({"epoch": epoch, **metrics})
            if trainer.is_global_zero:
                log.info(epoch_line(self.history[-1], trainer.max_epochs))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # The checkpoint's callback states were taken just before this hook: record the epoch being
        # saved and store the history again, so resuming from it keeps that epoch.
        self._record(trainer)
        checkpoint.setdefault("callbacks", {})[self.state_key] = self.state_dict()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer)
        if trainer.is_global_zero and self.history:
            plot_curves(self.history, self.path, self.title)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])


def plot_curves(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """Loss and AP against epoch (whole epochs), train and validation side by side, the best
    validation AP marked."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, quantity in zip(axes, ("loss", "ap"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [row.get(f"{split}/{quantity}", math.nan) for row in history]
            axis.plot(epochs, values, style, markersize=3, label=split)
        axis.set_xlabel("epoch")
        axis.set_ylabel("BCE loss" if quantity == "loss" else "micro average precision")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    scored = [row for row in history if not math.isnan(row.get("val/ap", math.nan))]
    if scored:
        best = max(scored, key=lambda row: row["val/ap"])
        axes[1].axvline(best["epoch"], color="0.5", linestyle=":", linewidth=1)
        late = best["epoch"] > (epochs[0] + epochs[-1]) / 2  # label on the side with room
        axes[1].annotate(
            f"best val AP {best['val/ap']:.3f}\n(epoch {best['epoch']})",
            (best["epoch"], best["val/ap"]),
            textcoords="offset points",
            xytext=(-6 if late else 6, -28),
            ha="right" if late else "left",
            fontsize=8,
        )
    for axis in axes:
        axis.legend(loc="best")
    figure.suptitle(title or f"training curves, {len(history)} epoch(s)")
    figure.tight_layout()
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


class ValidationPianoRoll(L.Callback):
    """Each validation epoch, the model's probabilities on the first validation batch drawn over its true
    notes (:func:`amt.plots.probability_roll`), for loggers that take images (W&B); ``frames`` frames."""

    def __init__(self, frames: int = 400):
        self.frames = frames
        self._batch = None

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self._batch = batch

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = [logger for logger in trainer.loggers if hasattr(logger, "log_image")]
        batch, self._batch = self._batch, None
        if batch is None or not loggers or not trainer.is_global_zero:
            return
        import torch

        from amt.plots import probability_roll

        spectra, targets = batch
        with torch.no_grad():
            outputs = pl_module(spectra)
        logits = outputs["frame"] if isinstance(outputs, dict) else outputs
        truth = targets["frame"] if isinstance(targets, dict) else targets
        epoch = trainer.current_epoch + 1
        image = probability_roll(
            logits.sigmoid().reshape(-1, logits.shape[-1])[: self.frames].float().cpu().numpy(),
            truth.reshape(-1, truth.shape[-1])[: self.frames].float().cpu().numpy(),
            f"validation excerpt, epoch {epoch}",
        )
        for logger in loggers:
            logger.log_image("val/piano_roll", [image], step=trainer.global_step, caption=[f"epoch {epoch}"])


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counting epochs from 1, showing the epoch's loss and AP (not the
    logger's version number), and off without a terminal (SLURM, nohup), where the one log line per
    epoch of :class:`TrainingCurves` says the same without filling a log with bar redraws."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not sys.stderr.isatty():
            self.disable()

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs > 0:
            description += f"/{self.trainer.max_epochs}"
        return f"{description:{len(self.validation_description)}}"  # as wide as "Validation": no flicker

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best score and path survive a resume into a new run folder.

    Lightning keeps them only when the folder is the same; a resumed train.py run writes a new run
    folder, so it would forget the best score and call its first epoch the best. Here the earlier best
    is carried over (and only this run's own checkpoints are ever deleted to keep the top k). And
    ``last.ckpt`` is written after every epoch: Lightning 2.6 writes it only beside a new best, so a
    run killed after epochs that did not improve would resume from its best epoch, not its last.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if (
            self.save_last
            and self._should_save_on_train_epoch_end(trainer)
            and not self._should_skip_saving_checkpoint(trainer)
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath or state_dict.get("best_model_score") is None:
            super().load_state_dict(state_dict)
            return
        self.best_model_path, self.best_model_score = state_dict["best_model_path"], state_dict["best_model_score"]
        self.best_k_models = {self.best_model_path: self.best_model_score}
        self.kth_best_model_path, self.kth_value = self.best_model_path, self.best_model_score

    def format_checkpoint_name(self, metrics: dict, *args, **kwargs) -> str:
        """Checkpoint names count epochs from 1, as the progress bar and metrics.json do."""
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, *args, **kwargs)

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if Path(filepath).parent == Path(self.dirpath):
            super()._remove_checkpoint(trainer, filepath)


class CpuThreads(L.Callback):
    """Torch's CPU threads from :class:`~amt.threads.ThreadSettings`: set when fitting starts, then
    again at every training epoch from the load other programs put on the machine during the last one,
    so a run gives way to a program that starts beside it and takes the cores back when it ends."""

    def __init__(self, settings: ThreadSettings):
        self.settings = settings
        self.load = CpuLoad()
        self.threads: int | None = None

    def _apply(self, wait: bool = False) -> None:
        threads = self.settings.apply(self.load, wait)
        if threads != self.threads:
            log.info("%d CPU thread(s) (threads.intra_op=%s)", threads, self.settings.intra_op)
        self.threads = threads

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._apply(wait=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._apply()  # epochs shorter than a measurement add up until one is long enough
