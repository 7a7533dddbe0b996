"""Where a transcriber loses notes: onset-only note recall, precision and F1 by register, local polyphony,
note duration, velocity and timbre; and where the notes it finds end.

Each reference note falls in one bin of each attribute and counts towards recall there; each
predicted note falls in the bin its own attributes give (its pitch, duration and velocity, the
reference polyphony at its onset, its recording's timbre) and counts towards precision. Notes are
matched one to one by :func:`amt.metrics.note_matches` (mir_eval, onsets within 50 ms), so the bins of
an attribute add up to the pooled note F1's counts.

Endings (:func:`endings`) separate the two things note F1 with offsets needs: a found onset, and an
offset within mir_eval's tolerance of that note's. They are split by whether the reference key-up falls
while the sustain pedal is down, when the performance MIDI says: then the string rings on past the
key-up, so its time is not in the audio.

False alarms (:func:`false_alarms`) say what the predicted notes that match nothing mistook: a
reference note struck within the onset tolerance an octave or two away (a partial or a sub-octave
heard as a key), a semitone away (pitch resolution), on the same key (a second strike), at another
interval, or no reference note struck near it at all (a note out of the reverb or the sustain).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from amt.metrics import ONSET_TOLERANCE_S, note_matches, offset_tolerance
from amt.notes import NoteEvent

Tally = dict[str, dict[str, list[int]]]
"""attribute → bin → [reference notes, of them matched, predicted notes, of them matched]."""

DURATION_EDGES_S = (0.1, 0.25, 0.5, 1.0, 2.0)
VELOCITY_EDGES = (40, 60, 80, 100)
POLYPHONY_EDGES = (1, 2, 4, 6)


def _bin(value: float, edges: Sequence[float], unit: str = "") -> str:
    """``value``'s bin among ``edges``: "< 0.1 s", "0.1–0.25 s", …, "≥ 2 s"."""
    position = int(np.searchsorted(edges, value, side="right"))
    if position == 0:
        return f"< {edges[0]:g}{unit}"
    if position == len(edges):
        return f"≥ {edges[-1]:g}{unit}"
    return f"{edges[position - 1]:g}–{edges[position]:g}{unit}"


def _polyphony_bin(count: int) -> str:
    edges = POLYPHONY_EDGES
    if count <= edges[0]:
        return "1 note"
    position = int(np.searchsorted(edges, count, side="left"))
    if position == len(edges):
        return f"> {edges[-1]} notes"
    low, high = edges[position - 1] + 1, edges[position]
    return f"{high} notes" if low == high else f"{low}–{high} notes"


def sounding_count(reference: Sequence[NoteEvent], times: np.ndarray) -> np.ndarray:
    """How many reference notes sound at each of ``times`` (a note sounds over ``[onset, offset)``)."""
    onsets = np.sort([note.onset_s for note in reference])
    offsets = np.sort([note.offset_s for note in reference])
    return np.searchsorted(onsets, times, side="right") - np.searchsorted(offsets, times, side="right")


ATTRIBUTES: dict[str, Callable[[NoteEvent, int], str]] = {
    "octave": lambda note, _: f"octave {note.pitch // 12 - 1}",
    "polyphony": lambda _, polyphony: _polyphony_bin(polyphony),
    "duration": lambda note, _: _bin(note.offset_s - note.onset_s, DURATION_EDGES_S, " s"),
    "velocity": lambda note, _: _bin(note.velocity, VELOCITY_EDGES),
}


def tally(
    reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], timbre: str = "unknown", velocities: bool = True
) -> Tally:
    """One recording's counts per attribute bin. ``velocities``: whether the reference notes carry real
    velocities (from a performance MIDI); without, the velocity attribute is left out."""
    matching = note_matches(reference, estimate, offset_ratio=None)
    matched_reference = {i for i, _ in matching}
    matched_estimate = {j for _, j in matching}
    attributes = {name: describe for name, describe in ATTRIBUTES.items() if velocities or name != "velocity"}
    counts: Tally = {name: {} for name in [*attributes, "timbre"]}
    for side, notes, matched in ((0, reference, matched_reference), (2, estimate, matched_estimate)):
        if not notes:
            continue
        polyphony = (
            sounding_count(reference, np.array([note.onset_s for note in notes])) if reference else np.zeros(len(notes))
        )
        for i, note in enumerate(notes):
            bins = {name: describe(note, int(polyphony[i])) for name, describe in attributes.items()}
            bins["timbre"] = timbre
            for name, label in bins.items():
                cell = counts[name].setdefault(label, [0, 0, 0, 0])
                cell[side] += 1
                cell[side + 1] += i in matched
    return counts


def add(total: Tally, more: Tally) -> Tally:
    """Counts of two tallies summed, bin by bin."""
    for name, bins in more.items():
        for label, cell in bins.items():
            target = total.setdefault(name, {}).setdefault(label, [0, 0, 0, 0])
            for k in range(4):
                target[k] += cell[k]
    return total


def _order(label: str) -> tuple[float, str]:
    """Bins in their natural order: by the first number in the label ("< 0.1 s" first), else by name."""
    found = re.search(r"\d+(?:\.\d+)?", label)
    number = float(found.group()) if found else float("inf")
    return (number - (0.5 if label.startswith("<") else 0) + (0.5 if label.startswith(("≥", ">")) else 0), label)


