"""Frame and note metrics of transcriptions over a folder of recordings with MusicNet labels.

A system is rated on each recording and pooled over all of them (pooled = summed counts, so long
recordings weigh more, as in MusicNet's own evaluation). A system is a model with a decoder (each
``--decoder`` is its own system, sharing one inference pass) or a folder of note csvs that any
transcriber wrote (``--predictions``).

- **Frame** precision/recall/F1 on the model's frame grid (window centres every ``hop`` samples): the
  reference roll holds the notes sounding at each centre (the labels' rule), the predicted roll the
  decoded notes rendered back onto the same frames, so every decoder and every outside system is
  scored on the same footing. **AP** is the micro average precision of the frame probabilities
  against the reference roll (the training metric, :func:`amt.baselines.micro_average_precision`).
- **Notes** from ``mir_eval.transcription``: a predicted note matches a reference note of the same
  pitch (within 50 cents) whose onset is within 50 ms; with offsets, its offset must also be within
  20 % of the reference note's length (at least 50 ms). Counts come from ``match_notes``, the
  matching behind ``precision_recall_f1_overlap``, so they can be pooled.
- **Re-attacks per note**: predicted onsets during a reference note of the same pitch beyond the
  first (not counting the attacks of other reference notes: see :func:`count_reattacks`), summed
  over reference notes, over the number of reference notes. A held note split in three counts 2;
  the report's chaotic-sounding MIDI is this number being high.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import mir_eval
import numpy as np
import soundfile
from rich.progress import Progress
from rich.table import Table
from torch import nn

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, load_audio, sequential_centres
from amt.baselines import micro_average_precision
from amt.data.musicnet import Recording, find_recordings
from amt.errors import AmtError
from amt.notes import (
    DecoderConfig,
    NoteEvent,
    decode,
    events_from_musicnet,
    piano_roll,
    read_musicnet_csv,
    read_note_csv,
    write_atomically,
)
from amt.transcribe import Frames, frame_probabilities

ONSET_TOLERANCE_S = 0.05
OFFSET_RATIO = 0.2
POOLED = "pooled"


# --- recordings ----------------------------------------------------------------------------------


def _flat_recordings(root: Path) -> list[Recording]:
    recordings = [Recording(wav.stem, wav, wav.with_suffix(".csv")) for wav in sorted(root.glob("*.wav"))]
    for recording in recordings:
        if not recording.csv.is_file():
            raise AmtError(f"{recording.wav}: no label file {recording.csv}")
    return recordings


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
    return sorted(recordings, key=lambda r: (not r.id.isdigit(), int(r.id) if r.id.isdigit() else 0, r.id))


def audio_frame_times(wav: Path, hop: int = WINDOW_SIZE) -> np.ndarray:
    """Frame times (s) of sequential windows over a recording, from its header (no decoding)."""
    try:
        info = soundfile.info(wav)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AmtError(f"{wav}: not a readable audio file ({error})") from None
    n_samples = round(info.frames * SAMPLE_RATE / info.samplerate)
    return sequential_centres(n_samples, hop) / SAMPLE_RATE


# --- metrics -------------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return _ratio(2 * precision * recall, precision + recall)


@dataclass(frozen=True)
class Counts:
    """What the metrics are made of; counts add up across recordings for pooled metrics."""

    frame_hits: int = 0
    frames_predicted: int = 0
    frames_reference: int = 0
    notes_reference: int = 0
    notes_predicted: int = 0
    onset_matches: int = 0
    offset_matches: int = 0
    reattacks: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def metrics(self) -> dict[str, float]:
        frame_p = _ratio(self.frame_hits, self.frames_predicted)
        frame_r = _ratio(self.frame_hits, self.frames_reference)
        note_p = _ratio(self.onset_matches, self.notes_predicted)
        note_r = _ratio(self.onset_matches, self.notes_reference)
        offset_p = _ratio(self.offset_matches, self.notes_predicted)
        offset_r = _ratio(self.offset_matches, self.notes_reference)
        return {
            "frame_precision": frame_p,
            "frame_recall": frame_r,
            "frame_f1": _f1(frame_p, frame_r),
            "note_precision": note_p,
            "note_recall": note_r,
            "note_f1": _f1(note_p, note_r),
            "note_offset_precision": offset_p,
            "note_offset_recall": offset_r,
            "note_offset_f1": _f1(offset_p, offset_r),
            "reattacks_per_note": _ratio(self.reattacks, self.notes_reference),
            "reference_notes": self.notes_reference,
            "predicted_notes": self.notes_predicted,
        }


def _mir_eval_notes(events: Sequence[NoteEvent]) -> tuple[np.ndarray, np.ndarray]:
    """Intervals ``[n, 2]`` (s) and pitches in Hz, as mir_eval takes them."""
    intervals = np.array([(e.onset_s, e.offset_s) for e in events], dtype=np.float64).reshape(-1, 2)
    pitches = mir_eval.util.midi_to_hz(np.array([e.pitch for e in events], dtype=np.float64))
    return intervals, pitches


def matched_notes(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], offset_ratio: float | None) -> int:
    """How many notes mir_eval matches one-to-one (onset within 50 ms; with ``offset_ratio``, offsets too)."""
    if not reference or not estimate:
        return 0
    matching = mir_eval.transcription.match_notes(
        *_mir_eval_notes(reference),
        *_mir_eval_notes(estimate),
        onset_tolerance=ONSET_TOLERANCE_S,
        offset_ratio=offset_ratio,
    )
    return len(matching)


def _distance_to_nearest(values: np.ndarray, sorted_points: np.ndarray) -> np.ndarray:
    """For each value, its distance to the nearest of (at least one) sorted points."""
    after = np.clip(np.searchsorted(sorted_points, values), 1, len(sorted_points) - 1)
    before = after - 1 if len(sorted_points) > 1 else after * 0
    return np.minimum(np.abs(values - sorted_points[before]), np.abs(values - sorted_points[after]))


def count_reattacks(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent]) -> int:
    """Predicted onsets during each reference note beyond its first attack, summed over the notes.

    "During" a note is its ``[onset, offset)`` opened 50 ms (the onset tolerance) earlier. Onsets
    within 50 ms of the note's onset are its attack, counted once (two voices in unison may both
    strike it); onsets within 50 ms of another reference onset of the same pitch belong to that
    note (a repeated note, a second voice) and are left out; the rest strike the sounding note, the
    first of them only being its attack when none came on time (a late detection is no re-attack).
    """
    onsets_by_pitch: dict[int, list[float]] = {}
    starts_by_pitch: dict[int, list[float]] = {}
    for event in estimate:
        onsets_by_pitch.setdefault(event.pitch, []).append(event.onset_s)
    for note in reference:
        starts_by_pitch.setdefault(note.pitch, []).append(note.onset_s)
    onsets_by_pitch = {pitch: np.sort(onsets) for pitch, onsets in onsets_by_pitch.items()}
    starts_by_pitch = {pitch: np.sort(starts) for pitch, starts in starts_by_pitch.items()}
    total = 0
    for note in reference:
        onsets = onsets_by_pitch.get(note.pitch, np.empty(0))
        first, stop = np.searchsorted(onsets, (note.onset_s - ONSET_TOLERANCE_S, note.offset_s))
        during = onsets[first:stop]
        on_time = np.abs(during - note.onset_s) <= ONSET_TOLERANCE_S
        near_an_attack = _distance_to_nearest(during, starts_by_pitch[note.pitch]) <= ONSET_TOLERANCE_S
        total += max(int(on_time.any()) + int(np.count_nonzero(~near_an_attack)) - 1, 0)
    return total


def score(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], frame_times: np.ndarray) -> Counts:
    """The counts of one system on one recording."""
    reference_roll = piano_roll(reference, frame_times).astype(bool)
    predicted_roll = piano_roll(estimate, frame_times).astype(bool)
    return Counts(
        frame_hits=int(np.count_nonzero(reference_roll & predicted_roll)),
        frames_predicted=int(np.count_nonzero(predicted_roll)),
        frames_reference=int(np.count_nonzero(reference_roll)),
        notes_reference=len(reference),
        notes_predicted=len(estimate),
        onset_matches=matched_notes(reference, estimate, offset_ratio=None),
        offset_matches=matched_notes(reference, estimate, offset_ratio=OFFSET_RATIO),
        reattacks=count_reattacks(reference, estimate),
    )


def average_precision(probabilities: np.ndarray, reference_roll: np.ndarray) -> float | None:
    """Micro AP of frame probabilities; None when no note sounds at any frame (AP is undefined)."""
    if not reference_roll.any():
        return None
    return micro_average_precision(probabilities, reference_roll)


# --- evaluation ----------------------------------------------------------------------------------


@dataclass
class SystemResult:
    """One system's counts (and, for a model, frame-probability AP) per recording."""

    counts: dict[str, Counts]
    average_precision: dict[str, float | None] | None = None

    def table(self) -> dict[str, dict[str, float | None]]:
        """Metrics per recording id and :data:`POOLED`."""
        rows = {rid: counts.metrics() for rid, counts in self.counts.items()}
        rows[POOLED] = sum(self.counts.values(), Counts()).metrics()
        if self.average_precision is not None:
            for rid, row in rows.items():
                row["average_precision"] = self.average_precision[rid]
        return rows


