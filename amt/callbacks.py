"""Callbacks for cross-cutting training work: per-epoch history, the loss/AP curves figure, and the
best-checkpoint tracking that survives a resume into a new run folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib
from lightning.pytorch.callbacks import ModelCheckpoint

from amt.files import write_atomically

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CURVE_METRICS = ("train/loss", "val/loss", "train/ap", "val/ap")


class TrainingCurves(L.Callback):
    """Records train/val loss and AP per epoch and draws them like the report's figures.

    Epoch-level metrics reach ``trainer.callback_metrics`` only after every non-monitoring
    callback's ``on_train_epoch_end`` has run, so an epoch is read when a checkpoint is saved (the
    checkpoint callback saves at the end of the epoch, after the metrics are logged), at the start of
    the next epoch, and when fitting ends. The history is part of the checkpoint, the epoch it was
    saved at included, so a resumed run draws its whole curve.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.history: list[dict[str, float]] = []

    def _record(self, trainer: L.Trainer, epoch: int) -> None:
        if epoch < 0 or any(row["epoch"] == epoch for row in self.history):
            return
        metrics = {
            name: float(trainer.callback_metrics[name]) for name in CURVE_METRICS if name in trainer.callback_metrics
        }
        if metrics:
            self.history.append({"epoch": epoch, **metrics})

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch - 1)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # The checkpoint's callback states were taken just before this hook: record the epoch being
        # saved and store the history again, so resuming from it keeps that epoch.
        self._record(trainer, trainer.current_epoch)
        checkpoint.setdefault("callbacks", {})[self.state_key] = self.state_dict()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, trainer.current_epoch - 1)
        if trainer.is_global_zero and self.history:
            plot_curves(self.history, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and AP against epoch, train and validation, side by side."""
    epochs = [row["epoch"] + 1 for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, quantity in zip(axes, ("loss", "ap"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [row.get(f"{split}/{quantity}", math.nan) for row in history]
            axis.plot(epochs, values, style, markersize=3, label=split)
        axis.set_xlabel("epoch")
        axis.set_ylabel("BCE loss" if quantity == "loss" else "micro average precision")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best score and path survive a resume into a new run folder.

    Lightning keeps them only when the folder is the same; a resumed train.py run writes a new run
    folder, so it would forget the best score and call its first epoch the best. Here the earlier best
    is carried over (and only this run's own checkpoints are ever deleted to keep the top k).
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath or state_dict.get("best_model_score") is None:
            super().load_state_dict(state_dict)
            return
        self.best_model_path, self.best_model_score = state_dict["best_model_path"], state_dict["best_model_score"]
        self.best_k_models = {self.best_model_path: self.best_model_score}
        self.kth_best_model_path, self.kth_value = self.best_model_path, self.best_model_score

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if Path(filepath).parent == Path(self.dirpath):
            super()._remove_checkpoint(trainer, filepath)
