"""Label spaces and MusicNet label csvs.

Label space: 81 notes, index 0 = MIDI 21 (A0) … index 80 = MIDI 101 (F7), the range the report
keeps (F#7..C8 never occur in mini-MusicNet). mini-MusicNet's labels are 128 wide (one per MIDI
pitch) and are cut down to it with :func:`cut_to_label_space`.

MusicNet label csv: one row per played note, times as **sample indices at 44.1 kHz**:
``start_time,end_time,instrument,note,start_beat,end_beat,note_value``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.files import csv_rows, write_atomically

LOWEST_MIDI = 21
HIGHEST_MIDI = 101
NUM_NOTES = HIGHEST_MIDI - LOWEST_MIDI + 1
MIDI_WIDTH = 128
"""Width of mini-MusicNet's label vectors: one entry per MIDI pitch."""

MUSICNET_COLUMNS = ("start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value")
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI number: 21 → 'A0', 60 → 'C4'."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def midi_to_index(midi: int) -> int:
    """Label index of a MIDI pitch inside the 81-note label space."""
    if not LOWEST_MIDI <= midi <= HIGHEST_MIDI:
        raise ValueError(f"MIDI pitch {midi} is outside the label space {LOWEST_MIDI}..{HIGHEST_MIDI}")
    return midi - LOWEST_MIDI


def index_to_midi(index: int) -> int:
    """MIDI pitch of a label index."""
    return index + LOWEST_MIDI


def cut_to_label_space(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Cut ``[N, 128]`` MIDI-wide multi-hot labels to ``[N, 81]`` float32.

    Returns the cut labels and the number of active (window, pitch) labels that fell outside
    A0..F7 and were dropped, so callers can report them instead of losing them silently.
    """
    if labels.ndim != 2 or labels.shape[1] != MIDI_WIDTH:
        raise AmtError(f"labels must be [N, {MIDI_WIDTH}], got shape {labels.shape}")
    inside = labels[:, LOWEST_MIDI : HIGHEST_MIDI + 1]
    dropped = int(np.count_nonzero(labels)) - int(np.count_nonzero(inside))
    return inside.astype(np.float32), dropped


@dataclass(frozen=True)
class MusicNetLabels:
    """The rows of one MusicNet label csv as parallel arrays (times in samples at 44.1 kHz)."""

    start: np.ndarray  # int64
    end: np.ndarray  # int64
    instrument: np.ndarray  # int64, MusicNet/General MIDI program number
    note: np.ndarray  # int64, MIDI pitch
    start_beat: np.ndarray  # float64
    end_beat: np.ndarray  # float64
    note_value: np.ndarray  # object (str), e.g. "Quarter"

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> MusicNetLabels:
        """Build from ``(start, end, instrument, note, start_beat, end_beat, note_value)`` tuples."""
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(MUSICNET_COLUMNS)
        return cls(
            start=np.asarray(columns[0], dtype=np.int64),
            end=np.asarray(columns[1], dtype=np.int64),
            instrument=np.asarray(columns[2], dtype=np.int64),
            note=np.asarray(columns[3], dtype=np.int64),
            start_beat=np.asarray(columns[4], dtype=np.float64),
            end_beat=np.asarray(columns[5], dtype=np.float64),
            note_value=np.asarray(columns[6], dtype=object),
        )


def read_musicnet_csv(path: str | os.PathLike) -> MusicNetLabels:
    """Read a MusicNet label csv, failing with one clear line when it is not one.

    Times must be integer sample indices; a file whose times have fractions (seconds, as many
    other data sets write them) is refused rather than silently read as a 1,000× shorter piece.
    """
    path = Path(path)
    rows = []
    for line, row in csv_rows(path, MUSICNET_COLUMNS, "MusicNet label csv"):
        try:
            start, end = float(row["start_time"]), float(row["end_time"])
            rows.append(
                (
                    start,
                    end,
                    int(row["instrument"]),
                    int(row["note"]),
                    float(row["start_beat"]),
                    float(row["end_beat"]),
                    row["note_value"],
                )
            )
        except (TypeError, ValueError):
            raise AmtError(f"{path}:{line}: unreadable row {dict(row)}") from None
    times = np.array([r[:2] for r in rows], dtype=np.float64).reshape(-1, 2)
    if len(times) and (np.any(times != np.round(times)) or times.max() < 1_000):
        raise AmtError(
            f"{path}: times look like seconds; MusicNet csvs give start_time/end_time as sample indices at 44.1 kHz"
        )
    pitches = np.array([r[3] for r in rows], dtype=np.int64)
    if len(pitches) and (pitches.min() < 0 or pitches.max() >= MIDI_WIDTH):
        raise AmtError(f"{path}: note numbers must be MIDI pitches 0..127")
    if len(times) and np.any(times[:, 1] < times[:, 0]):
        line = int(np.argmax(times[:, 1] < times[:, 0])) + 2
        raise AmtError(f"{path}:{line}: end_time before start_time")
    return MusicNetLabels.from_rows(rows)


def write_musicnet_csv(path: str | os.PathLike, labels: MusicNetLabels) -> None:
    """Write labels as a MusicNet csv, rows sorted by start time, atomically."""
    order = np.lexsort((labels.note, labels.start))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MUSICNET_COLUMNS)
            for i in order:
                writer.writerow(
                    (
                        int(labels.start[i]),
                        int(labels.end[i]),
                        int(labels.instrument[i]),
                        int(labels.note[i]),
                        f"{labels.start_beat[i]:g}",
                        f"{labels.end_beat[i]:g}",
                        labels.note_value[i],
                    )
                )

    write_atomically(path, ".csv", write)


def sounding_at(labels: MusicNetLabels, samples: np.ndarray) -> np.ndarray:
    """Multi-hot ``[len(samples), 128]`` uint8: which MIDI pitches sound at each sample index.

    A note sounds at sample ``s`` when ``start <= s < end`` (MusicNet's interval convention).
    """
    samples = np.asarray(samples, dtype=np.int64)
    out = np.zeros((len(samples), MIDI_WIDTH), dtype=np.uint8)
    order = np.argsort(samples, kind="stable")
    ordered = samples[order]
    first = np.searchsorted(ordered, labels.start, side="left")
    counts = np.searchsorted(ordered, labels.end, side="left") - first
    counts = np.maximum(counts, 0)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    out[order[np.repeat(first, counts) + offsets], np.repeat(labels.note, counts)] = 1
    return out
