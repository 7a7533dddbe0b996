"""Metrics, in one place: micro average precision, frame and note counts, note matching, re-attacks.

- **AP** is the micro average precision over all (frame, note) pairs, exactly (no threshold binning),
  as MusicNet, mini-MusicNet and the report define it: :func:`ap_metric` during training (a
  torchmetrics object fed batch by batch), :func:`micro_average_precision` on whole arrays.
- **Frame** precision/recall/F1 compare piano rolls on one frame grid: the reference roll holds the
  notes sounding at each frame time (the labels' rule), the predicted roll the decoded notes rendered
  back onto the same frames (:func:`amt.notes.piano_roll`), so every decoder and every outside system
  is scored on the same footing.
- **Notes** from ``mir_eval.transcription``: a predicted note matches a reference note of the same
  pitch (within 50 cents) whose onset is within 50 ms; with offsets, its offset must also be within
  20 % of the reference note's length (at least 50 ms). Counts come from ``match_notes``, the
  matching behind ``precision_recall_f1_overlap``, so they can be pooled over recordings.
- **Notes with velocity** from ``mir_eval.transcription_velocity`` (onset-only matching, as Onsets
  and Frames' "note with velocity"): a matched note counts when its velocity, after mir_eval's
  least-squares rescaling of the estimate's velocities per recording, is within 10 % of the
  reference's velocity range. Only recordings whose reference velocities are known (amt corpora's
  performance MIDI) count; with none, the F1 is None.
- **Re-attacks per note**: predicted onsets during a reference note of the same pitch beyond the
  first (not counting the attacks of other reference notes: see :func:`count_reattacks`), summed
  over reference notes, over the number of reference notes. A held note split in three counts 2;
  the report's chaotic-sounding MIDI is this number being high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import mir_eval
import numpy as np

from amt.labels import PIANO_KEYS, REPORT_NOTES
from amt.notes import NoteEvent, piano_roll

if TYPE_CHECKING:
    from torchmetrics.classification import MultilabelAveragePrecision

ONSET_TOLERANCE_S = 0.05
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE_S = 0.05


def offset_tolerance(reference: NoteEvent) -> float:
    """How far (s) an offset may miss ``reference``'s and still match, as mir_eval decides it: ``OFFSET_RATIO``
    of the note's length, at least ``OFFSET_MIN_TOLERANCE_S``."""
    return max(OFFSET_MIN_TOLERANCE_S, OFFSET_RATIO * (reference.offset_s - reference.onset_s))


def ap_metric(notes: int = REPORT_NOTES.notes) -> MultilabelAveragePrecision:
    """The training metric: exact micro average precision over all (frame, note) pairs, updated per batch.

    ``validate_args=False`` skips per-update input checks that cost more than the update itself;
    the inputs are always our own probabilities and 0/1 labels.
    """
    from torchmetrics.classification import MultilabelAveragePrecision

    return MultilabelAveragePrecision(num_labels=notes, average="micro", validate_args=False)


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
    velocity_reference: int = 0
    """Reference notes of the recordings whose velocities are known (their notes, otherwise 0)."""
    velocity_predicted: int = 0
    velocity_matches: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def metrics(self) -> dict[str, float]:
        frame_p = _ratio(self.frame_hits, self.frames_predicted)
        frame_r = _ratio(self.frame_hits, self.frames_reference)
        note_p = _ratio(self.onset_matches, self.notes_predicted)
        note_r = _ratio(self.onset_matches, self.notes_reference)
        offset_p = _ratio(self.offset_matches, self.notes_predicted)
        offset_r = _ratio(self.offset_matches, self.notes_reference)
        velocity_p = _ratio(self.velocity_matches, self.velocity_predicted)
        velocity_r = _ratio(self.velocity_matches, self.velocity_reference)
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
            "note_velocity_f1": _f1(velocity_p, velocity_r) if self.velocity_reference else None,
            "reattacks_per_note": _ratio(self.reattacks, self.notes_reference),
            "reference_notes": self.notes_reference,
            "predicted_notes": self.notes_predicted,
        }


def velocity_matched_notes(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent]) -> int:
    """How many notes match by onset and velocity (``mir_eval.transcription_velocity``, module docstring)."""
    if not reference or not estimate:
        return 0
    from mir_eval import transcription_velocity

    def velocities(events: Sequence[NoteEvent]) -> np.ndarray:
        return np.array([e.velocity for e in events], dtype=np.float64)

    return len(
        transcription_velocity.match_notes(
            *_mir_eval_notes(reference),
            velocities(reference),
            *_mir_eval_notes(estimate),
            velocities(estimate),
            onset_tolerance=ONSET_TOLERANCE_S,
            offset_ratio=None,
        )
    )


def _mir_eval_notes(events: Sequence[NoteEvent]) -> tuple[np.ndarray, np.ndarray]:
    """Intervals ``[n, 2]`` (s) and pitches in Hz, as mir_eval takes them."""
    intervals = np.array([(e.onset_s, e.offset_s) for e in events], dtype=np.float64).reshape(-1, 2)
    pitches = mir_eval.util.midi_to_hz(np.array([e.pitch for e in events], dtype=np.float64))
    return intervals, pitches


def note_matches(
    reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], offset_ratio: float | None
) -> list[tuple[int, int]]:
    """The ``(reference index, estimate index)`` pairs mir_eval matches one-to-one (onset within 50 ms;
    with ``offset_ratio``, offsets too)."""
    if not reference or not estimate:
        return []
    return mir_eval.transcription.match_notes(
        *_mir_eval_notes(reference),
        *_mir_eval_notes(estimate),
        onset_tolerance=ONSET_TOLERANCE_S,
        offset_ratio=offset_ratio,
        offset_min_tolerance=OFFSET_MIN_TOLERANCE_S,
    )


def matched_notes(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], offset_ratio: float | None) -> int:
    """How many notes :func:`note_matches` pairs."""
    return len(note_matches(reference, estimate, offset_ratio))


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


def score(
    reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], frame_times: np.ndarray, velocities: bool = False
) -> Counts:
    """The counts of one system on one recording; ``velocities``: the reference's velocities are known.

    Frames are compared over all 88 keys, whatever the system's label space: a note a model cannot
    predict is a note it misses."""
    reference_roll = piano_roll(reference, frame_times, PIANO_KEYS).astype(bool)
    predicted_roll = piano_roll(estimate, frame_times, PIANO_KEYS).astype(bool)
    return Counts(
        frame_hits=int(np.count_nonzero(reference_roll & predicted_roll)),
        frames_predicted=int(np.count_nonzero(predicted_roll)),
        frames_reference=int(np.count_nonzero(reference_roll)),
        notes_reference=len(reference),
        notes_predicted=len(estimate),
        onset_matches=matched_notes(reference, estimate, offset_ratio=None),
        offset_matches=matched_notes(reference, estimate, offset_ratio=OFFSET_RATIO),
        reattacks=count_reattacks(reference, estimate),
        velocity_reference=len(reference) if velocities else 0,
        velocity_predicted=len(estimate) if velocities else 0,
        velocity_matches=velocity_matched_notes(reference, estimate) if velocities else 0,
    )


def micro_average_precision(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Micro AP over all (frame, note) pairs of arrays ``[N, notes]``; None when no label is positive
    (AP is undefined)."""
    import torch
    from torchmetrics.functional.classification import multilabel_average_precision

    if not np.any(labels):
        return None
    return float(
        multilabel_average_precision(
            torch.tensor(scores, dtype=torch.float32),
            torch.tensor(labels, dtype=torch.long),
            num_labels=labels.shape[1],
            average="micro",
        )
    )
