"""Label spaces and MusicNet label csvs.

Label spaces: runs of piano keys from A0 (MIDI 21), index 0 = A0. The report's models keep the
report's 81 notes (:data:`REPORT_NOTES`, A0 … F7 = MIDI 101; F#7..C8 never occur in mini-MusicNet);
the transcriber predicts all 88 keys (:data:`PIANO_KEYS`, A0 … C8 = MIDI 108). A model carries its
label space (``model.labels``; a context model's ``notes`` in its config and so its checkpoint), and
targets, decoders, evaluation and MIDI writing read it from there, or from the width of the model's
output, which names the space (:meth:`LabelSpace.of_width`). mini-MusicNet's labels are 128 wide (one
per MIDI pitch) and are cut down to a label space with :meth:`LabelSpace.cut`.

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
"""A0, the lowest piano key: index 0 of every label space."""
MIDI_WIDTH = 128
"""Width of mini-MusicNet's label vectors: one entry per MIDI pitch."""

MUSICNET_COLUMNS = ("start_time", "end_time", "instrument", "note", "start_beat", "end_beat", "note_value")
_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI number: 21 → 'A0', 60 → 'C4'."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


KNOWN_WIDTHS = (81, 88)


@dataclass(frozen=True)
class LabelSpace:
    """The ``notes`` piano keys from A0 upwards: 81 (the report's, A0..F7) or 88 (A0..C8)."""

    notes: int

    def __post_init__(self):
        if self.notes not in KNOWN_WIDTHS:
            widths = " or ".join(map(str, KNOWN_WIDTHS))
            raise AmtError(f"a label space has {widths} notes (A0..F7 or A0..C8), not {self.notes!r}")

    @classmethod
    def of_width(cls, width: int) -> LabelSpace:
        """The label space of a ``[..., width]`` piano roll or model output."""
        return cls(int(width))

    @property
    def lowest(self) -> int:
        return LOWEST_MIDI

    @property
    def highest(self) -> int:
        return LOWEST_MIDI + self.notes - 1

    def __contains__(self, midi: int) -> bool:
        return self.lowest <= midi <= self.highest

    def index(self, midi: int) -> int:
        """Label index of a MIDI pitch."""
        if midi not in self:
            raise ValueError(f"MIDI pitch {midi} is outside the label space {self.lowest}..{self.highest}")
        return midi - self.lowest

    def midi(self, index: int) -> int:
        """MIDI pitch of a label index."""
        return index + self.lowest

    def cut(self, labels: np.ndarray) -> tuple[np.ndarray, int]:
        """Cut ``[N, 128]`` MIDI-wide multi-hot labels to ``[N, notes]`` float32.

        Returns the cut labels and the number of active (window, pitch) labels that fell outside
        the space and were dropped, so callers can report them instead of losing them silently.
        """
        if labels.ndim != 2 or labels.shape[1] != MIDI_WIDTH:
            raise AmtError(f"labels must be [N, {MIDI_WIDTH}], got shape {labels.shape}")
        inside = labels[:, self.lowest : self.highest + 1]
        dropped = int(np.count_nonzero(labels)) - int(np.count_nonzero(inside))
        return inside.astype(np.float32), dropped


REPORT_NOTES = LabelSpace(81)
"""The report's 81 notes A0..F7 (MIDI 21..101): its models, and any checkpoint that names no label space."""
PIANO_KEYS = LabelSpace(88)
"""All 88 piano keys A0..C8 (MIDI 21..108): the transcriber's."""


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