@dataclass(frozen=True)
class ModelRun:
    """A model and how to run it and decode its output (one system per decoder)."""

    model: nn.Module
    decoders: tuple[str, ...] = ("hysteresis",)
    config: DecoderConfig = DecoderConfig()
    batch_size: int = 1024
    device: str = "cpu"


def _frames(recording: Recording, run: ModelRun, hop: int, progress: Progress | None) -> Frames:
    samples = load_audio(recording.wav)
    return frame_probabilities(samples, run.model, hop, run.batch_size, run.device, progress, recording.id)


def _model_systems(
    recordings: Sequence[Recording], run: ModelRun, hop: int, progress: Progress | None
) -> Iterator[tuple[str, SystemResult]]:
    counts = {name: {} for name in run.decoders}
    ap: dict[str, float | None] = {}
    all_probabilities, all_rolls = [], []
    for recording in recordings:
        reference = events_from_musicnet(read_musicnet_csv(recording.csv))
        frames = _frames(recording, run, hop, progress)
        roll = piano_roll(reference, frames.times)
        ap[recording.id] = average_precision(frames.probabilities, roll)
        all_probabilities.append(frames.probabilities)
        all_rolls.append(roll)
        for name in run.decoders:
            estimate = decode(name, frames.probabilities, frames.times, run.config, frames.onsets)
            counts[name][recording.id] = score(reference, estimate, frames.times)
    ap[POOLED] = average_precision(np.concatenate(all_probabilities), np.concatenate(all_rolls))
    for name in run.decoders:
        yield name, SystemResult(counts[name], ap)


