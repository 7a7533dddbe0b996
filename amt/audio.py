"""The audio stage: files → mono float32 at 44.1 kHz → windows → FFT magnitude spectra.

Everything downstream (mini-MusicNet windows, whole-recording transcription, sequence models)
reads audio through :func:`load_audio` and cuts it with the window functions here, so a
recording is treated the same way in training and in transcription.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile
import soxr

from amt.errors import AmtError
from amt.files import write_atomically
from amt.grid import SAMPLE_RATE, WINDOW_SIZE

MIN_RATE, MAX_RATE = 1_000, 768_000
"""Sample rates a file may declare: resampling from a header's absurd rate would need unbounded memory."""

SPECTRUM_CHUNK = 8_192
"""Windows per FFT call: bounds the complex intermediate to ≈ 70 MB."""


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav/flac/ogg file of any rate, bit depth and channel count.

    Returns mono float32 samples in [-1, 1] at ``sample_rate`` (channels are averaged,
    resampling uses soxr's high-quality filter). Raises :class:`AmtError` naming the file when
    it is missing, not audio, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AmtError(f"{path}: no such audio file")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AmtError(f"{path}: not a readable audio file ({error})") from None
    if samples.shape[0] == 0:
        raise AmtError(f"{path}: audio file holds no samples")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AmtError(f"{path}: its header gives a sample rate of {rate:,} Hz, outside {MIN_RATE:,}..{MAX_RATE:,} Hz")
    mono = samples.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AmtError(f"{path}: audio holds NaN or infinite samples")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return mono


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono samples as 16-bit PCM, wav or flac by the path's suffix, atomically (a half-written
    file never has the final name)."""

    def write(tmp: str) -> None:
        try:
            soundfile.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
        except (soundfile.LibsndfileError, RuntimeError) as error:  # libsndfile says only "System error."
            raise OSError(errno.EIO, str(error)) from None  # write_atomically tells a full disk apart

    write_atomically(path, Path(path).suffix or ".wav", write)


def cut_windows(samples: np.ndarray, centres: np.ndarray, size: int = WINDOW_SIZE) -> np.ndarray:
    """Windows of ``size`` samples around each centre, ``[len(centres), size]`` float32.

    A window covers ``[centre - size//2, centre + size//2)``; parts outside the recording are zeros
    (centres may lie up to half a window outside it, as the last sequential window's does).
    """
    centres = np.asarray(centres, dtype=np.int64)
    padded = np.pad(samples.astype(np.float32, copy=False), (size, size))
    index = (centres - size // 2 + size)[:, None] + np.arange(size, dtype=np.int64)[None, :]
    return padded[index]


def windows_around(samples: np.ndarray, centres: np.ndarray, size: int = WINDOW_SIZE) -> np.ndarray:
    """:func:`cut_windows` for a run of sorted centres, reading only the stretch of the recording they cover.

    ``cut_windows`` pads the array it gets, which for an hour of audio would be a 635 MB copy per call.
    """
    start = max(int(centres[0]) - size // 2, 0)
    stretch = samples[start : int(centres[-1]) + size // 2]
    return cut_windows(stretch, centres - start, size)


def peak_normalise(windows: np.ndarray) -> np.ndarray:
    """Scale each window so its peak magnitude is 1; silent windows stay all zeros."""
    peaks = np.abs(windows).max(axis=1, keepdims=True)
    return (windows / np.where(peaks > 0, peaks, 1.0)).astype(np.float32, copy=False)


def spectra(windows: np.ndarray, bins: int) -> np.ndarray:
    """FFT magnitudes ``abs(rfft(window))[:bins]`` of every window, ``[N, bins]`` float32.

    Vectorised over windows (scipy's multi-threaded FFT), in chunks so memory stays bounded.
    """
    if windows.ndim != 2:
        raise AmtError(f"windows must be [N, samples], got shape {windows.shape}")
    if not 0 < bins <= windows.shape[1] // 2 + 1:
        raise AmtError(f"bins must be in 1..{windows.shape[1] // 2 + 1}, got {bins}")
    out = np.empty((windows.shape[0], bins), dtype=np.float32)
    workers = os.cpu_count() or 1
    for start in range(0, windows.shape[0], SPECTRUM_CHUNK):
        chunk = np.asarray(windows[start : start + SPECTRUM_CHUNK], dtype=np.float32)
        out[start : start + len(chunk)] = np.abs(scipy.fft.rfft(chunk, axis=1, workers=workers)[:, :bins])
    return out
