"""Callbacks for cross-cutting training work: per-epoch history and the loss/AP curves figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CURVE_METRICS = ("train/loss", "val/loss", "train/ap", "val/ap")


class TrainingCurves(L.Callback):
    """Records train/val loss and AP per epoch and draws them like the report's figures.

    Epoch-level metrics reach ``trainer.callback_metrics`` only after every non-monitoring
    callback's ``on_train_epoch_end`` has run, so an epoch is read at the start of the next one
    and the last epoch when fitting ends. The history is part of the checkpoint, so a resumed run
    draws its whole curve.
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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