def _prediction_system(recordings: Sequence[Recording], folder: Path, hop: int) -> SystemResult:
    missing = [r.id for r in recordings if not (folder / f"{r.id}.csv").is_file()]
    if missing:
        raise AmtError(f"{folder}: no note csv for recording(s) {', '.join(missing)} (expected ID.csv)")
    counts = {}
    for recording in recordings:
        reference = events_from_musicnet(read_musicnet_csv(recording.csv))
        estimate = read_note_csv(folder / f"{recording.id}.csv")
        counts[recording.id] = score(reference, estimate, audio_frame_times(recording.wav, hop))
    return SystemResult(counts)


def evaluate(
    root: str | os.PathLike,
    run: ModelRun | None = None,
    predictions: Sequence[str | os.PathLike] = (),
    hop: int = WINDOW_SIZE,
    progress: Progress | None = None,
    split: str | None = None,
) -> dict:
    """Rate a model (one system per decoder) and/or folders of note csvs on the recordings in ``root``
    (only its ``split``, when given).

    Returns ``{"settings": {...}, "systems": {name: {recording id or "pooled": metrics}}}``, the
    form written as JSON; a prediction folder's system is named after the folder.
    """
    if run is None and not predictions:
        raise AmtError("nothing to evaluate: give a checkpoint or a folder of predictions")
    if hop < 1:
        raise AmtError(f"hop must be a positive number of samples, got {hop}")
    recordings = find_labelled_recordings(root, split)
    systems: dict[str, SystemResult] = {}
    if run is not None:
        systems.update(_model_systems(recordings, run, hop, progress))
    for folder in map(Path, predictions):
        if not folder.is_dir():
            raise AmtError(f"{folder}: no such folder of predictions")
        systems[folder.name] = _prediction_system(recordings, folder, hop)
    settings = {
        "root": str(root),
        "split": split,
        "recordings": len(recordings),
        "hop": hop,
        "onset_tolerance_s": ONSET_TOLERANCE_S,
        "offset_ratio": OFFSET_RATIO,
        "decoder_config": asdict(run.config) if run is not None else None,
    }
    return {"settings": settings, "systems": {name: system.table() for name, system in systems.items()}}


