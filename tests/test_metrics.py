"""Metrics by hand: frame and note counts, mir_eval's note matching, re-attacks, and micro AP."""

import mir_eval
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from amt.grid import CONTEXT_GRID
from amt.metrics import count_reattacks, micro_average_precision, score
from amt.notes import NoteEvent

TIMES = CONTEXT_GRID.times(CONTEXT_GRID.count(10 * CONTEXT_GRID.sample_rate))  # 10 s at a 23 ms hop
REFERENCE = [NoteEvent(0.5, 1.5, 60), NoteEvent(1.0, 2.0, 64), NoteEvent(3.0, 5.0, 67), NoteEvent(6.0, 6.4, 72)]


def shifted(events: list[NoteEvent], seconds: float) -> list[NoteEvent]:
    return [NoteEvent(e.onset_s + seconds, e.offset_s + seconds, e.pitch, e.velocity) for e in events]


def test_perfect_prediction():
    metrics = score(REFERENCE, REFERENCE, TIMES).metrics()
    for name in ("frame_precision", "frame_recall", "frame_f1", "note_f1", "note_offset_f1"):
        assert metrics[name] == 1.0, name
    assert metrics["reattacks_per_note"] == 0.0


def test_empty_prediction():
    metrics = score(REFERENCE, [], TIMES).metrics()
    assert metrics["frame_f1"] == metrics["note_f1"] == metrics["note_offset_f1"] == 0.0
    assert metrics["frame_recall"] == 0.0 and metrics["reference_notes"] == 4


def test_onsets_within_50_ms_match_and_beyond_do_not():
    assert score(REFERENCE, shifted(REFERENCE, 0.030), TIMES).metrics()["note_f1"] == 1.0
    assert score(REFERENCE, shifted(REFERENCE, -0.030), TIMES).metrics()["note_offset_f1"] == 1.0
    late = score(REFERENCE, shifted(REFERENCE, 0.070), TIMES).metrics()
    assert late["note_f1"] == 0.0 and late["frame_f1"] > 0.9


def test_offsets_count_within_20_percent_of_the_note():
    stretched = [NoteEvent(e.onset_s, e.onset_s + 1.3 * (e.offset_s - e.onset_s), e.pitch) for e in REFERENCE]
    metrics = score(REFERENCE, stretched, TIMES).metrics()
    assert metrics["note_f1"] == 1.0 and metrics["note_offset_f1"] == 0.0


def test_a_held_note_split_in_three_is_two_reattacks():
    split = [NoteEvent(t, t + 1 / 3, 60) for t in (0.5, 0.5 + 1 / 3, 0.5 + 2 / 3)]
    assert count_reattacks(REFERENCE[:1], split) == 2
    metrics = score(REFERENCE[:1], split, TIMES).metrics()
    assert metrics["reattacks_per_note"] == 2.0 and metrics["note_precision"] == pytest.approx(1 / 3)
    assert count_reattacks(REFERENCE, [NoteEvent(0.5, 0.6, 61), NoteEvent(2.0, 2.5, 64)]) == 0  # other pitch, after
    # a second voice entering in unison, then a repeated note that two voices strike 10 ms apart
    unison = [NoteEvent(0.0, 2.0, 60), NoteEvent(1.0, 1.5, 60), NoteEvent(2.0, 3.0, 60), NoteEvent(2.01, 2.5, 60)]
    assert count_reattacks(unison, shifted(unison, -0.02)) == 0
    assert count_reattacks(unison, [*unison, NoteEvent(0.5, 0.6, 60), NoteEvent(2.5, 2.8, 60)]) == 2
    assert count_reattacks(REFERENCE[:1], [NoteEvent(0.593, 1.5, 60)]) == 0  # a frame late is still the first


def test_counts_agree_with_mir_evals_precision_recall_f1():
    rng = np.random.default_rng(1)
    onsets = rng.uniform(0, 9, 60)
    reference = [
        NoteEvent(t, t + rng.uniform(0.1, 1), int(p)) for t, p in zip(onsets, rng.integers(50, 60, 60), strict=True)
    ]
    estimate = [NoteEvent(e.onset_s + rng.normal(0, 0.04), e.offset_s + rng.normal(0, 0.1), e.pitch) for e in reference]
    estimate = [e for e in estimate if e.offset_s > e.onset_s > 0][:50]
    metrics = score(reference, estimate, TIMES).metrics()

    def as_mir_eval(events):
        intervals = np.array([(e.onset_s, e.offset_s) for e in events])
        return intervals, mir_eval.util.midi_to_hz(np.array([e.pitch for e in events]))

    for ratio, prefix in ((None, "note"), (0.2, "note_offset")):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            *as_mir_eval(reference), *as_mir_eval(estimate), onset_tolerance=0.05, offset_ratio=ratio
        )
        assert (metrics[f"{prefix}_precision"], metrics[f"{prefix}_recall"]) == pytest.approx((p, r))
        assert metrics[f"{prefix}_f1"] == pytest.approx(f)


def test_micro_ap_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 12)) < 0.2).astype(np.float32)
    scores = labels * 0.5 + rng.random((200, 12))
    assert micro_average_precision(scores, labels) == pytest.approx(
        average_precision_score(labels, scores, average="micro"), abs=1e-6
    )
    assert micro_average_precision(scores, np.zeros_like(labels)) is None  # undefined without a positive label
