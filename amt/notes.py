"""The label space, MusicNet label csvs, and note events.

Label space: 81 notes, index 0 = MIDI 21 (A0) … index 80 = MIDI 101 (F7), the range the report
keeps (F#7..C8 never occur in mini-MusicNet). mini-MusicNet's labels are 128 wide (one per MIDI
pitch) and are cut down to it with :func:`cut_to_label_space`.

MusicNet label csv: one row per played note, times as **sample indices at 44.1 kHz**:
``start_time,end_time,instrument,note,start_beat,end_beat,note_value``.

Note events (:class:`NoteEvent`: onset and offset in seconds, MIDI pitch, velocity) come from
frame probabilities through a decoder (:func:`decode`: ``naive``, ``hysteresis``, ``onsets``) and
go out as MIDI (:func:`write_midi`) or a note csv ``onset_s,offset_s,pitch,velocity``
(:func:`write_note_csv`); :func:`piano_roll` renders them back onto frames.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amt.audio import SAMPLE_RATE, WINDOW_SIZE
from amt.errors import AmtError

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


def csv_rows(path: Path, columns: Sequence[str], kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a csv that must have ``columns``; one clear error line otherwise."""
    if not path.is_file():
        raise AmtError(f"{path}: no such {kind}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise AmtError(f"{path}: not a {kind}, missing columns: {', '.join(missing)}")
        yield from enumerate(reader, start=2)


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((labels.note, labels.start))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
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
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


# --- note events ---------------------------------------------------------------------------------
#
# A model gives one probability per (frame, note). Frame i is the window centred on sample c_i, at
# time t_i = c_i / 44,100, and stands for the interval [t_i - hop/2, t_i + hop/2): a run of active
# frames i..j becomes the note [t_i - hop/2, t_j + hop/2) (onsets clipped at 0). Rendering notes back
# onto frames uses the labels' rule, a note sounds at frame i when onset <= t_i < offset, so
# decoding a piano roll and rendering the notes gives back exactly the frames decoded.

REFERENCE_VELOCITY = 100
"""Velocity given to reference notes, which MusicNet labels do not carry."""

NOTE_CSV_COLUMNS = ("onset_s", "offset_s", "pitch", "velocity")


@dataclass(frozen=True)
class NoteEvent:
    """One played note: onset and offset in seconds, MIDI pitch, MIDI velocity 1..127."""

    onset_s: float
    offset_s: float
    pitch: int
    velocity: int = REFERENCE_VELOCITY


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); mkstemp's files are 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: str | os.PathLike, suffix: str, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a hidden file beside ``path``, then move it into place.

    A failed write never leaves a half-written file under the final name; an unwritable ``path``
    raises :class:`AmtError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    except OSError as error:
        raise AmtError(f"{path}: cannot write here ({error.strerror or error})") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except OSError as error:
        raise AmtError(f"{path}: cannot write here ({error.strerror or error})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_midi(events: list[NoteEvent], path: str | os.PathLike, program: int = 0) -> None:
    """Write notes as a one-track MIDI file (General MIDI ``program``, 0 = piano), atomically."""
    import pretty_midi

    instrument = pretty_midi.Instrument(program=program)
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


def piano_roll(events: list[NoteEvent], frame_times: np.ndarray) -> np.ndarray:
    """``[T, 81]`` uint8: 1 where a note sounds at a frame time (onset <= t < offset).

    Notes outside the label space A0..F7 are left out; ``frame_times`` must be sorted.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    roll = np.zeros((len(frame_times), NUM_NOTES), dtype=np.uint8)
    for event in events:
        if LOWEST_MIDI <= event.pitch <= HIGHEST_MIDI:
            first, stop = np.searchsorted(frame_times, (event.onset_s, event.offset_s), side="left")
            roll[first:stop, event.pitch - LOWEST_MIDI] = 1
    return roll


def frame_hop_s(frame_times: np.ndarray) -> float:
    """Spacing of evenly spaced frame times; one frame alone stands for one window."""
    if len(frame_times) < 2:
        return WINDOW_SIZE / SAMPLE_RATE
    return float(np.median(np.diff(frame_times)))


# --- decoding: frame probabilities → note events --------------------------------------------------


@dataclass(frozen=True)
class DecoderConfig:
    """Parameters of every decoder (each reads the ones it needs).

    ``threshold`` is the naive decoder's (the report's 0.5). The hysteresis and onsets decoders keep
    a note going while its probability stays above ``off``, bridge dips shorter than ``max_gap_s``
    (the default bridges one missed frame at the 93 ms hop) and drop notes shorter than
    ``min_note_s``. Hysteresis starts a note where the probability exceeds ``on``; the onsets decoder
    starts one at a peak of the onset probability above ``onset_threshold``, and also where only the
    frame probability exceeds ``on`` when ``start_without_onset`` is set.

    The defaults were measured with a 1-layer CNN on the synthetic corpus's validation split at the
    4,096 hop: ``on``/``off`` are within 0.01 of the best onset note F1 (``amt tune``); ``min_note_s``
    drops one-frame blips (+0.02 F1); ``max_gap_s`` bridges one missed frame, which costs under 0.01
    F1 and cuts re-attacks per note from 0.03 to 0.01. The onsets decoder's ``onset_threshold`` and
    ``start_without_onset`` were tuned for the temporal-convolution context model on the validation
    split at its 1,024 hop (``amt tune --decoder onsets``): its onset probabilities peak low, so 0.3
    beats 0.5 by 0.15 onset note F1, and letting a clear frame start a note recovers soft attacks
    (+0.03 recall) at 0.03 re-attacks per note. Other models and hops deserve their own tuning, which
    ``amt tune --save`` stores in the checkpoint, where it replaces these defaults.
    """

    threshold: float = 0.5
    on: float = 0.5
    off: float = 0.3
    max_gap_s: float = 0.1
    min_note_s: float = 0.1
    onset_threshold: float = 0.3
    start_without_onset: bool = True

    def __post_init__(self):
        for name in ("threshold", "on", "off", "onset_threshold"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise AmtError(f"decoder {name} must be a probability in [0, 1), got {getattr(self, name)}")
        if self.off > self.on:
            raise AmtError(f"decoder off threshold ({self.off}) must not exceed the on threshold ({self.on})")
        if self.max_gap_s < 0 or self.min_note_s < 0:
            raise AmtError("decoder max_gap_s and min_note_s must not be negative")


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _bridge(mask: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """``mask`` with every run of at most ``max_gap_frames`` False between two Trues set to True."""
    starts, ends = _runs(~mask)
    inner = (starts > 0) & (ends < len(mask)) & (ends - starts <= max_gap_frames)
    change = np.zeros(len(mask) + 1, dtype=np.int32)
    change[starts[inner]] += 1
    change[ends[inner]] -= 1
    return mask | (np.cumsum(change[:-1]) > 0)


def _frames_shorter_than(seconds: float, hop: float) -> int:
    """The most frames of ``hop`` seconds that last strictly less than ``seconds``."""
    return max(int(np.ceil(seconds / hop - 1e-9)) - 1, 0)


@dataclass(frozen=True)
class _Segmenter:
    """One pitch's frame probabilities → note spans in frames (the rules of :class:`DecoderConfig`)."""

    on: float
    off: float
    max_gap_frames: int = 0
    min_frames: int = 1
    start_without_onset: bool = True

    @classmethod
    def from_config(cls, config: DecoderConfig, hop: float, start_without_onset: bool) -> _Segmenter:
        return cls(
            on=config.on,
            off=config.off,
            max_gap_frames=_frames_shorter_than(config.max_gap_s, hop),
            min_frames=_frames_shorter_than(config.min_note_s, hop) + 1,
            start_without_onset=start_without_onset,
        )

    def spans(self, frames: np.ndarray, onsets: np.ndarray) -> list[tuple[int, int]]:
        """Half-open frame spans ``[start, end)``.

        A stretch where the frame probability stays above ``off`` (dips bridged, onset frames
        included) holds one note per onset in it, each lasting until the next onset or the end of
        the stretch. Before its first onset, a note starts at the first frame above ``on`` when
        ``start_without_onset`` is set (with no onsets at all, that is plain hysteresis).
        """
        spans = []
        sustained = _bridge((frames > self.off) | onsets, self.max_gap_frames)
        for run_start, run_end in zip(*_runs(sustained), strict=True):
            starts = [int(s) for s in run_start + np.flatnonzero(onsets[run_start:run_end])]
            first = starts[0] if starts else run_end
            loud = frames[run_start:first] > self.on
            if self.start_without_onset and loud.any():
                starts.insert(0, int(run_start + np.argmax(loud)))
            if not starts:
                continue
            ends = starts[1:] + [int(run_end)]
            spans += [(s, e) for s, e in zip(starts, ends, strict=True) if e - s >= self.min_frames]
        return spans


def _onset_peaks(onsets: np.ndarray, threshold: float) -> np.ndarray:
    """Frames where the onset probability is above ``threshold`` and a local maximum in time
    (the first frame of a plateau)."""
    silence = np.zeros((1, onsets.shape[1]), dtype=onsets.dtype)
    before = np.concatenate((silence, onsets[:-1]))
    after = np.concatenate((onsets[1:], silence))
    return (onsets > threshold) & (onsets > before) & (onsets >= after)


def _checked(
    probabilities: np.ndarray, frame_times: np.ndarray, onsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoders' inputs as arrays, shapes checked; missing onsets become all-False."""
    probabilities, frame_times = np.asarray(probabilities), np.asarray(frame_times, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_NOTES:
        raise AmtError(f"frame probabilities must be [frames, {NUM_NOTES}], got shape {probabilities.shape}")
    if len(frame_times) != len(probabilities):
        raise AmtError(f"{len(frame_times)} frame times for {len(probabilities)} frames of probabilities")
    if onsets is None:
        return probabilities, frame_times, np.zeros(probabilities.shape, dtype=bool)
    onsets = np.asarray(onsets)
    if onsets.shape != probabilities.shape:
        raise AmtError(f"onset probabilities {onsets.shape} do not match frame probabilities {probabilities.shape}")
    return probabilities, frame_times, onsets


def _decode(
    probabilities: np.ndarray, frame_times: np.ndarray, segmenter: _Segmenter, onset_frames: np.ndarray
) -> list[NoteEvent]:
    """Segment every pitch and turn its frame spans into notes (velocity from the peak probability)."""
    hop = frame_hop_s(frame_times)
    events = []
    for index in range(NUM_NOTES):
        for start, end in segmenter.spans(probabilities[:, index], onset_frames[:, index]):
            peak = float(probabilities[start:end, index].max())
            events.append(
                NoteEvent(
                    onset_s=max(float(frame_times[start]) - hop / 2, 0.0),
                    offset_s=float(frame_times[end - 1]) + hop / 2,
                    pitch=index_to_midi(index),
                    velocity=int(np.clip(round(peak * 127), 1, 127)),
                )
            )
    return sorted(events, key=lambda e: (e.onset_s, e.pitch))


def decode_naive(
    probabilities: np.ndarray, frame_times: np.ndarray, config: DecoderConfig | None = None, onsets=None
) -> list[NoteEvent]:
    """The report's decoding: every run of frames above ``config.threshold`` is a note.

    A single missed frame inside a held note splits it in two, which MIDI plays as a re-attack.
    """
    probabilities, frame_times, no_onsets = _checked(probabilities, frame_times)
    threshold = (config or DecoderConfig()).threshold
    return _decode(probabilities, frame_times, _Segmenter(on=threshold, off=threshold), no_onsets)


def decode_hysteresis(
    probabilities: np.ndarray, frame_times: np.ndarray, config: DecoderConfig | None = None, onsets=None
) -> list[NoteEvent]:
    """Notes start above ``config.on`` and continue above ``config.off``; dips shorter than
    ``config.max_gap_s`` are bridged and notes shorter than ``config.min_note_s`` dropped."""
    probabilities, frame_times, no_onsets = _checked(probabilities, frame_times)
    segmenter = _Segmenter.from_config(config or DecoderConfig(), frame_hop_s(frame_times), start_without_onset=True)
    return _decode(probabilities, frame_times, segmenter, no_onsets)


NO_ONSETS = "the onsets decoder needs onset probabilities, and this model predicts frames only"


def decode_onsets(
    probabilities: np.ndarray,
    frame_times: np.ndarray,
    config: DecoderConfig | None = None,
    onsets: np.ndarray | None = None,
) -> list[NoteEvent]:
    """Onsets-and-Frames decoding: a note starts at a peak of the onset probability above
    ``config.onset_threshold`` and continues while the frame probability stays above ``config.off``.

    A second onset peak inside a sounding note starts a new note (a repeated note). Frames that rise
    above ``config.on`` without an onset start a note only with ``config.start_without_onset``.
    """
    if onsets is None:
        raise AmtError(NO_ONSETS)
    config = config or DecoderConfig()
    probabilities, frame_times, onsets = _checked(probabilities, frame_times, onsets)
    segmenter = _Segmenter.from_config(config, frame_hop_s(frame_times), config.start_without_onset)
    return _decode(probabilities, frame_times, segmenter, _onset_peaks(onsets, config.onset_threshold))


DECODERS = {"naive": decode_naive, "hysteresis": decode_hysteresis, "onsets": decode_onsets}
"""Decoders by name; each takes ``(probabilities [T, 81], frame_times [T], config, onsets=None)``."""


def decode(
    name: str,
    probabilities: np.ndarray,
    frame_times: np.ndarray,
    config: DecoderConfig | None = None,
    onsets: np.ndarray | None = None,
) -> list[NoteEvent]:
    """Decode frame probabilities (and, for ``onsets``, onset probabilities) with the decoder ``name``."""
    if name not in DECODERS:
        raise AmtError(f"unknown decoder '{name}' (choose from: {', '.join(DECODERS)})")
    return DECODERS[name](probabilities, frame_times, config, onsets)
