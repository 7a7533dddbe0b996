"""Decoders: frame probabilities on a frame grid → notes, and back onto the same frames."""

from dataclasses import replace

import numpy as np
import pretty_midi
import pytest

from amt.decode import DecoderConfig, Frames, decode, frame_rise, octave_echoes
from amt.errors import AmtError
from amt.grid import WINDOW_GRID
from amt.labels import PIANO_KEYS, REPORT_NOTES, LabelSpace
from amt.notes import NoteEvent, piano_roll, write_midi

HOP_S = WINDOW_GRID.hop_s
C4 = REPORT_NOTES.index(60)


def on_grid(probabilities: np.ndarray, onsets: np.ndarray | None = None) -> Frames:
    """Probabilities of the report's back-to-back windows (frame i is [i, i+1) hops)."""
    return Frames(WINDOW_GRID, probabilities, onsets)


def frame_span(event: NoteEvent) -> tuple[int, int]:
    """The frames ``[start, end)`` a note covers on the back-to-back grid (frame i is [i, i+1) hops)."""
    return round(event.onset_s / HOP_S), round(event.offset_s / HOP_S)


def probabilities(n: int, space: LabelSpace = REPORT_NOTES, **active: list[float]) -> np.ndarray:
    """``[n, notes]`` zeros with the given pitch columns (by note name) set from frame 0."""
    out = np.zeros((n, space.notes), dtype=np.float32)
    for name, values in active.items():
        out[: len(values), space.index(pretty_midi.note_name_to_number(name))] = values
    return out


def test_a_run_of_frames_becomes_a_note_covering_its_frames():
    times = WINDOW_GRID.times(10)
    events = decode("naive", on_grid(probabilities(10, C4=[0, 0.9, 0.9, 0.9])))
    assert len(events) == 1
    note = events[0]
    assert note.pitch == 60 and note.velocity == round(0.9 * 127)
    assert note.onset_s == pytest.approx(times[1] - HOP_S / 2) and note.offset_s == pytest.approx(times[3] + HOP_S / 2)
    assert frame_span(note) == (1, 4)


def test_decoding_then_rendering_gives_back_the_frames():
    rng = np.random.default_rng(0)
    probs = rng.random((200, REPORT_NOTES.notes)).astype(np.float32)
    roll = piano_roll(decode("naive", on_grid(probs)), WINDOW_GRID.times(200), REPORT_NOTES)
    np.testing.assert_array_equal(roll, probs > 0.5)


def test_naive_reattacks_on_a_dropout_frame_and_hysteresis_bridges_it():
    held = [0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9]
    frames = on_grid(probabilities(10, C4=held))
    naive = decode("naive", frames)
    assert [frame_span(e) for e in naive] == [(0, 3), (4, 7)]
    (bridged,) = decode("hysteresis", frames)
    assert frame_span(bridged) == (0, 7)
    assert len(decode("hysteresis", frames, DecoderConfig(max_gap_s=0.0))) == 2


def test_hysteresis_starts_above_on_and_continues_above_off():
    frames = on_grid(probabilities(10, C4=[0.4, 0.6, 0.35, 0.35, 0.2, 0.45]))
    (note,) = decode("hysteresis", frames, DecoderConfig(on=0.5, off=0.3, max_gap_s=0.0, min_note_s=0.0))
    assert frame_span(note) == (1, 4)
    assert decode("hysteresis", on_grid(probabilities(10, C4=[0.45] * 8))) == []  # never above on


def test_minimum_length_drops_blips():
    frames = on_grid(probabilities(10, C4=[0, 0.8, 0, 0, 0.8, 0.8, 0.8], E4=[0, 0, 0, 0.9]))
    assert {e.pitch for e in decode("hysteresis", frames, DecoderConfig(min_note_s=0.0))} == {60, 64}
    kept = decode("hysteresis", frames, DecoderConfig(min_note_s=0.15, max_gap_s=0.0))
    assert [(e.pitch, frame_span(e)) for e in kept] == [(60, (4, 7))]


def test_onsets_decoder_starts_notes_only_at_onsets():
    probs = probabilities(12, C4=[0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], E4=[0, 0, 0.9, 0.9, 0.9])
    onsets = probabilities(12, C4=[0, 0.8, 0.2, 0, 0.9, 0.1])  # C4 struck at frames 1 and 4; E4 never
    config = DecoderConfig(min_note_s=0.0, start_without_onset=False)
    notes = decode("onsets", on_grid(probs, onsets), config)
    assert [(e.pitch, frame_span(e)) for e in notes] == [(60, (1, 4)), (60, (4, 7))]  # split at the repeat
    with_frames = decode("onsets", on_grid(probs, onsets), DecoderConfig(min_note_s=0.0))  # the default
    assert {e.pitch for e in with_frames} == {60, 64}
    with pytest.raises(AmtError, match="onset probabilities"):
        decode("onsets", on_grid(probs), config)


