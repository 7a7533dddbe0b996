"""amt/diagnostics.py and ``amt evaluate --diagnostics``: where notes are lost, by attribute."""

import pretty_midi
import pytest

from amt.cli import main
from amt.data.recordings import performed_pedal
from amt.diagnostics import (
    ALL_NOTES,
    FALSE_ALARM_KINDS,
    PEDAL_BINS,
    add_false_alarms,
    ending_metrics,
    endings,
    false_alarm_metrics,
    false_alarms,
    metrics,
    sounding_count,
    tally,
    with_performed_velocities,
)
from amt.labels import MusicNetLabels, write_musicnet_csv
from amt.notes import NoteEvent


def note(onset, pitch, length=0.5, velocity=64):
    return NoteEvent(onset, onset + length, pitch, velocity)


def test_bins_split_the_pooled_counts_by_attribute():
    reference = [note(0.0, 60), note(0.0, 64), note(0.0, 67), note(1.0, 96, 0.05, 110), note(2.0, 30, 2.5, 20)]
    estimate = [note(0.01, 60), note(0.02, 64), note(1.0, 97, 0.05), note(2.0, 30, 2.4)]
    counts = metrics(tally(reference, estimate, "FluidR3_GM.sf2"))
    assert counts["octave"]["octave 4"] == {"reference_notes": 3, "recall": 2 / 3, "predicted_notes": 2,
                                            "precision": 1.0, "f1": pytest.approx(0.8)}  # fmt: skip
    assert counts["octave"]["octave 7"]["recall"] == 0.0 and counts["octave"]["octave 7"]["precision"] == 0.0
    assert counts["polyphony"]["3–4 notes"]["reference_notes"] == 3 and counts["polyphony"]["1 note"]["recall"] == 0.5
    assert counts["duration"]["< 0.1 s"]["recall"] == 0.0 and counts["duration"]["≥ 2 s"]["recall"] == 1.0
    assert counts["velocity"]["≥ 100"]["recall"] == 0.0 and counts["velocity"]["< 40"]["recall"] == 1.0
    assert counts["timbre"] == {"FluidR3_GM.sf2": {"reference_notes": 5, "recall": 0.6, "predicted_notes": 4,
                                                   "precision": 0.75, "f1": pytest.approx(2 / 3)}}  # fmt: skip
    for attribute in ("octave", "polyphony", "duration"):
        assert sum(cell["reference_notes"] for cell in counts[attribute].values()) == len(reference)


def test_polyphony_counts_the_notes_sounding_at_a_time():
    reference = [note(0.0, 60, 1.0), note(0.5, 64, 1.0), note(1.0, 67, 1.0)]
    assert sounding_count(reference, [0.25, 0.75, 1.0, 1.75, 3.0]).tolist() == [1, 2, 2, 1, 0]


def test_reference_velocities_come_from_the_performance_midi(tmp_path):
    (tmp_path / "test_labels").mkdir()
    (tmp_path / "test_midi").mkdir()
    csv = tmp_path / "test_labels" / "7.csv"
    write_musicnet_csv(csv, MusicNetLabels.from_rows([(44100, 66150, 1, 60, 0.0, 1.0, "Quarter")]))
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(23, 60, 1.0, 1.5))
    midi.instruments.append(piano)
    midi.write(str(tmp_path / "test_midi" / "7.mid"))
    performed, known = with_performed_velocities([note(1.0, 60)], csv)
    assert known and performed[0].velocity == 23
    assert with_performed_velocities([note(1.0, 60)], tmp_path / "elsewhere.csv") == ([note(1.0, 60)], False)


def test_endings_measure_offsets_of_onset_matched_notes_against_mir_evals_tolerance():
    reference = [note(0.0, 60, 1.0), note(1.0, 62, 0.1), note(2.0, 64, 1.0), note(3.0, 65, 1.0), note(5.0, 67)]
    estimate = [
        note(0.01, 60, 1.19),  # ends 0.2 s late: within 0.2 × 1 s
        note(1.0, 62, 0.04),  # 60 ms early on a 0.1 s note: outside the 50 ms floor
        note(2.0, 64, 1.3),  # 0.3 s late
        note(3.02, 65, 0.9),  # 0.12 s early: within 0.2 s
        note(4.0, 67),  # no reference onset near it: not counted
    ]
    table = ending_metrics(endings(reference, estimate))
    assert list(table) == [ALL_NOTES]
    assert table[ALL_NOTES] == {"matched_notes": 4, "on_time": 0.5, "early": 0.25, "late": 0.25,
                                "median_error_ms": pytest.approx(70.0)}  # fmt: skip
    by_pedal = ending_metrics(endings(reference, estimate, pedal=[(0.9, 1.05), (3.5, 4.5)]))
    assert list(by_pedal) == [*PEDAL_BINS, ALL_NOTES]
    assert by_pedal[PEDAL_BINS[1]]["matched_notes"] == 2 and by_pedal[PEDAL_BINS[1]]["on_time"] == 1.0
    assert by_pedal[PEDAL_BINS[0]]["on_time"] == 0.0 and by_pedal[ALL_NOTES] == table[ALL_NOTES]


