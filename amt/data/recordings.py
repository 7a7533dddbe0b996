"""Recordings in the MusicNet layout: finding them, their splits.

A folder of recordings holds ``ROOT/{split}_data/ID.wav`` with ``ROOT/{split}_labels/ID.csv`` (the
MusicNet layout, which every amt corpus uses) and, for evaluation, may also hold ``ID.wav`` beside
``ID.csv`` (the flat layout). Audio may be FLAC (``ID.flac``) instead of wav: a large corpus takes
about half the disk. amt's corpora also write each recording's performance MIDI,
``ROOT/{split}_midi/ID.mid``, which knows the velocities the csv lacks.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.grid import SAMPLE_RATE
from amt.labels import MusicNetLabels

SPLITS = ("train", "valid", "test")
"""The splits of every amt corpus and windows folder (mini-MusicNet's)."""
CORPUS_JSON = "corpus.json"
"""An amt corpus's record of its build (its parameters, one entry per recording), beside ``recordings/``."""
AUDIO_SUFFIXES = (".wav", ".flac")


def _audio_files(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.suffix in AUDIO_SUFFIXES] if folder.is_dir() else []


@dataclass(frozen=True)
class Recording:
    """One MusicNet-layout recording: ``ROOT/{split}_data/ID.wav`` (or ``.flac``) and ``ROOT/{split}_labels/ID.csv``."""

    id: str
    wav: Path
    csv: Path

    def velocities(self, labels: MusicNetLabels) -> np.ndarray | None:
        """Each label row's MIDI velocity (uint8, 0 where the performance has no such note), or None
        when the recording has no performance MIDI."""
        played = performed_velocities(self.csv)
        if played is None:
            return None
        onsets_ms = np.round(labels.start * 1000 / SAMPLE_RATE).astype(np.int64)
        return np.array(
            [played.get((int(p), int(ms)), 0) for p, ms in zip(labels.note, onsets_ms, strict=True)], dtype=np.uint8
        )


def _performance_midi(labels_csv: str | os.PathLike):
    """The performance MIDI beside a label csv (``ROOT/{split}_midi/ID.mid`` for
    ``ROOT/{split}_labels/ID.csv``, links followed, so a flat view of a corpus finds it too), read with
    pretty_midi; None when there is none."""
    labels_csv = Path(labels_csv).resolve()
    if not labels_csv.parent.name.endswith("_labels"):
        return None
    midi = labels_csv.parent.parent / labels_csv.parent.name.replace("_labels", "_midi") / f"{labels_csv.stem}.mid"
    if not midi.is_file():
        return None
    stat = midi.stat()
    return _read_midi(str(midi), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_midi(path: str, mtime_ns: int, size: int):
    """One MIDI file read with pretty_midi, kept while its time and size are unchanged: evaluation with
    diagnostics asks for a recording's velocities and then its pedal. Callers only read it."""
    import pretty_midi

    return pretty_midi.PrettyMIDI(path)


def performed_velocities(labels_csv: str | os.PathLike) -> dict[tuple[int, int], int] | None:
    """(MIDI pitch, onset in ms) → velocity of every note of the performance MIDI beside a label csv;
    None when there is none."""
    midi = _performance_midi(labels_csv)
    if midi is None:
        return None
    return {
        (note.pitch, round(note.start * 1000)): note.velocity
        for instrument in midi.instruments
        for note in instrument.notes
    }


def performed_pedal(labels_csv: str | os.PathLike) -> list[tuple[float, float]] | None:
    """The ``(down s, up s)`` intervals when any player of the performance MIDI beside a label csv holds
    the sustain pedal (CC64 at 64 or more); None when there is no performance MIDI."""
    from amt.data.render import SUSTAIN_PEDAL

    midi = _performance_midi(labels_csv)
    if midi is None:
        return None
    intervals = []
    for instrument in midi.instruments:
        down = None
        for change in sorted(instrument.control_changes, key=lambda c: c.time):
            if change.number != SUSTAIN_PEDAL:
                continue
            if change.value >= 64 and down is None:
                down = change.time
            elif change.value < 64 and down is not None:
                intervals.append((down, change.time))
                down = None
        if down is not None:
            intervals.append((down, midi.get_end_time()))
    return sorted(intervals)


def corpus_record(folder: str | os.PathLike) -> dict | None:
    """The corpus.json of the amt corpus a recordings folder belongs to (in it or beside it), or None."""
    folder = Path(folder)
    for candidate in (folder, folder.parent):
        if (candidate / CORPUS_JSON).is_file():
            return json.loads((candidate / CORPUS_JSON).read_text())
    return None


def id_order(recording_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order, then any others alphabetically."""
    return (0, int(recording_id), "") if recording_id.isdigit() else (1, 0, recording_id)


def find_recordings(root: Path, split: str) -> list[Recording]:
    """The recordings of one split of a MusicNet-layout folder, sorted by id.

    Fails with one line naming the path when the data folder is missing or holds no wavs, or
    when a wav has no label csv.
    """
    data, labels = Path(root) / f"{split}_data", Path(root) / f"{split}_labels"
    if not data.is_dir():
        raise AmtError(f"{data}: no such folder (MusicNet layout: ROOT/{split}_data/ID.wav)")
    wavs = sorted(_audio_files(data), key=lambda wav: id_order(wav.stem))
    if not wavs:
        raise AmtError(f"{data}: no .wav or .flac recordings in this folder")
    return _labelled([Recording(id=wav.stem, wav=wav, csv=labels / f"{wav.stem}.csv") for wav in wavs])


def _labelled(recordings: list[Recording]) -> list[Recording]:
    """``recordings``, refusing the first whose label csv is missing."""
    for recording in recordings:
        if not recording.csv.is_file():
            raise AmtError(f"{recording.wav}: no label file {recording.csv}")
    return recordings


def _flat_recordings(root: Path) -> list[Recording]:
    return _labelled([Recording(wav.stem, wav, wav.with_suffix(".csv")) for wav in sorted(_audio_files(root))])


def find_labelled_recordings(root: str | os.PathLike, split: str | None = None) -> list[Recording]:
    """Every recording of a folder: MusicNet layout (``SPLIT_data/ID.wav`` + ``SPLIT_labels/ID.csv``,
    any split names) and/or ``ID.wav`` beside ``ID.csv``; sorted by id, ids unique. With ``split``,
    only that split's recordings."""
    root = Path(root)
    if not root.is_dir():
        raise AmtError(f"{root}: no such folder")
    if split is not None:
        return find_recordings(root, split)
    splits = sorted(d.name.removesuffix("_data") for d in root.glob("*_data") if d.is_dir())
    recordings = [r for split in splits for r in find_recordings(root, split)] + _flat_recordings(root)
    if not recordings:
        raise AmtError(
            f"{root}: no recordings (expected SPLIT_data/ID.wav with SPLIT_labels/ID.csv, or ID.wav + ID.csv)"
        )
    ids = [r.id for r in recordings]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise AmtError(f"{root}: recording ids occur more than once: {', '.join(repeated)}")
    return sorted(recordings, key=lambda r: id_order(r.id))
