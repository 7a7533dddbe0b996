"""No tracebacks: bad files, absurd options, damaged caches, a full disk and a read-only folder each end
in one line naming the file, exit status 2, and nothing half-written."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from amt.audio import SAMPLE_RATE, load_audio
from amt.cache import cached_array
from amt.cli import main
from amt.data.musicnet import write_windows
from amt.data.recordings import find_recordings
from amt.data.sequences import cached_features
from amt.errors import AmtError
from amt.grid import CONTEXT_GRID
from amt.labels import read_musicnet_csv
from amt.notes import read_note_csv

REPO = Path(__file__).resolve().parent.parent


def one_error_line(args: list[str], capsys) -> str:
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("amt: error: ")]
    assert errors and "Traceback" not in "\n".join(lines), lines
    return errors[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00s\x00t\x00a\x00r\x00t", "not UTF-8 text"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00", "not UTF-8 text"),
        (b"start_time,end_time\n1,2\x00,3\n", "missing columns"),
    ],
)
def test_binary_and_malformed_csvs_are_one_line(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    for read in (read_musicnet_csv, read_note_csv):
        with pytest.raises(AmtError, match=message) as error:
            read(path)
        assert str(path) in str(error.value)


def test_a_midi_file_given_as_labels_is_one_line(checkpoint, test_recording, tmp_path, capsys):
    midi = tmp_path / "take.mid"
    midi.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    args = ["transcribe", str(test_recording.wav), "-o", str(tmp_path / "out"), "--labels", str(midi)]
    line = one_error_line([*args, "--ckpt", str(checkpoint)], capsys)
    assert str(midi) in line and "not UTF-8 text" in line


def test_a_header_asking_for_an_absurd_sample_rate_is_refused_before_resampling(tmp_path):
    soundfile.write(tmp_path / "one-hertz.wav", np.zeros(100_000, dtype=np.float32), 1)
    with pytest.raises(AmtError, match=r"one-hertz.wav: its header gives a sample rate of 1 Hz, outside 1,000"):
        load_audio(tmp_path / "one-hertz.wav")


@pytest.mark.parametrize(
    "option",
    [["--on", "nan"], ["--off", "inf"], ["--min-note-s", "1e308"], ["--max-gap-s", "nan"], ["--hop", "999999"]],
)
def test_absurd_options_are_refused_by_the_parser(checkpoint, test_recording, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_status:
        main(["transcribe", str(test_recording.wav), "-o", str(tmp_path), "--ckpt", str(checkpoint), *option])
    assert exit_status.value.code == 2
    assert f"argument {option[0]}: must be" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncated array", "empty key", "garbage key"])
def test_a_damaged_cache_is_noticed_and_rebuilt(tmp_path, caplog, damage):
    path, key = tmp_path / "cache.npy", {"version": 1}
    values = np.arange(10_000, dtype=np.float32)
    cached_array(path, key, lambda: values)
    if damage == "truncated array":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.with_suffix(".json").write_text("" if damage == "empty key" else "{not json")
    again = cached_array(path, key, lambda: values)
    np.testing.assert_array_equal(again, values)
    np.testing.assert_array_equal(np.load(path), values)
    if damage == "truncated array":
        assert "damaged cache" in caplog.text


def test_a_damaged_recording_in_a_corpus_names_its_file(data_dir, tmp_path):
    corpus = tmp_path / "recordings"
    shutil.copytree(data_dir / "synth-tiny" / "recordings", corpus, ignore=shutil.ignore_patterns("features-*"))
    broken = next((corpus / "train_data").glob("*.wav"))
    broken.write_bytes(b"RIFF....WAVEfmt garbage")
    recording = next(r for r in find_recordings(corpus, "train") if r.wav == broken)
    with pytest.raises(AmtError, match=f"{broken}: not a readable audio file"):
        cached_features(recording, tmp_path / "cache", CONTEXT_GRID)
    splits = {split: find_recordings(corpus, split) for split in ("train", "valid", "test")}
    with pytest.raises(AmtError, match=f"{broken}: not a readable audio file"):
        write_windows(splits, tmp_path / "windows", windows_per_recording=2, progress=False)
    assert not list(tmp_path.glob(".windows.building-*")) and not (tmp_path / "windows").exists()


def mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()})")


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KB filesystem: too small for one recording of the tiny corpus."""
    yield from mounted(tmp_path / "small", "size=256k")


@pytest.fixture
def read_only(tmp_path):
    yield from mounted(tmp_path / "read-only", "ro,size=64k")


def mounted(folder: Path, options: str):
    mount_tmpfs(folder, options)
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing_half_written(small_disk, capsys):
    line = one_error_line(["data", "synth", "--preset", "tiny", "--out", str(small_disk / "corpus")], capsys)
    assert "No space left on device" in line and str(small_disk) in line
    leftovers = [p for p in small_disk.rglob("*") if p.is_file() and p.suffix in (".wav", ".csv", ".npy")]
    assert leftovers == [], leftovers


def test_spectra_on_a_full_disk_is_one_line(data_dir, small_disk, capsys):
    line = one_error_line(
        ["data", "spectra", str(data_dir / "synth-tiny" / "windows"), "--bins", "512", "--out", str(small_disk / "s")],
        capsys,
    )
    assert "No space left on device" in line
    assert not [p for p in small_disk.rglob("*.npy")]


def test_a_read_only_folder_is_one_line(test_recording, checkpoint, read_only, capsys):
    line = one_error_line(
        ["transcribe", str(test_recording.wav), "-o", str(read_only / "out"), "--ckpt", str(checkpoint)], capsys
    )
    assert "cannot create the output folder (Read-only file system)" in line
    line = one_error_line(["data", "synth", "--preset", "tiny", "--out", str(read_only / "corpus")], capsys)
    assert str(read_only) in line and "Read-only file system" in line


def test_a_recording_of_one_second_at_a_common_rate_still_loads(tmp_path):
    soundfile.write(tmp_path / "ok.wav", np.zeros(48_000, dtype=np.float32), 48_000)
    assert len(load_audio(tmp_path / "ok.wav")) == SAMPLE_RATE


def test_train_py_into_a_read_only_folder_is_one_line(read_only, run_env):
    result = subprocess.run(
        [sys.executable, "train.py", "model=cnn_1layer", "data.preset=tiny", f"hydra.run.dir={read_only / 'run'}"],
        cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"amt: error: {read_only / 'run'}: cannot write runs here ({read_only} is not a writable folder)"
    )
