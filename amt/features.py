"""Log-frequency spectrograms of whole recordings, the input of the context models.

Frames lie on a frame grid (:class:`amt.grid.FrameGrid`): frame ``i`` is the 4,096-sample window
centred on sample ``c_i``, hopping ``grid.hop`` samples (the context models' 1,024, 23 ms).
Each window is Hann-weighted and ``abs(rfft)``-transformed, and the 2,049 linear bins are pooled
into :data:`BANDS` bands two per semitone (centres at MIDI 20.75, 21.25, …, 108.25: A0 to C8
with a quarter-tone margin), triangular in pitch. Below ≈ 370 Hz a semitone is narrower than an
FFT bin, so a band is never narrower than one bin each side: there it interpolates between the two
nearest bins. With two bands per semitone, transposing by ``k`` semitones is shifting by ``2k``
bands, which pitch-shift augmentation uses. Values are ``log1p(magnitude)`` of the recording
peak-normalised to 1, so a recording's level changes the features by an offset, not a shape.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, windows_around
from amt.errors import AmtError
from amt.grid import FrameGrid

BANDS_PER_SEMITONE = 2
LOWEST_BAND_MIDI = 20.75
BANDS = 176
"""Band centres MIDI 20.75 … 108.25 in steps of 0.5."""
CHUNK_FRAMES = 4096
"""Frames transformed at a time (64 MB of float32 windows)."""


def band_centres_midi() -> np.ndarray:
    return LOWEST_BAND_MIDI + np.arange(BANDS) / BANDS_PER_SEMITONE


@functools.cache
def filterbank() -> np.ndarray:
    """``[2049, BANDS]`` float32 weights; each band's weights sum to 1 (a weighted mean of magnitudes)."""
    bin_hz = np.arange(WINDOW_SIZE // 2 + 1) * SAMPLE_RATE / WINDOW_SIZE
    spacing_hz = SAMPLE_RATE / WINDOW_SIZE
    centres_hz = 440.0 * 2 ** ((band_centres_midi() - 69) / 12)
    step = 2 ** (1 / (12 * BANDS_PER_SEMITONE))
    half_width_hz = np.maximum(centres_hz * (step - 1), spacing_hz)
    weights = np.maximum(0.0, 1.0 - np.abs(bin_hz[:, None] - centres_hz[None, :]) / half_width_hz[None, :])
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


def log_frequency_spectrogram(samples: np.ndarray, grid: FrameGrid) -> np.ndarray:
    """``[frames, BANDS]`` float32 features of a whole recording (see the module docstring)."""
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 0:
        samples = samples / peak
    if grid.window != WINDOW_SIZE:
        raise AmtError(f"the log-frequency bands are made for {WINDOW_SIZE}-sample windows, not {grid.window}")
    centres = grid.recording_centres(len(samples))
    window = np.hanning(WINDOW_SIZE).astype(np.float32)
    weights = filterbank()
    out = np.empty((len(centres), BANDS), dtype=np.float32)
    for start in range(0, len(centres), CHUNK_FRAMES):
        chunk = centres[start : start + CHUNK_FRAMES]
        windows = windows_around(samples, chunk) * window
        magnitudes = np.abs(fft.rfft(windows, axis=1, workers=-1)).astype(np.float32)
        out[start : start + len(chunk)] = np.log1p(magnitudes @ weights)
    return out