# --- threshold tuning ----------------------------------------------------------------------------

THRESHOLD_GRID = tuple(round(0.1 * k, 2) for k in range(1, 10))


TUNED = {"naive": ("threshold",), "hysteresis": ("on", "off"), "onsets": ("onset_threshold", "off", "min_note_s")}
"""The settings :func:`tune_thresholds` searches, per decoder."""
MIN_NOTE_GRID = (0.0, 0.05, 0.1)
"""Shortest notes kept (s) tried for the onsets decoder: at a 23 ms hop, 15% of the corpus's notes
last under 0.1 s, the default made for one-frame blips at the 93 ms hop."""


def _trial_configs(decoder: str, config: DecoderConfig, grid: Sequence[float]) -> list[DecoderConfig]:
    if decoder == "naive":
        return [replace(config, threshold=t) for t in grid]
    if decoder == "hysteresis":
        return [replace(config, on=on, off=off) for on in grid for off in grid if off <= on]
    if decoder == "onsets":
        return [
            replace(config, onset_threshold=t, off=off, on=max(config.on, off), min_note_s=shortest)
            for t in grid
            for off in grid
            for shortest in MIN_NOTE_GRID
        ]
    raise AmtError(f"thresholds can be tuned for the {', '.join(TUNED)} decoders, not '{decoder}'")


def tune_thresholds(
    probabilities: Sequence[np.ndarray],
    reference_events: Sequence[Sequence[NoteEvent]],
    frame_times: Sequence[np.ndarray],
    decoder: str = "hysteresis",
    config: DecoderConfig | None = None,
    grid: Sequence[float] = THRESHOLD_GRID,
    onsets: Sequence[np.ndarray | None] | None = None,
) -> list[tuple[DecoderConfig, dict[str, float]]]:
    """Grid-search the decoder's thresholds (naive: ``threshold``; hysteresis: ``on`` and ``off <= on``;
    onsets: ``onset_threshold``, ``off`` and ``min_note_s``, with the onset probabilities ``onsets``) over one or more
    recordings for the best pooled onset-only note F1.

    Returns every trial as ``(config, pooled metrics)``, best first.
    """
    onsets = onsets if onsets is not None else [None] * len(probabilities)
    if not len(probabilities) == len(reference_events) == len(frame_times) == len(onsets):
        raise AmtError("tune_thresholds needs one reference and one frame-time array per probability array")
    trials = []
    for trial in _trial_configs(decoder, config or DecoderConfig(), grid):
        total = Counts()
        for probs, reference, times, onset in zip(probabilities, reference_events, frame_times, onsets, strict=True):
            total += score(reference, decode(decoder, probs, times, trial, onset), times)
        trials.append((trial, total.metrics()))
    return sorted(trials, key=lambda t: -t[1]["note_f1"])


