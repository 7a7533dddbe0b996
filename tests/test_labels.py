"""Label space and MusicNet label csvs."""

import numpy as np
import pytest

from amt.errors import AmtError
from amt.labels import (
    MUSICNET_COLUMNS,
    PIANO_KEYS,
    REPORT_NOTES,
    LabelSpace,
    MusicNetLabels,
    note_name,
    read_musicnet_csv,
    sounding_at,
    write_musicnet_csv,
)


def test_the_reports_label_space_is_a0_to_f7_and_the_transcribers_a0_to_c8():
    assert REPORT_NOTES.notes == 81 and PIANO_KEYS.notes == 88
    assert REPORT_NOTES.index(21) == 0 and REPORT_NOTES.index(101) == 80 and REPORT_NOTES.midi(80) == 101
    assert PIANO_KEYS.index(108) == 87 and PIANO_KEYS.midi(87) == 108 and 108 in PIANO_KEYS and 108 not in REPORT_NOTES
    assert (note_name(21), note_name(60), note_name(101), note_name(108)) == ("A0", "C4", "F7", "C8")
    with pytest.raises(ValueError):
        REPORT_NOTES.index(108)
    with pytest.raises(ValueError):
        PIANO_KEYS.index(20)
    assert LabelSpace.of_width(88) == PIANO_KEYS
    with pytest.raises(AmtError, match="81 or 88"):
        LabelSpace(80)


def test_cutting_to_a_label_space_counts_what_falls_outside():
    labels = np.zeros((3, 128), dtype=np.float32)
    labels[0, [20, 21, 60]] = 1
    labels[1, [101, 102, 108]] = 1
    cut, dropped = REPORT_NOTES.cut(labels)
    assert cut.shape == (3, 81) and dropped == 3
    assert cut[0, 0] == 1 and cut[0, 39] == 1 and cut[1, 80] == 1 and cut.sum() == 3
    cut, dropped = PIANO_KEYS.cut(labels)
    assert cut.shape == (3, 88) and dropped == 1 and cut[1, 87] == 1 and cut[1, 81] == 1
    with pytest.raises(AmtError, match="128"):
        REPORT_NOTES.cut(np.zeros((3, 81)))


def example_labels() -> MusicNetLabels:
    return MusicNetLabels.from_rows(
        [
            (44_100, 88_200, 1, 60, 0.0, 1.0, "Quarter"),
            (0, 44_100, 41, 67, 0.0, 0.5, "Eighth"),
            (66_150, 132_300, 1, 64, 0.5, 1.5, "Dotted Quarter"),
        ]
    )


def test_csv_round_trip_sorted_by_start(tmp_path):
    write_musicnet_csv(tmp_path / "1.csv", example_labels())
    assert (tmp_path / "1.csv").read_text().splitlines()[0] == ",".join(MUSICNET_COLUMNS)
    labels = read_musicnet_csv(tmp_path / "1.csv")
    assert labels.start.tolist() == [0, 44_100, 66_150]
    assert labels.note.tolist() == [67, 60, 64] and labels.instrument.tolist() == [41, 1, 1]
    assert labels.note_value.tolist() == ["Eighth", "Quarter", "Dotted Quarter"]


def test_reads_a_real_musicnet_style_file(tmp_path):
    (tmp_path / "2575.csv").write_text(
        "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"
        "9182,90078,1,53,4.0,1.5,Dotted Quarter\n"
        "9182,33758,1,65,4.0,0.5,Eighth\n"
    )
    labels = read_musicnet_csv(tmp_path / "2575.csv")
    assert len(labels) == 2 and labels.end.tolist() == [90_078, 33_758]


def test_notes_sounding_at_samples_use_half_open_intervals():
    labels = example_labels()
    active = sounding_at(labels, np.array([0, 44_099, 44_100, 70_000, 88_200, 200_000]))
    assert active.shape == (6, 128)
    assert [set(np.flatnonzero(row)) for row in active] == [{67}, {67}, {60}, {60, 64}, {64}, set()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start_time,end_time,note\n1,2,60\n", "missing columns: instrument, start_beat, end_beat, note_value"),
        (
            "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n0.5,1.25,1,60,0,1,Quarter\n",
            "times look like seconds",
        ),
        (
            "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n50000,40000,1,60,0,1,Quarter\n",
            "end_time before start_time",
        ),
        (
            "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n5000,x,1,60,0,1,Quarter\n",
            "unreadable row",
        ),
        (
            "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n5000,9000,1,130,0,1,Quarter\n",
            "MIDI pitches",
        ),
    ],
)
def test_bad_csvs_fail_with_one_clear_line(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(AmtError, match=message) as error:
        read_musicnet_csv(tmp_path / "bad.csv")
    assert "bad.csv" in str(error.value) and "\n" not in str(error.value)
