"""Log-frequency spectrograms of whole recordings, the input of the context models.

Frames lie on a frame grid (:class:`amt.grid.FrameGrid`): frame ``i`` is the ``grid.window``-sample
window centred on sample ``c_i``, hopping ``grid.hop`` samples (the context models' default: 4,096
samples every 1,024, 93 ms every 23 ms). Each window is Hann-weighted and ``abs(rfft)``-transformed,
and the linear bins are pooled into bands, ``bands_per_semitone`` to a semitone, triangular in
pitch (:class:`LogFrequency`). The bands cover the 88 keys A0..C8 (with the default two per
semitone: 176 bands, centres MIDI 20.75, 21.25, …, 108.25, a quarter-tone margin) and, with
``bands_above``, that many semitones more above C8, where the upper harmonics of the top notes lie
(for harmonic stacking). Where a semitone is narrower than an FFT bin (low notes, short windows), a
band is never narrower than one bin each side: there it interpolates between the two nearest bins.
With ``k`` bands per semitone, transposing by ``s`` semitones is shifting by ``k·s`` bands, which
pitch-shift augmentation and harmonic stacking use. Values are ``log1p(magnitude)`` of the recording
peak-normalised to 1, so a recording's level changes the features by an offset, not a shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import fft

from amt.audio import windows_around
from amt.errors import AmtError
from amt.grid import FrameGrid
from amt.labels import PIANO_KEYS

CHUNK_FRAMES = 4096
"""Frames transformed at a time (64 MB of float32 windows at 4,096 samples)."""


@dataclass(frozen=True)
class LogFrequency:
    """The bands of the log-frequency spectrogram: ``bands_per_semitone`` per semitone over A0..C8
    and ``bands_above`` semitones above it."""

    bands_per_semitone: int = 2
    bands_above: int = 0

    def __post_init__(self):
        if not isinstance(self.bands_per_semitone, int) or not 1 <= self.bands_per_semitone <= 8:
            raise AmtError(f"bands_per_semitone must be 1..8, got {self.bands_per_semitone!r}")
        if not isinstance(self.bands_above, int) or not 0 <= self.bands_above <= 36:
            raise AmtError(f"bands_above must be 0..36 semitones, got {self.bands_above!r}")

    @property
    def key_bands(self) -> int:
        """Bands over the 88 keys (the model's pitch axis)."""
        return PIANO_KEYS.notes * self.bands_per_semitone

    @property
    def bands(self) -> int:
        """All bands, those above C8 included."""
        return (PIANO_KEYS.notes + self.bands_above) * self.bands_per_semitone

    def centres_midi(self) -> np.ndarray:
        """Band centres in (fractional) MIDI pitch: each semitone's bands spread evenly around it."""
        k = self.bands_per_semitone
        offsets = (np.arange(k) - (k - 1) / 2) / k
        semitones = PIANO_KEYS.lowest + np.arange(PIANO_KEYS.notes + self.bands_above)
        return (semitones[:, None] + offsets[None, :]).ravel()


DEFAULT_BANDS = LogFrequency()
"""Two bands a semitone over A0..C8: what the first context models were trained on."""
BANDS = DEFAULT_BANDS.bands
"""The default bands' count (176)."""


@functools.cache
def filterbank(bands: LogFrequency, window: int, sample_rate: int) -> np.ndarray:
    """``[window // 2 + 1, bands.bands]`` float32 weights; each band's sum to 1 (a weighted mean of magnitudes)."""
    spacing_hz = sample_rate / window
    bin_hz = np.arange(window // 2 + 1) * spacing_hz
    centres_hz = 440.0 * 2 ** ((bands.centres_midi() - 69) / 12)
    if centres_hz[-1] >= sample_rate / 2:
        raise AmtError(f"bands_above={bands.bands_above} reaches past the Nyquist frequency ({sample_rate / 2:.0f} Hz)")
    step = 2 ** (1 / (12 * bands.bands_per_semitone))
    half_width_hz = np.maximum(centres_hz * (step - 1), spacing_hz)
    weights = np.maximum(0.0, 1.0 - np.abs(bin_hz[:, None] - centres_hz[None, :]) / half_width_hz[None, :])
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


def log_frequency_spectrogram(samples: np.ndarray, grid: FrameGrid, bands: LogFrequency = DEFAULT_BANDS) -> np.ndarray:
    """``[frames, bands.bands]`` float32 features of a whole recording (see the module docstring)."""
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 0:
        samples = samples / peak
    centres = grid.recording_centres(len(samples))
    window = np.hanning(grid.window).astype(np.float32)
    weights = filterbank(bands, grid.window, grid.sample_rate)
    out = np.empty((len(centres), bands.bands), dtype=np.float32)
    for start in range(0, len(centres), CHUNK_FRAMES):
        chunk = centres[start : start + CHUNK_FRAMES]
        windows = windows_around(samples, chunk, grid.window) * window
        magnitudes = np.abs(fft.rfft(windows, axis=1, workers=-1)).astype(np.float32)
        out[start : start + len(chunk)] = np.log1p(magnitudes @ weights)
    return out