def metrics(counts: Tally) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per attribute and bin: reference notes, recall, predicted notes, precision, F1 (None where a side
    has no notes)."""
    table: dict = {}
    for name, bins in counts.items():
        table[name] = {}
        order = _order if name != "timbre" else (lambda label, bins=bins: (-bins[label][0], label))
        for label in sorted(bins, key=order):
            references, recalled, predicted, right = bins[label]
            recall = recalled / references if references else None
            precision = right / predicted if predicted else None
            f1 = None
            if recall is not None and precision is not None:
                f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
            table[name][label] = {
                "reference_notes": references,
                "recall": recall,
                "predicted_notes": predicted,
                "precision": precision,
                "f1": f1,
            }
    return table


FALSE_ALARM_KINDS = ("same key", "octave", "semitone", "other key", "no onset near")
"""What an unmatched predicted note is, by the reference notes struck within the onset tolerance of it,
checked in this order: one on the same key, ±12 or ±24 semitones away, ±1, any other, none."""


def false_alarms(reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent]) -> dict[str, int]:
    """How many of the predicted notes that match no reference note are of each kind of
    :data:`FALSE_ALARM_KINDS`."""
    matched = {j for _, j in note_matches(reference, estimate, offset_ratio=None)}
    onsets = np.array([note.onset_s for note in reference])
    pitches = np.array([note.pitch for note in reference])
    found = dict.fromkeys(FALSE_ALARM_KINDS, 0)
    for j, note in enumerate(estimate):
        if j in matched:
            continue
        intervals = np.abs(pitches[np.abs(onsets - note.onset_s) <= ONSET_TOLERANCE_S] - note.pitch)
        if not len(intervals):
            kind = "no onset near"
        elif 0 in intervals:
            kind = "same key"
        elif np.isin(intervals, (12, 24)).any():
            kind = "octave"
        elif 1 in intervals:
            kind = "semitone"
        else:
            kind = "other key"
        found[kind] += 1
    return found


def add_false_alarms(total: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    """Two false-alarm counts together, kind by kind."""
    for kind, count in more.items():
        total[kind] = total.get(kind, 0) + count
    return total


def false_alarm_metrics(found: dict[str, int]) -> dict[str, dict[str, float | int]]:
    """Per kind: the false alarms and their share of them all."""
    everything = sum(found.values())
    return {kind: {"notes": count, "share": count / everything if everything else 0.0} for kind, count in found.items()}


Endings = dict[str, list[tuple[float, float]]]
"""bin → ``(offset error s, offset tolerance s)`` of each onset-matched note (error: estimate − reference)."""

PEDAL_BINS = ("key-up, pedal up", "key-up under the pedal")
ALL_NOTES = "all matched notes"


def endings(
    reference: Sequence[NoteEvent], estimate: Sequence[NoteEvent], pedal: Sequence[tuple[float, float]] | None = None
) -> Endings:
    """Where the estimated notes whose onsets match a reference note end, against that note's offset.
    With ``pedal`` (sustain-pedal ``(down s, up s)`` intervals), each note goes in a bin of
    :data:`PEDAL_BINS` by whether its key-up falls while the pedal is down; without, in one bin."""
    found: Endings = {}
    for i, j in note_matches(reference, estimate, offset_ratio=None):
        played, heard = reference[i], estimate[j]
        label = ALL_NOTES
        if pedal is not None:
            label = PEDAL_BINS[any(down <= played.offset_s < up for down, up in pedal)]
        found.setdefault(label, []).append((heard.offset_s - played.offset_s, offset_tolerance(played)))
    return found


def add_endings(total: Endings, more: Endings) -> Endings:
    """Two endings tallies together, bin by bin."""
    for label, rows in more.items():
        total.setdefault(label, []).extend(rows)
    return total


def ending_metrics(found: Endings) -> dict[str, dict[str, float | int]]:
    """Per bin (and, with more than one, over all): onset-matched notes, the shares of them whose offset
    is within tolerance, early or late by more, and the median offset error in ms."""
    bins = {label: found[label] for label in (*PEDAL_BINS, ALL_NOTES) if label in found}
    if len(bins) > 1:
        bins[ALL_NOTES] = [row for rows in found.values() for row in rows]
    table = {}
    for label, rows in bins.items():
        errors, tolerances = np.array(rows, dtype=np.float64).reshape(-1, 2).T
        table[label] = {
            "matched_notes": len(rows),
            "on_time": float(np.mean(np.abs(errors) <= tolerances)),
            "early": float(np.mean(errors < -tolerances)),
            "late": float(np.mean(errors > tolerances)),
            "median_error_ms": float(np.median(errors) * 1000),
        }
    return table


def with_performed_velocities(reference: list[NoteEvent], labels_csv) -> tuple[list[NoteEvent], bool]:
    """The reference notes with the velocities of their recording's performance MIDI (amt's corpora
    write ``{split}_midi/ID.mid`` beside ``{split}_labels/ID.csv``); unchanged, and False, without one."""
    from dataclasses import replace

    from amt.data.recordings import performed_velocities

    played = performed_velocities(labels_csv)
    if played is None:
        return reference, False
    return [replace(n, velocity=played.get((n.pitch, round(n.onset_s * 1000)), n.velocity)) for n in reference], True


def timbres(label_files) -> dict[str, str]:
    """Recording id → what rendered it (soundfont or synthesiser), from the corpus.json of the amt corpus
    each label csv belongs to (links followed, so a flat view of a corpus finds it too); recordings of
    other folders are left out."""
    from pathlib import Path

    from amt.data.recordings import corpus_record

    found = {}
    for folder in {Path(path).resolve().parent.parent for path in label_files}:
        entries = (corpus_record(folder) or {}).get("recordings", [])
        found |= {e["id"]: e.get("sounds") or e.get("renderer") or "default" for e in entries}
    return found
