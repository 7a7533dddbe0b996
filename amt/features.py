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

With ``shortest_window`` the spectrogram is variable-Q, as a constant-Q transform is: each band is read
from the shortest of ``window``, ``window / 2``, … (not below ``shortest_window``) whose bins are no
wider than the band's half-width, so the upper bands see a 46 or 23 ms window instead of 93 ms and the
attacks of fast passages stay apart there, while the low bands keep the long window they need to be
resolved at all. Every window is centred on the frame's centre. A band is a weighted mean of its bins'
magnitudes, so a steady tone reads about alike whatever the window (a longer window's peak is higher by
as much as its bins are narrower).
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
    shortest_window: int | None = None

    def __post_init__(self):
        if not isinstance(self.bands_per_semitone, int) or not 1 <= self.bands_per_semitone <= 8:
            raise AmtError(f"bands_per_semitone must be 1..8, got {self.bands_per_semitone!r}")
        if not isinstance(self.bands_above, int) or not 0 <= self.bands_above <= 36:
            raise AmtError(f"bands_above must be 0..36 semitones, got {self.bands_above!r}")
        if self.shortest_window is not None and (
            not isinstance(self.shortest_window, int)
            or self.shortest_window < 256
            or self.shortest_window & (self.shortest_window - 1)
        ):
            raise AmtError(
                f"shortest_window must be a power of two of at least 256 samples, or null; got {self.shortest_window!r}"
            )

    @property
    def key_bands(self) -> int:
        """Bands over the 88 keys (the model's pitch axis)."""
        return PIANO_KEYS.notes * self.bands_per_semitone

    @property
    def bands(self) -> int:
        """All bands, those above C8 included."""
        return (PIANO_KEYS.notes + self.bands_above) * self.bands_per_semitone

    def centres_hz(self) -> np.ndarray:
        """Band centres in Hz."""
        return 440.0 * 2 ** ((self.centres_midi() - 69) / 12)

    def half_widths_hz(self) -> np.ndarray:
        """How far each band reaches either side of its centre: to the next band's centre."""
        return self.centres_hz() * (2 ** (1 / (12 * self.bands_per_semitone)) - 1)

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
    centres_hz = bands.centres_hz()
    if centres_hz[-1] >= sample_rate / 2:
        raise AmtError(f"bands_above={bands.bands_above} reaches past the Nyquist frequency ({sample_rate / 2:.0f} Hz)")
    half_width_hz = np.maximum(bands.half_widths_hz(), spacing_hz)
    weights = np.maximum(0.0, 1.0 - np.abs(bin_hz[:, None] - centres_hz[None, :]) / half_width_hz[None, :])
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


def band_windows(bands: LogFrequency, window: int, sample_rate: int) -> np.ndarray:
    """Each band's window length in samples: ``window``, or with ``bands.shortest_window`` the shortest
    of ``window``, ``window / 2``, … (not below ``shortest_window``) whose bin spacing is at most the
    band's half-width."""
    lengths = np.full(bands.bands, window)
    if bands.shortest_window is not None:
        half_widths_hz = bands.half_widths_hz()
        length = window // 2
        while length >= bands.shortest_window:
            lengths[sample_rate / length <= half_widths_hz] = length
            length //= 2
    return lengths


@dataclass(frozen=True)
class _Transform:
    """One window length's share of the spectrogram: its bands (columns) and the FFT bins they read."""

    length: int
    columns: np.ndarray
    bins: int
    taper: np.ndarray
    weights: np.ndarray


@functools.cache
def _transforms(bands: LogFrequency, window: int, sample_rate: int) -> tuple[_Transform, ...]:
    lengths = band_windows(bands, window, sample_rate)
    transforms = []
    for length in np.unique(lengths):
        columns = np.flatnonzero(lengths == length)
        weights = filterbank(bands, int(length), sample_rate)[:, columns]
        bins = int(np.flatnonzero(weights.any(axis=1))[-1]) + 1
        taper = np.hanning(length).astype(np.float32)
        transforms.append(_Transform(int(length), columns, bins, taper, np.ascontiguousarray(weights[:bins])))
    return tuple(transforms)


def log_frequency_spectrogram(samples: np.ndarray, grid: FrameGrid, bands: LogFrequency = DEFAULT_BANDS) -> np.ndarray:
    """``[frames, bands.bands]`` float32 features of a whole recording (see the module docstring)."""
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak > 0:
        samples = samples / peak
    centres = grid.recording_centres(len(samples))
    out = np.empty((len(centres), bands.bands), dtype=np.float32)
    for start in range(0, len(centres), CHUNK_FRAMES):
        chunk = centres[start : start + CHUNK_FRAMES]
        for part in _transforms(bands, grid.window, grid.sample_rate):
            windows = windows_around(samples, chunk, part.length) * part.taper
            magnitudes = np.abs(fft.rfft(windows, axis=1, workers=-1)[:, : part.bins]).astype(np.float32)
            out[start : start + len(chunk), part.columns] = np.log1p(magnitudes @ part.weights)
    return out
