"""What every transcription model shares: its input width, its kind, its label space, and an auxiliary-loss hook.

A window model maps spectra ``[batch, bins]`` to note logits ``[batch, notes]``; a context model
(``context = True``) maps spectrogram excerpts ``[batch, frames, bins]`` to a dict of head logits
``[batch, frames, notes]`` and carries the frame grid it was trained on (``grid``; a window model runs
on any grid, so its ``grid`` is None). ``labels`` is the model's label space (:mod:`amt.labels`;
the report's 81 notes unless the model says otherwise). A model says how many bins it reads (``bins``, checked
against the data at start-up) and what extra loss term its last forward pass produced
(``auxiliary_loss()``, 0 unless the model has one), so the LightningModule adds the term
unconditionally instead of branching on the architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from amt.errors import AmtError
from amt.grid import FrameGrid
from amt.labels import REPORT_NOTES, LabelSpace


class TranscriptionModel(nn.Module):
    """Base class: stores ``bins`` and returns a zero auxiliary loss."""

    context: bool = False
    """Whether the model takes spectrogram excerpts and predicts onsets (a context model)."""
    grid: FrameGrid | None = None
    """A context model's frame grid; None for a window model, which runs on any."""
    labels: LabelSpace = REPORT_NOTES
    """The notes the model predicts, one output per note."""

    def __init__(self, bins: int):
        super().__init__()
        require_positive("bins", bins)
        self.bins = bins
        # A buffer, so the zero follows the model to its device and dtype; not saved in checkpoints.
        self.register_buffer("_no_auxiliary_loss", torch.zeros(()), persistent=False)

    def auxiliary_loss(self) -> torch.Tensor:
        """The extra loss term from the last forward pass (a scalar); 0 for models without one."""
        return self._no_auxiliary_loss


def require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise AmtError(f"model.{name} must be a positive integer, got {value!r}")


def require_dropout(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise AmtError(f"model.{name} must be a probability in [0, 1), got {value!r}")
