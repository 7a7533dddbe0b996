"""Note events: what a transcription is, its files (MIDI, note csv), and piano rolls.

A :class:`NoteEvent` is an onset and offset in seconds, a MIDI pitch and a velocity. Notes come from
MusicNet labels (:func:`events_from_musicnet`) or from frame probabilities through a decoder
(:mod:`amt.decode`), and go out as MIDI (:func:`write_midi`) or a note csv
``onset_s,offset_s,pitch,velocity`` (:func:`write_note_csv`). :func:`piano_roll` renders them back
onto frames with the labels' rule (a note sounds at frame ``i`` when ``onset <= t_i < offset``), so
decoding a piano roll and rendering the notes gives back exactly the frames decoded.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.files import csv_rows, write_atomically
from amt.grid import SAMPLE_RATE
from amt.labels import MIDI_WIDTH, LabelSpace, MusicNetLabels

REFERENCE_VELOCITY = 100
"""Velocity given to reference notes, which MusicNet labels do not carry."""

NOTE_CSV_COLUMNS = ("onset_s", "offset_s", "pitch", "velocity")
NOTE_CSV_SUFFIX = ".notes.csv"
"""A transcription's note csv is ``NAME.notes.csv``: never ``NAME.csv``, the name of a MusicNet label csv."""


@dataclass(frozen=True)
class NoteEvent:
    """One played note: onset and offset in seconds, MIDI pitch, MIDI velocity 1..127."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int = REFERENCE_VELOCITY


def write_midi(events: list[NoteEvent], path: str | os.PathLike, program: int = 0, name: str = "") -> None:
    """Write notes as a one-track MIDI file (General MIDI ``program``, 0 = piano), atomically; the track
    is called ``name`` (a DAW shows it), by default the file's."""
    import pretty_midi

    instrument = pretty_midi.Instrument(program=program, name=name or Path(path).stem)
    instrument.notes = [
        pretty_midi.Note(velocity=int(e.velocity), pitch=int(e.pitch), start=float(e.onset_s), end=float(e.offset_s))
        for e in events
    ]
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(instrument)
    write_atomically(path, ".mid", midi.write)


def write_note_csv(events: list[NoteEvent], path: str | os.PathLike) -> None:
    """Write notes as csv ``onset_s,offset_s,pitch,velocity`` (times to the microsecond), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(NOTE_CSV_COLUMNS)
            writer.writerows((f"{e.onset_s:.6f}", f"{e.offset_s:.6f}", e.pitch, e.velocity) for e in events)

    write_atomically(path, ".csv", write)


def read_note_csv(path: str | os.PathLike) -> list[NoteEvent]:
    """Read a note csv as :func:`write_note_csv` writes it; any system's notes can be given this way."""
    path = Path(path)
    events = []
    for line, row in csv_rows(path, NOTE_CSV_COLUMNS, "note csv"):
        try:
            event = NoteEvent(float(row["onset_s"]), float(row["offset_s"]), int(row["pitch"]), int(row["velocity"]))
        except (TypeError, ValueError):
            raise AmtError(f"{path}:{line}: unreadable row {dict(row)}") from None
        if not (0 <= event.onset_s < event.offset_s < np.inf):
            raise AmtError(f"{path}:{line}: a note needs 0 <= onset_s < offset_s")
        if not (0 <= event.pitch < MIDI_WIDTH and 1 <= event.velocity <= 127):
            raise AmtError(f"{path}:{line}: pitch must be 0..127 and velocity 1..127")
        events.append(event)
    return events


def events_from_musicnet(labels: MusicNetLabels) -> list[NoteEvent]:
    """The notes of MusicNet labels in seconds, sorted by onset; zero-length notes are left out.

    A note with ``end == start`` sounds at no sample, and mir_eval refuses it as a reference.
    """
    keep = labels.end > labels.start
    events = [
        NoteEvent(int(start) / SAMPLE_RATE, int(end) / SAMPLE_RATE, int(note))
        for start, end, note in zip(labels.start[keep], labels.end[keep], labels.note[keep], strict=True)
    ]
    return sorted(events, key=lambda e: (e.onset_s, e.pitch))


def piano_roll(events: list[NoteEvent], frame_times: np.ndarray, labels: LabelSpace) -> np.ndarray:
    """``[T, labels.notes]`` uint8: 1 where a note sounds at a frame time (onset <= t < offset).

    Notes outside the label space are left out; ``frame_times`` must be sorted.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    roll = np.zeros((len(frame_times), labels.notes), dtype=np.uint8)
    for event in events:
        if event.pitch in labels:
            first, stop = np.searchsorted(frame_times, (event.onset_s, event.offset_s), side="left")
            roll[first:stop, labels.index(event.pitch)] = 1
    return roll
