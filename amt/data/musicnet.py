"""MusicNet recordings → mini-MusicNet-format windows.

mini-MusicNet (github.com/jthickstun/mini-musicnet, ``construct.py``) takes 250 windows of 4,096
samples from every MusicNet recording, at centres spaced evenly from 10 s after the start to 10 s
before the end, peak-normalises each window, and labels it with the notes sounding at its centre.
This module does the same through the shared audio stage (:mod:`amt.audio`) and label space
(:mod:`amt.labels`), so any MusicNet-layout folder (the real MusicNet, or the synthetic corpus)
becomes a windows folder that :mod:`amt.data.minimusicnet` reads like the published files.

Differences from ``construct.py``, all deliberate:

- recordings are taken in id order (``construct.py`` used ``os.listdir`` order);
- an all-silent window stays zeros instead of becoming NaN (division by a zero peak);
- recordings shorter than four margins get a smaller margin (see :func:`window_centres`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.progress import Progress

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, cut_windows, load_audio, peak_normalise
from amt.data.minimusicnet import split_files
from amt.data.recordings import Recording, find_recordings, id_order
from amt.errors import AmtError
from amt.files import as_json, staging_folder
from amt.grid import WINDOW_GRID, FrameGrid
from amt.labels import MIDI_WIDTH, REPORT_NOTES, read_musicnet_csv, sounding_at

log = logging.getLogger(__name__)

LABEL_DTYPE = np.float64
"""mini-MusicNet's labels are float64: ``construct.py`` builds each one with ``np.zeros(128)``."""

AUDIO_DTYPE = np.float32
WINDOWS_JSON = "windows.json"
"""Written last into a windows folder; its presence (with matching params) marks the folder complete."""

# The split of mini-MusicNet, from github.com/jthickstun/mini-musicnet, construct.py: ``extratest``
# (moved from MusicNet's train to its test split) and ``validation`` (moved from train to valid).
EXTRA_TEST_IDS = (
    "2224", "2241", "1772", "2502", "2614", "2398", "2516", "2202", "1760", "2307",
    "1916", "1790", "2366", "2302", "2476", "2436", "1729", "2540", "2157", "1775",
    "2336", "2403", "2335", "2151", "1730", "1791", "2148", "2397", "2292", "2473",
)  # fmt: skip
VALIDATION_IDS = (
    "2390", "2391", "2341", "2227", "1755", "2244", "2532", "2560", "2611", "2575",
    "2117", "1829", "2422", "2215", "2178", "2119", "2229", "2632", "2371", "2383",
    "2491", "2506", "2140", "2195", "2393", "1818", "2228", "2075", "1811", "1788",
    "1807", "2593", "1735", "2510", "2373", "2627", "2308", "2156", "2112", "1931",
)  # fmt: skip


def window_centres(n_samples: int, count: int = 250, margin_s: float = 10.0) -> np.ndarray:
    """``count`` evenly spaced window centres, skipping ``margin_s`` at each end, as ``construct.py``.

    ``construct.py`` uses ``np.linspace(10*fs, length - 10*fs, num=250).astype(np.int32)``; for a
    recording of at least four margins (40 s by default, every MusicNet recording) the centres
    here are exactly those. A shorter recording would have its centres run backwards, so its
    margin shrinks to a quarter of its length (half of it is still sampled), but never below half
    a window, so every window lies inside the recording. A recording shorter than one window
    raises :class:`AmtError`.
    """
    if count < 1:
        raise AmtError(f"windows per recording must be at least 1, got {count}")
    if margin_s < 0:
        raise AmtError(f"margin must not be negative, got {margin_s} s")
    if n_samples < WINDOW_SIZE:
        raise AmtError(f"recording of {n_samples} samples is shorter than one window ({WINDOW_SIZE} samples)")
    margin = max(WINDOW_SIZE / 2, min(margin_s * SAMPLE_RATE, n_samples / 4))
    return np.linspace(margin, n_samples - margin, num=count).astype(np.int64)


def _labels_at(recording: Recording, centres: np.ndarray) -> np.ndarray:
    return sounding_at(read_musicnet_csv(recording.csv), centres).astype(LABEL_DTYPE)


