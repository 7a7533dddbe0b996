"""Nothing silent: labels or predictions in the wrong unit are caught against the audio, a bad
recording is named and left out while the others are still scored, and the exit status says so."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from amt.cli import main
from amt.data.recordings import find_recordings
from amt.labels import MUSICNET_COLUMNS, read_musicnet_csv
from amt.notes import events_from_musicnet, write_note_csv


@pytest.fixture
def flat(data_dir, tmp_path) -> Path:
    """The tiny corpus's two test recordings as ID.wav + ID.csv."""
    folder = tmp_path / "flat"
    folder.mkdir()
    for recording in find_recordings(data_dir / "synth-tiny" / "recordings", "test"):
        shutil.copy(recording.wav, folder)
        shutil.copy(recording.csv, folder)
    return folder


def rescale_labels(csv_path: Path, factor: float) -> None:
    """Multiply a MusicNet csv's times by ``factor`` (keeping them whole samples)."""
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MUSICNET_COLUMNS)
        writer.writeheader()
        for row in rows:
            row["start_time"], row["end_time"] = (str(round(int(row[k]) * factor)) for k in ("start_time", "end_time"))
            writer.writerow(row)


def evaluate_perfect(flat: Path, tmp_path: Path, capsys) -> tuple[int, dict, str]:
    predictions = tmp_path / "perfect"
    predictions.mkdir()
    for labels in flat.glob("*.csv"):
        write_note_csv(events_from_musicnet(read_musicnet_csv(labels)), predictions / f"{labels.stem}.notes.csv")
    status = main(["evaluate", str(flat), "--predictions", str(predictions), "--json", str(tmp_path / "m.json")])
    return status, json.loads((tmp_path / "m.json").read_text()), capsys.readouterr().err


def test_labels_lying_past_the_end_of_the_audio_are_named_and_the_rest_still_scored(flat, tmp_path, capsys):
    late, good = sorted(flat.glob("*.csv"))
    rescale_labels(late, 1000)  # an hour past the audio's end
    status, results, errors = evaluate_perfect(flat, tmp_path, capsys)
    assert status == 2
    assert set(results["failed"]) == {late.stem} and results["settings"]["recordings"] == 1
    assert set(results["systems"]["perfect"]) == {good.stem, "pooled"}
    assert results["systems"]["perfect"]["pooled"]["note_f1"] == 1.0
    lines = errors.strip().splitlines()
    assert f"amt: error: {late}: a note starts at" in lines[0] and "after the recording ends" in lines[0]
    assert "sample indices at 44.1 kHz" in lines[0] and lines[-1].startswith("amt: error: 1 recording(s)")


def test_labels_in_milliseconds_read_as_samples_are_warned_about(flat, tmp_path, capsys, caplog):
    short, _ = sorted(flat.glob("*.csv"))
    rescale_labels(short, 1000 / 44_100)  # milliseconds where samples belong: 44 times too short
    status, results, _ = evaluate_perfect(flat, tmp_path, capsys)
    assert status == 0  # the predictions match the (wrong) labels, so only the warning can tell
    assert f"{short}: its notes all end by" in caplog.text and "sample indices at 44.1 kHz" in caplog.text


def test_predictions_in_samples_instead_of_seconds_are_refused(flat, tmp_path, capsys):
    predictions = tmp_path / "in-samples"
    predictions.mkdir()
    for labels in flat.glob("*.csv"):
        events = events_from_musicnet(read_musicnet_csv(labels))
        in_samples = [type(e)(e.onset_s * 44_100, e.offset_s * 44_100, e.pitch, e.velocity) for e in events]
        write_note_csv(in_samples, predictions / f"{labels.stem}.notes.csv")
    assert main(["evaluate", str(flat), "--predictions", str(predictions)]) == 2
    errors = capsys.readouterr().err
    assert "after the recording ends" in errors and "onset_s/offset_s in seconds" in errors
    assert "no recording could be scored" in errors


def test_evaluate_and_tune_go_on_past_an_unreadable_recording(checkpoint, flat, tmp_path, capsys):
    broken, good = sorted(flat.glob("*.wav"))
    broken.write_bytes(b"not audio at all")
    assert main(["evaluate", str(flat), "--ckpt", str(checkpoint), "--json", str(tmp_path / "e.json")]) == 2
    results = json.loads((tmp_path / "e.json").read_text())
    assert set(results["systems"]["hysteresis"]) == {good.stem, "pooled"} and list(results["failed"]) == [broken.stem]
    assert f"amt: error: {broken}: not a readable audio file" in capsys.readouterr().err
    tune = ["tune", str(flat), "--ckpt", str(checkpoint), "--grid", "0.3,0.6", "--json", str(tmp_path / "t.json")]
    assert main(tune) == 2
    printed = capsys.readouterr()
    assert "best: --on" in printed.out and f"{broken}: not a readable audio file" in printed.err
    assert len(json.loads((tmp_path / "t.json").read_text())) == 3
