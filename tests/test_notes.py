"""Note events: MIDI and note csv files, notes from MusicNet labels, and piano rolls."""

import numpy as np
import pretty_midi
import pytest

from amt.errors import AmtError
from amt.grid import CONTEXT_GRID
from amt.labels import PIANO_KEYS, REPORT_NOTES, MusicNetLabels, sounding_at
from amt.notes import NoteEvent, events_from_musicnet, piano_roll, read_note_csv, write_midi, write_note_csv


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
            (20_000, 90_000, 1, 108, 0, 1, "Quarter"),  # C8: outside A0..F7, inside A0..C8
        ]
    )
    events = events_from_musicnet(labels)
    assert [e.pitch for e in events] == [60, 62, 108]
    centres = CONTEXT_GRID.recording_centres(120_000)
    times = CONTEXT_GRID.times(len(centres))
    np.testing.assert_array_equal(piano_roll(events, times, REPORT_NOTES), sounding_at(labels, centres)[:, 21:102])
    keys = piano_roll(events, times, PIANO_KEYS)
    np.testing.assert_array_equal(keys, sounding_at(labels, centres)[:, 21:109])
    assert keys[:, 87].any()