def recording_windows(recording: Recording, count: int = 250, margin_s: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """mini-MusicNet's windows of one recording: float32 ``[count, 4096]`` and float64 ``[count, 128]``."""
    samples = load_audio(recording.wav)
    centres = window_centres(len(samples), count, margin_s)
    return peak_normalise(cut_windows(samples, centres)), _labels_at(recording, centres)


def sequential_windows(
    recording: Recording, grid: FrameGrid = WINDOW_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows over a whole recording on a frame grid, for transcribing and evaluating it.

    Returns ``(centres, windows, labels)``: centre sample indices ``[N]``, peak-normalised float32
    windows ``[N, 4096]`` and float64 labels ``[N, 128]`` (notes sounding at each centre).
    """
    samples = load_audio(recording.wav)
    centres = grid.recording_centres(len(samples))
    return centres, peak_normalise(cut_windows(samples, centres)), _labels_at(recording, centres)


def window_statistics(labels: np.ndarray) -> dict:
    """Label statistics of ``[N, 128]`` windows, for comparing a corpus with mini-MusicNet.

    Pitches are MIDI numbers; ``outside_label_space`` counts active (window, pitch) labels outside
    A0..F7, which the models' 81-note label space drops.
    """
    active = np.asarray(labels) != 0
    notes = active.sum(axis=1)
    histogram = active.sum(axis=0)
    pitches = np.flatnonzero(histogram)
    inside = histogram[REPORT_NOTES.lowest : REPORT_NOTES.highest + 1].sum()
    return {
        "windows": len(notes),
        "mean_notes_per_window": float(notes.mean()) if len(notes) else 0.0,
        "median_notes_per_window": float(np.median(notes)) if len(notes) else 0.0,
        "max_notes_per_window": int(notes.max()) if len(notes) else 0,
        "empty_share": float((notes == 0).mean()) if len(notes) else 0.0,
        "lowest_pitch": int(pitches[0]) if len(pitches) else None,
        "highest_pitch": int(pitches[-1]) if len(pitches) else None,
        "outside_label_space": int(histogram.sum() - inside),
        "pitch_histogram": [int(n) for n in histogram],
    }


def _new_npy(file: Path, dtype: type, shape: tuple[int, int]) -> np.memmap:
    """An .npy file of ``shape`` written through a memory map, so a 1 GB split is never held in memory."""
    return np.lib.format.open_memmap(file, mode="w+", dtype=dtype, shape=shape)


def _write_split(
    recordings: Sequence[Recording], folder: Path, split: str, count: int, margin_s: float, progress: Progress
) -> dict:
    """Write one split's npy files through memory maps; return its window statistics."""
    if not recordings:
        raise AmtError(f"split {split!r} has no recordings")
    audio_name, labels_name = split_files(split)
    n_windows = len(recordings) * count
    audio = _new_npy(folder / audio_name, AUDIO_DTYPE, (n_windows, WINDOW_SIZE))
    labels = _new_npy(folder / labels_name, LABEL_DTYPE, (n_windows, MIDI_WIDTH))
    task = progress.add_task(f"windows {split}", total=len(recordings))
    for i, recording in enumerate(recordings):
        rows = slice(i * count, (i + 1) * count)
        audio[rows], labels[rows] = recording_windows(recording, count, margin_s)
        progress.advance(task)
    audio.flush()
    labels.flush()
    statistics = window_statistics(labels)
    del audio, labels  # close the maps before the files are moved
    return statistics


def _publish(staging: Path, out: Path, names: Iterable[str]) -> None:
    """Move finished files from ``staging`` into ``out``, the completeness marker last.

    The old marker goes first, so while files are being swapped ``out`` never looks complete.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / WINDOWS_JSON).unlink(missing_ok=True)
    for name in names:
        os.replace(staging / name, out / name)
    os.replace(staging / WINDOWS_JSON, out / WINDOWS_JSON)


def write_windows(
    splits: Mapping[str, Sequence[Recording]],
    out: Path,
    windows_per_recording: int = 250,
    margin_s: float = 10.0,
    params: Mapping | None = None,
    progress: bool = True,
) -> Path:
    """Write ``out/audio-{split}.npy`` and ``out/labels-{split}.npy`` for every split, then ``windows.json``.

    Everything is built in a hidden sibling folder and moved into ``out`` only when every split
    is done, so an interrupted or failed build leaves ``out`` as it was. ``windows.json`` records
    ``params`` (the cache key checked by :func:`windows_complete`), the window settings, the
    recording ids of every split and their :func:`window_statistics`.
    """
    out = Path(out)
    with staging_folder(out.parent, f".{out.name}.building-") as staging:
        statistics = {}
        with Progress(disable=not progress) as bar:
            for split, recordings in splits.items():
                statistics[split] = _write_split(recordings, staging, split, windows_per_recording, margin_s, bar)
        record = {
            "params": as_json(dict(params or {})),
            "windows_per_recording": windows_per_recording,
            "margin_s": margin_s,
            "recordings": {split: [r.id for r in recordings] for split, recordings in splits.items()},
            "window_statistics": statistics,
        }
        (staging / WINDOWS_JSON).write_text(json.dumps(record, indent=1))
        _publish(staging, out, [name for split in splits for name in split_files(split)])
    return out


def windows_complete(out: Path, params: Mapping) -> bool:
    """Whether ``out`` holds a finished build with exactly these ``params``."""
    marker = Path(out) / WINDOWS_JSON
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("params") != as_json(dict(params)):
        return False
    names = [name for split in record.get("recordings", {}) for name in split_files(split)]
    return all((Path(out) / name).is_file() for name in names)


def mini_musicnet_splits(root: Path) -> dict[str, list[Recording]]:
    """The recordings of a MusicNet copy split as mini-MusicNet split them.

    valid = :data:`VALIDATION_IDS`; test = MusicNet's test recordings + :data:`EXTRA_TEST_IDS`;
    train = the rest. Reads ``train`` and ``test`` folders and, when present, a ``valid`` folder
    (``construct.py`` moves files into one), so a copy it has already rearranged splits the same.
    A copy lacking some listed recordings is split anyway, with a warning.
    """
    root = Path(root)
    folders = ["train", "test"] + (["valid"] if (root / "valid_data").is_dir() else [])
    found = {split: find_recordings(root, split) for split in folders}
    splits: dict[str, list[Recording]] = {"train": [], "valid": [], "test": []}
    for folder, recordings in found.items():
        for recording in recordings:
            if recording.id in VALIDATION_IDS:
                splits["valid"].append(recording)
            elif recording.id in EXTRA_TEST_IDS or folder == "test":
                splits["test"].append(recording)
            else:
                splits["train"].append(recording)
    present = {recording.id for recordings in found.values() for recording in recordings}
    missing = [i for i in VALIDATION_IDS + EXTRA_TEST_IDS if i not in present]
    if missing:
        log.warning(
            "%s lacks %d of mini-MusicNet's validation/extra-test recordings (%s); its splits will differ",
            root,
            len(missing),
            ", ".join(sorted(missing)),
        )
    return {split: sorted(recs, key=lambda r: id_order(r.id)) for split, recs in splits.items()}


class MusicNetWindows:
    """Windows source for a real MusicNet copy (ROOT with train_data/ train_labels/ test_data/ test_labels/)."""

    def __init__(
        self,
        musicnet_root: str | Path,
        out: str | Path,
        windows_per_recording: int = 250,
        margin_s: float = 10.0,
        progress: bool = True,
    ):
        self.musicnet_root = Path(musicnet_root)
        self.out = Path(out)
        self.windows_per_recording = windows_per_recording
        self.margin_s = margin_s
        self.progress = progress

    def prepare(self) -> Path:
        """Build mini-MusicNet windows in ``out``, or reuse a finished build of the same recordings."""
        splits = mini_musicnet_splits(self.musicnet_root)
        params = {
            "source": "musicnet",
            "musicnet_root": str(self.musicnet_root.resolve()),
            "windows_per_recording": self.windows_per_recording,
            "margin_s": self.margin_s,
            "recordings": {split: [r.id for r in recordings] for split, recordings in splits.items()},
        }
        if windows_complete(self.out, params):
            log.info("reusing the windows in %s", self.out)
            return self.out
        return write_windows(splits, self.out, self.windows_per_recording, self.margin_s, params, self.progress)
