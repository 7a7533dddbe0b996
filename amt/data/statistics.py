"""What a corpus of recordings holds, musically and acoustically: one column per corpus, side by side.

Read from its label csvs (notes per second, polyphony, range, durations) and, for amt's own corpora,
``corpus.json`` (velocities, pedal, timbres, rooms, sources), so a corpus's content can be compared
with another's and with published figures (:data:`MAESTRO`) before any model is trained on it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import soundfile

from amt.data.recordings import corpus_record, find_labelled_recordings
from amt.grid import SAMPLE_RATE
from amt.labels import note_name, read_musicnet_csv

FRAME_S = 0.01
"""Polyphony is counted on a 10 ms grid, over the frames where anything sounds."""

MAESTRO = {
    "hours": "172.3",
    "notes": "6.18 M",
    "notes/s mean": "≈ 10",
    "velocity p5–p50–p95": "key velocities",
    "pedal down (share of time)": "sustain, sostenuto, una corda",
}
"""Published figures for MAESTRO (Hawthorne et al., ICLR 2019), where known."""


def describe(root: str | Path, split: str | None = None) -> dict[str, str]:
    """The statistics of one folder of recordings (any layout :func:`find_labelled_recordings` reads),
    or of one ``split`` of it."""
    root = Path(root)
    recordings = find_labelled_recordings(root, split)
    labels = [read_musicnet_csv(recording.csv) for recording in recordings]
    seconds = np.array([soundfile.info(recording.wav).duration for recording in recordings])
    onsets_per_second, polyphony = [], []
    for recording_labels, length in zip(labels, seconds, strict=True):
        starts, ends = recording_labels.start / SAMPLE_RATE, recording_labels.end / SAMPLE_RATE
        onsets_per_second.append(np.histogram(starts, bins=np.arange(0, length + 1.0, 1.0))[0])
        frames = np.zeros(int(length / FRAME_S) + 1, dtype=np.int32)
        np.add.at(frames, (starts / FRAME_S).astype(int), 1)
        np.add.at(frames, np.minimum((ends / FRAME_S).astype(int), len(frames) - 1), -1)
        sounding = np.cumsum(frames)
        polyphony.append(sounding[sounding > 0])
    notes = np.concatenate([lab.note for lab in labels])
    durations = np.concatenate([(lab.end - lab.start) / SAMPLE_RATE for lab in labels])
    per_second, sounding = np.concatenate(onsets_per_second), np.concatenate(polyphony)
    octaves = np.bincount(notes // 12 - 1, minlength=9)[:9] / len(notes)
    stats = {
        "recordings": str(len(recordings)),
        "hours": f"{seconds.sum() / 3600:.1f}",
        "notes": f"{len(notes):,}",
        "notes/s mean": f"{len(notes) / seconds.sum():.1f}",
        "notes/s p95 (1 s bins)": f"{np.percentile(per_second, 95):.0f}",
        "polyphony mean / p95 / max": f"{sounding.mean():.1f} / {np.percentile(sounding, 95):.0f} / {sounding.max()}",
        "pitch range": f"{note_name(int(notes.min()))}–{note_name(int(notes.max()))}",
        "octaves 0–8 (% of notes)": " ".join(f"{100 * share:.0f}" for share in octaves),
        "duration s p5 / p50 / p95": " / ".join(f"{v:.2f}" for v in np.percentile(durations, [5, 50, 95])),
    }
    return stats | _from_corpus_json(root, {recording.id for recording in recordings})


def _from_corpus_json(root: Path, ids: set[str]) -> dict[str, str]:
    """What amt's corpus.json adds: velocities, pedal, sources, timbres and rooms (a folder of
    recordings, or its parent, may hold it)."""
    record = corpus_record(root)
    if record is None:
        return {}
    entries = [e for e in record["recordings"] if e["id"] in ids]
    default = _default_sounds(record.get("params", {}))
    stats = {}
    velocities = np.array([e["velocity"] for e in entries if e.get("velocity")])
    if len(velocities):
        stats["velocity p5–p50–p95"] = "–".join(f"{v:.0f}" for v in velocities.mean(axis=0))
    if any("pedal_share" in e for e in entries):
        shares = np.array([e.get("pedal_share", 0.0) for e in entries])
        stats["pedal down (share of time)"] = f"{shares.mean():.0%} ({np.mean(shares > 0):.0%} of recordings)"
    stats["sources"] = _shares(Counter(e["family"] for e in entries))
    stats["timbres"] = _shares(Counter(e.get("sounds") or e.get("renderer") or default for e in entries))
    rooms = [e["room"]["rt60_s"] for e in entries if "room" in e]
    stats["simulated rooms"] = "none (FluidSynth's reverb)"
    if rooms:
        stats["simulated rooms"] = f"{len(rooms) / len(entries):.0%}, RT60 {min(rooms):.2f}–{max(rooms):.2f} s"
    return stats


def _default_sounds(params: dict) -> str:
    """What rendered a corpus built without voices (one renderer for every recording)."""
    choices = [choice for split in params.get("renderers", {}).values() for choice in split]
    if not choices:
        return "default"
    renderer = choices[0][0]
    return Path(renderer["soundfont"]).name if renderer.get("soundfont") else renderer["renderer"]


def _shares(counts: Counter) -> str:
    total = sum(counts.values())
    return ", ".join(f"{name} {count / total:.0%}" for name, count in counts.most_common())


def comparison_rows(columns: dict[str, dict[str, str]], published: dict[str, dict[str, str]]) -> list[list[str]]:
    """One row per statistic, one column per corpus and then per published set ("–" where unknown)."""
    names = list(dict.fromkeys(name for column in columns.values() for name in column))
    everything = {**columns, **published}
    return [[name, *(column.get(name, "–") for column in everything.values())] for name in names]
