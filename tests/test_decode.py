"""Note events and decoders: frame probabilities → notes → MIDI / csv, and back onto frames."""

import numpy as np
import pretty_midi
import pytest

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, sequential_centres
from amt.errors import AmtError
from amt.notes import (
    NUM_NOTES,
    DecoderConfig,
    MusicNetLabels,
    NoteEvent,
    decode,
    events_from_musicnet,
    midi_to_index,
    piano_roll,
    read_note_csv,
    sounding_at,
    write_midi,
    write_note_csv,
)

HOP_S = WINDOW_SIZE / SAMPLE_RATE
C4 = midi_to_index(60)


def frame_times(n: int) -> np.ndarray:
    return sequential_centres(n * WINDOW_SIZE) / SAMPLE_RATE


def frame_span(event: NoteEvent) -> tuple[int, int]:
    """The frames ``[start, end)`` a note covers on the back-to-back grid (frame i is [i, i+1) hops)."""
    return round(event.onset_s / HOP_S), round(event.offset_s / HOP_S)


def probabilities(n: int, **active: list[float]) -> np.ndarray:
    """``[n, 81]`` zeros with the given pitch columns (by note name) set from frame 0."""
    out = np.zeros((n, NUM_NOTES), dtype=np.float32)
    for name, values in active.items():
        out[: len(values), midi_to_index(pretty_midi.note_name_to_number(name))] = values
    return out


def test_a_run_of_frames_becomes_a_note_covering_its_frames():
    times = frame_times(10)
    events = decode("naive", probabilities(10, C4=[0, 0.9, 0.9, 0.9]), times)
    assert len(events) == 1
    note = events[0]
    assert note.pitch == 60 and note.velocity == round(0.9 * 127)
    assert note.onset_s == pytest.approx(times[1] - HOP_S / 2) and note.offset_s == pytest.approx(times[3] + HOP_S / 2)
    assert frame_span(note) == (1, 4)


def test_decoding_then_rendering_gives_back_the_frames():
    rng = np.random.default_rng(0)
    probs = rng.random((200, NUM_NOTES)).astype(np.float32)
    times = frame_times(200)
    roll = piano_roll(decode("naive", probs, times), times)
    np.testing.assert_array_equal(roll, probs > 0.5)


def test_naive_reattacks_on_a_dropout_frame_and_hysteresis_bridges_it():
    held = [0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9]
    probs, times = probabilities(10, C4=held), frame_times(10)
    naive = decode("naive", probs, times)
    assert [frame_span(e) for e in naive] == [(0, 3), (4, 7)]
    (bridged,) = decode("hysteresis", probs, times)
    assert frame_span(bridged) == (0, 7)
    assert len(decode("hysteresis", probs, times, DecoderConfig(max_gap_s=0.0))) == 2


def test_hysteresis_starts_above_on_and_continues_above_off():
    probs, times = probabilities(10, C4=[0.4, 0.6, 0.35, 0.35, 0.2, 0.45]), frame_times(10)
    (note,) = decode("hysteresis", probs, times, DecoderConfig(on=0.5, off=0.3, max_gap_s=0.0, min_note_s=0.0))
    assert frame_span(note) == (1, 4)
    assert decode("hysteresis", probabilities(10, C4=[0.45] * 8), times) == []  # never above on


def test_minimum_length_drops_blips():
    probs, times = probabilities(10, C4=[0, 0.8, 0, 0, 0.8, 0.8, 0.8], E4=[0, 0, 0, 0.9]), frame_times(10)
    assert {e.pitch for e in decode("hysteresis", probs, times, DecoderConfig(min_note_s=0.0))} == {60, 64}
    kept = decode("hysteresis", probs, times, DecoderConfig(min_note_s=0.15, max_gap_s=0.0))
    assert [(e.pitch, frame_span(e)) for e in kept] == [(60, (4, 7))]


