"""Nothing lost: outputs never replace inputs or labels, amt deletes only what it wrote, and a killed
build leaves nothing behind for good. Real files, real folders, a real SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amt.cli import main
from amt.data.musicnet import write_windows
from amt.data.recordings import find_recordings
from amt.data.synth import SynthCorpus
from amt.errors import AmtError
from amt.files import OWNED_MARKER, STAGING_MARKER

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def take(test_recording, tmp_path) -> tuple[Path, Path]:
    """A recording and its label csv side by side, as the README's example has them."""
    shutil.copy(test_recording.wav, tmp_path / "take.wav")
    shutil.copy(test_recording.csv, tmp_path / "take.csv")
    return tmp_path / "take.wav", tmp_path / "take.csv"


def transcribe_take(wav: Path, labels: Path, checkpoint: Path) -> int:
    """``amt transcribe take.wav -o take.mid --labels LABELS``, as the README has it."""
    return main(
        ["transcribe", str(wav), "-o", str(wav.with_suffix(".mid")), "--labels", str(labels), "--ckpt", str(checkpoint)]
    )


def test_the_readme_example_keeps_the_labels(checkpoint, take, capsys):
    wav, labels = take
    before = labels.read_bytes()
    assert transcribe_take(wav, labels, checkpoint) == 0
    assert labels.read_bytes() == before
    assert wav.with_name("take.notes.csv").is_file() and wav.with_suffix(".mid").is_file()
    assert "note F1" in capsys.readouterr().out


def test_transcribing_a_flat_folder_into_itself_keeps_every_label_csv(checkpoint, data_dir, tmp_path):
    recordings = find_recordings(data_dir / "synth-tiny" / "recordings", "test")
    for recording in recordings:
        shutil.copy(recording.wav, tmp_path)
        shutil.copy(recording.csv, tmp_path)
    labels = {csv.name: csv.read_bytes() for csv in tmp_path.glob("*.csv")}
    assert (
        main(["transcribe", *map(str, sorted(tmp_path.glob("*.wav"))), "-o", str(tmp_path), "--ckpt", str(checkpoint)])
        == 0
    )
    assert {name: (tmp_path / name).read_bytes() for name in labels} == labels
    assert len(list(tmp_path.glob("*.notes.csv"))) == len(recordings)


def test_an_output_that_would_replace_an_input_is_refused_before_any_work(checkpoint, take, capsys):
    wav, labels = take
    notes = wav.with_name("take.notes.csv")
    notes.write_bytes(labels.read_bytes())  # labels that happen to carry the output's name
    before = notes.read_bytes()
    assert transcribe_take(wav, notes, checkpoint) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"amt: error: {notes}: is an input; amt never writes over its inputs (choose another -o)"
    assert notes.read_bytes() == before and not wav.with_suffix(".mid").exists()


def test_a_transcription_that_writes_nothing_leaves_no_folder_behind(checkpoint, tmp_path, capsys):
    (tmp_path / "noise.wav").write_text("not audio")
    out = tmp_path / "new" / "outputs"
    assert main(["transcribe", str(tmp_path / "noise.wav"), "-o", str(out), "--ckpt", str(checkpoint)]) == 2
    assert not (tmp_path / "new").exists()
    assert "not a readable audio file" in capsys.readouterr().err


def test_synth_refuses_a_folder_holding_files_it_did_not_write(tmp_path):
    mine = tmp_path / "corpus" / "recordings" / "train_data" / "my-recording.wav"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"precious")
    with pytest.raises(AmtError, match="holds train_data/my-recording.wav, which amt did not write"):
        SynthCorpus(tmp_path / "corpus", preset="tiny", progress=False).prepare()
    assert mine.read_bytes() == b"precious"
    assert not (mine.parent.parent / OWNED_MARKER).exists()


def test_a_rebuild_deletes_only_the_files_amt_wrote(data_dir, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(data_dir / "synth-tiny", root)
    listed = json.loads((root / "recordings" / OWNED_MARKER).read_text())["files"]
    assert len(listed) == 8 * 3 and all(
        (root / "recordings" / name).is_file() for name in listed
    )  # audio, labels, MIDI
    stranger = root / "recordings" / "test_data" / "stranger.wav"
    stranger.write_bytes(b"not amt's")
    with pytest.raises(AmtError, match="holds test_data/stranger.wav, which amt did not write"):
        SynthCorpus(root, preset="tiny", seed=1, progress=False).prepare()
    assert stranger.read_bytes() == b"not amt's"
    assert all((root / "recordings" / name).is_file() for name in listed), "refused before deleting anything"
    stranger.unlink()
    SynthCorpus(root, preset="tiny", seed=1, progress=False).prepare()
    rebuilt = json.loads((root / "recordings" / OWNED_MARKER).read_text())["files"]
    assert json.loads((root / "corpus.json").read_text())["params"]["seed"] == 1 and len(rebuilt) == 8 * 3


SLOW_BUILD = """
import sys, time
from pathlib import Path
from amt.data import musicnet
from amt.data.recordings import find_recordings
real = musicnet.recording_windows
def slow(*args, **kwargs):
    time.sleep(0.5)
    return real(*args, **kwargs)
musicnet.recording_windows = slow
recordings = Path(sys.argv[1])
splits = {split: find_recordings(recordings, split) for split in ("train", "valid", "test")}
musicnet.write_windows(splits, Path(sys.argv[2]), windows_per_recording=4, progress=False)
"""


def test_a_windows_build_killed_with_sigkill_is_cleaned_up_by_the_next(data_dir, tmp_path):
    recordings, out = data_dir / "synth-tiny" / "recordings", tmp_path / "windows"
    build = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(recordings), str(out)], cwd=REPO)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".windows.building-*/{STAGING_MARKER}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    os.kill(build.pid, signal.SIGKILL)
    build.wait()
    (left,) = tmp_path.glob(".windows.building-*")
    splits = {split: find_recordings(recordings, split) for split in ("train", "valid", "test")}
    write_windows(splits, out, windows_per_recording=4, progress=False)
    assert not left.exists() and not list(tmp_path.glob(".windows.building-*"))
    assert (out / "windows.json").is_file()


def test_a_staging_folder_amt_cannot_prove_is_its_own_is_left_alone(data_dir, tmp_path):
    foreign = tmp_path / ".windows.building-someone-elses"
    foreign.mkdir()
    (foreign / "data.bin").write_bytes(b"x")
    recordings = data_dir / "synth-tiny" / "recordings"
    splits = {split: find_recordings(recordings, split) for split in ("train", "valid", "test")}
    write_windows(splits, tmp_path / "windows", windows_per_recording=2, progress=False)
    assert (foreign / "data.bin").read_bytes() == b"x"