def tune(
    root: str | os.PathLike,
    run: ModelRun,
    hop: int = WINDOW_SIZE,
    decoder: str = "hysteresis",
    grid: Sequence[float] = THRESHOLD_GRID,
    progress: Progress | None = None,
    split: str | None = None,
) -> list[tuple[DecoderConfig, dict[str, float]]]:
    """Run the model over every recording of ``root`` (or of its ``split``) once, then :func:`tune_thresholds`."""
    probabilities, references, times, onsets = [], [], [], []
    for recording in find_labelled_recordings(root, split):
        frames = _frames(recording, run, hop, progress)
        probabilities.append(frames.probabilities)
        onsets.append(frames.onsets)
        references.append(events_from_musicnet(read_musicnet_csv(recording.csv)))
        times.append(frames.times)
    return tune_thresholds(probabilities, references, times, decoder, run.config, grid, onsets)


# --- reports -------------------------------------------------------------------------------------

COLUMNS: tuple[tuple[str, str, Callable[[object], str]], ...] = (
    ("frame P", "frame_precision", "{:.3f}".format),
    ("frame R", "frame_recall", "{:.3f}".format),
    ("frame F1", "frame_f1", "{:.3f}".format),
    ("AP", "average_precision", "{:.3f}".format),
    ("note P", "note_precision", "{:.3f}".format),
    ("note R", "note_recall", "{:.3f}".format),
    ("note F1", "note_f1", "{:.3f}".format),
    ("+offset F1", "note_offset_f1", "{:.3f}".format),
    ("re-attacks/note", "reattacks_per_note", "{:.3f}".format),
    ("notes ref/pred", "", str),
)


def _cells(row: dict) -> list[str]:
    cells = []
    for _, key, fmt in COLUMNS:
        if not key:
            cells.append(f"{row['reference_notes']}/{row['predicted_notes']}")
        else:
            cells.append("-" if row.get(key) is None else fmt(row[key]))
    return cells


def results_table(results: dict, per_recording: bool = False) -> Table:
    """The systems' pooled metrics (and, with ``per_recording``, every recording's) as a rich table."""
    settings = results["settings"]
    table = Table(
        title=f"{settings['recordings']} recordings in {settings['root']} (hop {settings['hop']}; "
        f"notes: onset ±{settings['onset_tolerance_s'] * 1000:.0f} ms, offsets ±{settings['offset_ratio']:.0%})"
    )
    table.add_column("system")
    table.add_column("recording")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    for name, rows in results["systems"].items():
        shown = list(rows) if per_recording else [POOLED]
        for rid in shown:
            table.add_row(name, rid, *_cells(rows[rid]), end_section=rid == POOLED)
    return table


def tuning_table(trials: Sequence[tuple[DecoderConfig, dict]], decoder: str, title: str, top: int = 10) -> Table:
    """The ``top`` trials of :func:`tune_thresholds` as a rich table."""
    names = TUNED[decoder]
    columns = {"note F1": "note_f1", "note P": "note_precision", "note R": "note_recall"}
    columns |= {"+offset F1": "note_offset_f1", "frame F1": "frame_f1", "re-attacks/note": "reattacks_per_note"}
    table = Table(title=f"{title} (best {min(top, len(trials))} of {len(trials)})")
    for column in (*names, *columns):
        table.add_column(column, justify="right")
    for config, metrics in trials[:top]:
        table.add_row(*(f"{getattr(config, n):.2f}" for n in names), *(f"{metrics[k]:.3f}" for k in columns.values()))
    return table


def trial_records(trials: Sequence[tuple[DecoderConfig, dict]]) -> list[dict]:
    """Each trial's decoder settings and pooled metrics in one flat dict, for JSON."""
    return [{**asdict(config), **metrics} for config, metrics in trials]


def write_json(record: dict | list, path: str | os.PathLike) -> None:
    write_atomically(path, ".json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


def write_csv(results: dict, path: str | os.PathLike) -> None:
    """One row per (system, recording), the pooled rows included."""
    rows = [
        {"system": name, "recording": rid, **row}
        for name, table in results["systems"].items()
        for rid, row in table.items()
    ]
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, ".csv", write)