def test_frame_rise_lifts_a_weak_onset_where_a_note_starts_not_inside_a_held_one():
    probs = probabilities(8, C4=[0, 0.2, 0.7, 0.9, 0.9, 0.9, 0.9], E4=[0.9] * 8)
    onsets = probabilities(8, C4=[0, 0.25], E4=[0.9, 0, 0, 0.25])  # C4's onset is weak; E4's blip is no re-attack
    rise = frame_rise(probs)
    assert rise[:4, C4].tolist() == pytest.approx([0.7, 0.9, 0.7, 0.2]) and not rise[1:, C4 + 4].any()
    config = DecoderConfig(onset_threshold=0.4, min_note_s=0.0, start_without_onset=False)
    assert [e.pitch for e in decode("onsets", on_grid(probs, onsets), config)] == [64]
    lifted = decode("onsets", on_grid(probs, onsets), replace(config, frame_rise=1.0))
    assert [(e.pitch, frame_span(e)) for e in lifted] == [(64, (0, 8)), (60, (1, 7))]
    assert frame_rise(probabilities(1, C4=[0.5]))[0, C4] == 0.5  # one frame: it rises from silence
    assert frame_rise(probabilities(0)).shape == (0, REPORT_NOTES.notes)


def test_an_onset_an_octave_from_a_much_stronger_one_is_dropped_a_struck_octave_kept():
    probs = probabilities(6, C3=[0.9] * 6, C4=[0.9] * 6, E4=[0.9] * 6, E5=[0.9] * 6, G4=[0.9] * 6)
    onsets = probabilities(6, C3=[0.95], C4=[0.5], E4=[0, 0.9], E5=[0.8], G4=[0.3])
    peaks = onsets > 0.2
    echoes = octave_echoes(peaks, onsets, 0.7)
    assert {REPORT_NOTES.midi(k) for k in np.flatnonzero(echoes.any(axis=0))} == {60}  # C4 under C3; E4/E5 alike
    config = DecoderConfig(onset_threshold=0.2, min_note_s=0.0, start_without_onset=False)
    assert {e.pitch for e in decode("onsets", on_grid(probs, onsets), config)} == {48, 60, 64, 67, 76}
    kept = decode("onsets", on_grid(probs, onsets), replace(config, octave_ratio=0.7))
    assert {e.pitch for e in kept} == {48, 64, 67, 76}  # G4 is weak too, but no octave away from a peak
    assert not octave_echoes(peaks, onsets, 0.0).any()


def test_decoder_input_and_config_errors():
    with pytest.raises(AmtError, match="unknown decoder 'greedy'"):
        decode("greedy", on_grid(probabilities(3)))
    with pytest.raises(AmtError, match=r"\[frames, 81\]"):
        on_grid(np.zeros((3, 80)))
    with pytest.raises(AmtError, match=r"onset probabilities \(4, 81\) do not match"):
        on_grid(probabilities(3), probabilities(4))
    with pytest.raises(AmtError, match="must not exceed the on threshold"):
        DecoderConfig(on=0.3, off=0.5)
    with pytest.raises(AmtError, match="probability"):
        DecoderConfig(on=1.5)


def keys(n: int, **active: list[float]) -> np.ndarray:
    """:func:`probabilities` in the 88-key label space."""
    return probabilities(n, PIANO_KEYS, **active)


def test_the_top_octave_decodes_in_the_88_key_space():
    frames = Frames(WINDOW_GRID, keys(6, C8=[0, 0.9, 0.9], A0=[0.9, 0.9]))
    assert frames.labels == PIANO_KEYS
    assert [(e.pitch, frame_span(e)) for e in decode("hysteresis", frames, DecoderConfig(min_note_s=0))] == [
        (21, (0, 2)),
        (108, (1, 3)),
    ]


def test_a_velocity_head_sets_each_notes_velocity_at_its_onset(tmp_path):
    sustain = keys(8, C4=[0.9] * 3 + [0] + [0.9] * 3)
    onsets = keys(8, C4=[0.9, 0, 0, 0, 0.9])
    velocities = keys(8, C4=[0.25, 0.9, 0.9, 0, 0.75])
    config = DecoderConfig(min_note_s=0)
    events = decode("onsets", Frames(WINDOW_GRID, sustain, onsets, velocities=velocities), config)
    assert [e.velocity for e in events] == [round(0.25 * 127), round(0.75 * 127)]
    without = decode("onsets", Frames(WINDOW_GRID, sustain, onsets), config)
    assert [e.velocity for e in without] == [round(0.9 * 127)] * 2  # the peak frame probability
    write_midi(events, tmp_path / "velocities.mid")
    (track,) = pretty_midi.PrettyMIDI(str(tmp_path / "velocities.mid")).instruments
    assert [note.velocity for note in track.notes] == [e.velocity for e in events]


def test_an_offset_peak_ends_a_note_before_its_frames_fade():
    sustain = keys(10, C4=[0.9] * 8)  # the frame head holds the note for 8 frames
    onsets = keys(10, C4=[0.9])
    offsets = keys(10, C4=[0.8, 0, 0, 0.3, 0.9, 0.2])  # a peak at the onset frame is not an end
    frames = Frames(WINDOW_GRID, sustain, onsets, offsets=offsets)
    config = DecoderConfig(min_note_s=0, offset_threshold=0.5)
    assert [frame_span(e) for e in decode("onsets", frames, config)] == [(0, 5)]
    assert [frame_span(e) for e in decode("onsets", frames, replace(config, end_at_offsets=False))] == [(0, 8)]
    assert [frame_span(e) for e in decode("onsets", frames, replace(config, offset_threshold=0.95))] == [(0, 8)]