def test_onsets_decoder_starts_notes_only_at_onsets():
    frames = probabilities(12, C4=[0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], E4=[0, 0, 0.9, 0.9, 0.9])
    onsets = probabilities(12, C4=[0, 0.8, 0.2, 0, 0.9, 0.1])  # C4 struck at frames 1 and 4; E4 never
    times = frame_times(12)
    config = DecoderConfig(min_note_s=0.0, start_without_onset=False)
    notes = decode("onsets", frames, times, config, onsets=onsets)
    assert [(e.pitch, frame_span(e)) for e in notes] == [(60, (1, 4)), (60, (4, 7))]  # split at the repeat
    with_frames = decode("onsets", frames, times, DecoderConfig(min_note_s=0.0), onsets)  # the default
    assert {e.pitch for e in with_frames} == {60, 64}
    with pytest.raises(AmtError, match="onset probabilities"):
        decode("onsets", frames, times, config)


def test_decoder_input_and_config_errors():
    with pytest.raises(AmtError, match="unknown decoder 'greedy'"):
        decode("greedy", probabilities(3), frame_times(3))
    with pytest.raises(AmtError, match=r"\[frames, 81\]"):
        decode("naive", np.zeros((3, 80)), frame_times(3))
    with pytest.raises(AmtError, match="4 frame times for 3 frames"):
        decode("naive", probabilities(3), frame_times(4))
    with pytest.raises(AmtError, match="must not exceed the on threshold"):
        DecoderConfig(on=0.3, off=0.5)
    with pytest.raises(AmtError, match="probability"):
        DecoderConfig(on=1.5)


def test_midi_written_is_read_back_by_pretty_midi(tmp_path):
    events = [NoteEvent(0.0, 0.5, 60, 90), NoteEvent(0.25, 1.75, 64, 30), NoteEvent(1.0, 1.2, 101, 127)]
    write_midi(events, tmp_path / "out.mid", program=40)
    (instrument,) = pretty_midi.PrettyMIDI(str(tmp_path / "out.mid")).instruments
    assert instrument.program == 40
    back = sorted(instrument.notes, key=lambda n: n.start)
    assert [(n.pitch, n.velocity) for n in back] == [(60, 90), (64, 30), (101, 127)]
    assert np.allclose([(n.start, n.end) for n in back], [(e.onset_s, e.offset_s) for e in events], atol=1e-3)


def test_note_csv_round_trip_and_errors(tmp_path):
    events = [NoteEvent(0.1234567, 0.5, 60, 90), NoteEvent(1.0, 2.0, 21, 1)]
    write_note_csv(events, tmp_path / "notes.csv")
    assert (tmp_path / "notes.csv").read_text().splitlines()[0] == "onset_s,offset_s,pitch,velocity"
    back = read_note_csv(tmp_path / "notes.csv")
    assert [(e.pitch, e.velocity) for e in back] == [(60, 90), (21, 1)]
    assert back[0].onset_s == pytest.approx(0.123457, abs=1e-9)
    (tmp_path / "bad.csv").write_text("onset_s,offset_s,pitch,velocity\n1.0,0.5,60,90\n")
    with pytest.raises(AmtError, match=r"bad.csv:2: a note needs 0 <= onset_s < offset_s"):
        read_note_csv(tmp_path / "bad.csv")
    (tmp_path / "other.csv").write_text("start,end,note\n")
    with pytest.raises(AmtError, match="missing columns: onset_s, offset_s, pitch, velocity"):
        read_note_csv(tmp_path / "other.csv")


def test_unwritable_output_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(AmtError, match="cannot write here"):
        write_midi([], tmp_path / "file" / "out.mid")


def test_reference_roll_from_events_matches_the_labels_rule():
    labels = MusicNetLabels.from_rows(
        [
            (0, 44_100, 1, 60, 0, 1, "Quarter"),
            (6_144, 6_145, 1, 62, 0, 1, "Sixteenth"),  # sounds at exactly one window centre
            (30_000, 30_000, 1, 64, 0, 0, "Zero"),  # zero length: sounds nowhere, left out
            (20_000, 90_000, 1, 108, 0, 1, "Quarter"),  # outside A0..F7
        ]
    )
    events = events_from_musicnet(labels)
    assert [e.pitch for e in events] == [60, 62, 108]
    centres = sequential_centres(120_000, hop=1024)
    expected = sounding_at(labels, centres)[:, 21:102]
    np.testing.assert_array_equal(piano_roll(events, centres / SAMPLE_RATE), expected)