def test_false_alarms_are_told_apart_by_the_reference_notes_struck_near_them():
    reference = [note(0.0, 48), note(0.0, 52), note(1.0, 60), note(2.0, 40), note(3.0, 70)]
    estimate = [
        note(0.01, 48),  # matched
        note(0.02, 60),  # an octave above C3 (E3 struck too: the octave wins)
        note(0.0, 53),  # a semitone above E3
        note(1.0, 60),  # matched
        note(1.03, 60),  # the same key again: its reference is taken
        note(2.04, 64),  # two octaves above E2
        note(3.0, 75),  # a fourth above: another key
        note(3.2, 70),  # 0.2 s after the strike: no onset near
    ]
    found = false_alarms(reference, estimate)
    assert list(found) == list(FALSE_ALARM_KINDS)
    assert found == {"same key": 1, "octave": 2, "semitone": 1, "other key": 1, "no onset near": 1}
    assert false_alarms(reference, reference) == dict.fromkeys(FALSE_ALARM_KINDS, 0)
    total = add_false_alarms(add_false_alarms({}, found), found)
    table = false_alarm_metrics(total)
    assert table["octave"] == {"notes": 4, "share": pytest.approx(4 / 12)}
    assert sum(cell["share"] for cell in table.values()) == pytest.approx(1.0)


def test_pedal_intervals_come_from_the_performance_midi(tmp_path):
    (tmp_path / "test_labels").mkdir()
    (tmp_path / "test_midi").mkdir()
    midi = pretty_midi.PrettyMIDI()
    for changes in ([(64, 127, 1.0), (64, 0, 2.0), (67, 127, 2.5), (64, 100, 3.0)], [(64, 64, 0.5), (64, 63, 0.75)]):
        player = pretty_midi.Instrument(0)
        player.notes.append(pretty_midi.Note(80, 60, 0.0, 4.0))
        player.control_changes += [pretty_midi.ControlChange(number, value, time) for number, value, time in changes]
        midi.instruments.append(player)
    midi.write(str(tmp_path / "test_midi" / "7.mid"))
    assert performed_pedal(tmp_path / "test_labels" / "7.csv") == [(0.5, 0.75), (1.0, 2.0), (3.0, 4.0)]
    assert performed_pedal(tmp_path / "elsewhere.csv") is None


def test_amt_evaluate_prints_the_diagnostics(checkpoint, data_dir, tmp_path, capsys):
    out = tmp_path / "results.json"
    recordings = str(data_dir / "synth-tiny" / "recordings")
    assert main(["evaluate", recordings, "--ckpt", str(checkpoint), "--diagnostics", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onset-only note F1 by attribute" in printed and "polyphony" in printed and "timbre" in printed
    assert "where the notes with a matched onset end" in printed and "by the reference notes struck" in printed
    import json

    results = json.loads(out.read_text())
    assert set(results["diagnostics"]["hysteresis"]) == {"octave", "polyphony", "duration", "velocity", "timbre"}
    assert set(results["endings"]["hysteresis"]) <= {*PEDAL_BINS, ALL_NOTES}
    assert list(results["false_alarms"]["hysteresis"]) == list(FALSE_ALARM_KINDS)


def test_a_flat_view_of_linked_recordings_still_finds_velocities_and_timbres(checkpoint, data_dir, tmp_path):
    from amt.checkpoint import load
    from amt.data.recordings import find_recordings
    from amt.evaluate import evaluate
    from amt.transcribe import ModelRun

    view = tmp_path / "view"
    view.mkdir()
    for recording in find_recordings(data_dir / "synth-tiny" / "recordings", "test"):
        (view / recording.wav.name).symlink_to(recording.wav)
        (view / recording.csv.name).symlink_to(recording.csv)
    model = load(checkpoint)
    run = ModelRun(model.model, model.grid(None), ("hysteresis",), model.decoder_config)
    diagnostics = evaluate(view, run, diagnose=True)["diagnostics"]["hysteresis"]
    assert "velocity" in diagnostics and set(diagnostics["timbre"]) == {"default"}
