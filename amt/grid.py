"""The frame grid: where a model's frames sit in a recording, owned once.

Frame ``i`` is the window of ``window`` samples centred on sample ``c_i = i · hop + window // 2``,
at time ``t_i = c_i / sample_rate``; it stands for the interval ``[c_i - hop/2, c_i + hop/2)``. The
first window starts at sample 0 (the report's back-to-back windows when ``hop == window``), and
windows continue while their start lies inside the recording, the last one zero-padded.

A context model carries its grid (its ``hop`` is part of its config and so of its checkpoint); a
window model can be run on any grid (``amt transcribe --hop``). Data, augmentation, decoding and
evaluation all read the grid instead of a hop of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from amt.errors import AmtError

SAMPLE_RATE = 44_100
"""Every array of samples in amt is at this rate (MusicNet's)."""

WINDOW_SIZE = 4_096
"""mini-MusicNet's window: 4,096 samples ≈ 93 ms."""


@dataclass(frozen=True)
class FrameGrid:
    """Frames of ``window`` samples every ``hop`` samples, at ``sample_rate``."""

    hop: int
    window: int = WINDOW_SIZE
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self):
        for name in ("hop", "window", "sample_rate"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise AmtError(f"the frame grid's {name} must be a positive number of samples, got {value!r}")

    @property
    def hop_s(self) -> float:
        """Seconds between frames."""
        return self.hop / self.sample_rate

    def count(self, n_samples: int) -> int:
        """How many frames cover a recording of ``n_samples``; refuses one shorter than a window."""
        if n_samples < self.window:
            raise AmtError(f"recording of {n_samples} samples is shorter than one window ({self.window} samples)")
        return -(-min(n_samples - self.window + self.hop, n_samples) // self.hop)

    def centres(self, frames: int) -> np.ndarray:
        """Centre samples (int64) of frames ``0 .. frames - 1``."""
        return np.arange(frames, dtype=np.int64) * self.hop + self.window // 2

    def recording_centres(self, n_samples: int) -> np.ndarray:
        """Centre samples of every frame over a recording of ``n_samples``."""
        return self.centres(self.count(n_samples))

    def times(self, frames: int) -> np.ndarray:
        """Times (s) of frames ``0 .. frames - 1``: their centres."""
        return self.centres(frames) / self.sample_rate

    def frame_of(self, samples: np.ndarray, frames: int) -> np.ndarray:
        """The frame whose interval holds each sample index, clipped to ``0 .. frames - 1``."""
        first_edge = self.window // 2 - self.hop // 2
        return np.clip((np.asarray(samples, dtype=np.int64) - first_edge) // self.hop, 0, frames - 1)


def own_grid(grid: FrameGrid, hop: int | None, name: str) -> FrameGrid:
    """A context model's ``grid``, which it keeps whatever ``hop`` was asked for (with a warning when
    that differs: a context model transcribes only on the grid it was trained on). ``name``: the model."""
    if hop is not None and hop != grid.hop:
        logging.getLogger(__name__).warning(
            "--hop %d is ignored: %s is a context model, which transcribes at its own hop (%d samples)",
            hop,
            name,
            grid.hop,
        )
    return grid


WINDOW_GRID = FrameGrid(hop=WINDOW_SIZE)
"""The report's back-to-back windows (93 ms): the default grid of window models."""
CONTEXT_GRID = FrameGrid(hop=WINDOW_SIZE // 4)
"""The context models' default grid (1,024 samples, 23 ms)."""
