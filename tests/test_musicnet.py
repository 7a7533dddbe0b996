"""MusicNet recordings → mini-MusicNet windows, on real wav and csv files written here."""

import json

import numpy as np
import pytest
import soundfile

from amt.audio import SAMPLE_RATE, WINDOW_SIZE
from amt.data.minimusicnet import load_split
from amt.data.musicnet import (
    EXTRA_TEST_IDS,
    VALIDATION_IDS,
    MusicNetWindows,
    mini_musicnet_splits,
    recording_windows,
    sequential_windows,
    window_centres,
    window_statistics,
    windows_complete,
    write_windows,
)
from amt.data.recordings import Recording, find_recordings
from amt.errors import AmtError
from amt.grid import FrameGrid
from amt.labels import MusicNetLabels, write_musicnet_csv

# (start s, end s, MIDI pitch)
NOTES = [(0.0, 2.5, 60), (1.5, 4.0, 64), (3.0, 3.5, 69), (0.5, 1.0, 108)]


def midi_hz(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def write_recording(root, split, recording_id, seconds=4.0, notes=NOTES, rate=SAMPLE_RATE, channels=1) -> Recording:
    """A MusicNet-layout recording: sine tones for ``notes`` and their csv (times in 44.1 kHz samples)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.01 * np.sin(2 * np.pi * 50 * t)  # a quiet hum, so no window is silent
    for start, end, pitch in notes:
        mono += 0.2 * np.sin(2 * np.pi * midi_hz(pitch) * t) * ((t >= start) & (t < end))
    wav = root / f"{split}_data" / f"{recording_id}.wav"
    csv = root / f"{split}_labels" / f"{recording_id}.csv"
    wav.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(wav, np.stack([mono] * channels, axis=1), rate, subtype="FLOAT")
    rows = [(round(s * SAMPLE_RATE), round(e * SAMPLE_RATE), 1, p, 0.0, 1.0, "Quarter") for s, e, p in notes]
    write_musicnet_csv(csv, MusicNetLabels.from_rows(rows))
    return Recording(id=recording_id, wav=wav, csv=csv)


def expected_labels(centres: np.ndarray, notes=NOTES) -> np.ndarray:
    labels = np.zeros((len(centres), 128))
    for start, end, pitch in notes:
        labels[:, pitch] = (centres >= round(start * SAMPLE_RATE)) & (centres < round(end * SAMPLE_RATE))
    return labels


def test_window_centres_are_construct_py_linspace_inside_10_s_margins():
    n = 75 * SAMPLE_RATE
    centres = window_centres(n)
    expected = np.linspace(10 * SAMPLE_RATE, n - 10 * SAMPLE_RATE, num=250).astype(np.int32)
    np.testing.assert_array_equal(centres, expected)
    assert centres[0] == 10 * SAMPLE_RATE and centres[-1] == n - 10 * SAMPLE_RATE
    assert np.ptp(np.diff(centres)) <= 1


def test_short_recordings_shrink_the_margin_so_windows_fit():
    n = 8 * SAMPLE_RATE
    centres = window_centres(n, count=50)
    assert len(centres) == 50 and np.all(np.diff(centres) > 0)
    assert centres[0] == n // 4 and centres[-1] == n - n // 4
    one_window = window_centres(WINDOW_SIZE, count=3)
    np.testing.assert_array_equal(one_window, [WINDOW_SIZE // 2] * 3)
    assert window_centres(n, count=5, margin_s=0.0)[0] == WINDOW_SIZE // 2


@pytest.mark.parametrize(
    ("n", "count", "margin"), [(WINDOW_SIZE - 1, 10, 10.0), (SAMPLE_RATE, 0, 10.0), (SAMPLE_RATE, 5, -1)]
)
def test_window_centres_refuse_impossible_requests(n, count, margin):
    with pytest.raises(AmtError):
        window_centres(n, count, margin)


def test_recording_windows_are_normalised_audio_labelled_at_their_centres(tmp_path):
    recording = write_recording(tmp_path, "train", "1727")
    windows, labels = recording_windows(recording, count=20, margin_s=0.5)
    assert windows.shape == (20, WINDOW_SIZE) and windows.dtype == np.float32
    assert labels.shape == (20, 128) and labels.dtype == np.float64
    centres = window_centres(4 * SAMPLE_RATE, 20, 0.5)
    np.testing.assert_array_equal(labels, expected_labels(centres))
    samples = soundfile.read(recording.wav, dtype="float32")[0]
    raw = samples[centres[7] - WINDOW_SIZE // 2 : centres[7] + WINDOW_SIZE // 2]
    np.testing.assert_allclose(windows[7], raw / np.abs(raw).max(), atol=1e-6)
    np.testing.assert_allclose(np.abs(windows).max(axis=1), 1.0)


def test_recording_windows_resample_48k_stereo_and_keep_44k1_label_times(tmp_path):
    notes = [(0.0, 2.0, 69), (2.0, 4.0, 81)]
    recording = write_recording(tmp_path, "train", "1", notes=notes, rate=48_000, channels=2)
    windows, labels = recording_windows(recording, count=8, margin_s=0.5)
    centres = window_centres(4 * SAMPLE_RATE, 8, 0.5)
    np.testing.assert_array_equal(labels, expected_labels(centres, notes))
    peaks = np.abs(np.fft.rfft(windows, axis=1)).argmax(axis=1) * SAMPLE_RATE / WINDOW_SIZE
    np.testing.assert_allclose(peaks, np.where(labels[:, 69] == 1, 440.0, 880.0), atol=11)


def test_sequential_windows_cover_the_recording_back_to_back(tmp_path):
    recording = write_recording(tmp_path, "test", "2")
    centres, windows, labels = sequential_windows(recording)
    n_windows = -(-4 * SAMPLE_RATE // WINDOW_SIZE)
    np.testing.assert_array_equal(centres, WINDOW_SIZE // 2 + WINDOW_SIZE * np.arange(n_windows))
    assert windows.shape == (n_windows, WINDOW_SIZE) and labels.shape == (n_windows, 128)
    np.testing.assert_array_equal(labels, expected_labels(centres))
    assert len(sequential_windows(recording, FrameGrid(hop=1024))[0]) > 3 * n_windows


def test_find_recordings_sorts_by_id_and_pairs_wav_with_csv(tmp_path):
    for recording_id in ("2575", "999", "1727"):
        write_recording(tmp_path, "valid", recording_id, seconds=0.5, notes=[(0.1, 0.2, 60)])
    recordings = find_recordings(tmp_path, "valid")
    assert [r.id for r in recordings] == ["999", "1727", "2575"]
    assert recordings[0].csv == tmp_path / "valid_labels" / "999.csv"


def test_find_recordings_errors_name_the_path(tmp_path):
    with pytest.raises(AmtError, match="train_data: no such folder"):
        find_recordings(tmp_path, "train")
    (tmp_path / "train_data").mkdir()
    with pytest.raises(AmtError, match="train_data: no .wav or .flac recordings"):
        find_recordings(tmp_path, "train")
    write_recording(tmp_path, "train", "1727", seconds=0.5, notes=[(0.1, 0.2, 60)])
    (tmp_path / "train_labels" / "1727.csv").unlink()
    with pytest.raises(AmtError, match=r"1727\.wav: no label file .*1727\.csv"):
        find_recordings(tmp_path, "train")


def small_splits(root):
    return {
        "train": [write_recording(root, "train", i) for i in ("1", "2")],
        "test": [write_recording(root, "test", "3", seconds=2.0)],
    }


def test_write_windows_writes_npy_files_and_windows_json(tmp_path):
    splits, out = small_splits(tmp_path / "musicnet"), tmp_path / "windows"
    params = {"source": "test", "ids": ("1", "2")}
    assert write_windows(splits, out, windows_per_recording=10, margin_s=0.5, params=params, progress=False) == out
    audio, labels = load_split(out, "train", mmap=False)
    assert audio.shape == (20, WINDOW_SIZE) and audio.dtype == np.float32
    assert labels.shape == (20, 128) and labels.dtype == np.float64
    assert load_split(out, "test")[0].shape == (10, WINDOW_SIZE)
    record = json.loads((out / "windows.json").read_text())
    assert record["params"] == {"source": "test", "ids": ["1", "2"]}
    assert record["windows_per_recording"] == 10 and record["margin_s"] == 0.5
    assert record["recordings"] == {"train": ["1", "2"], "test": ["3"]}
    assert record["window_statistics"]["train"] == window_statistics(labels)
    assert windows_complete(out, params)
    assert not windows_complete(out, {**params, "ids": ["1"]})
    (out / "labels-test.npy").unlink()
    assert not windows_complete(out, params)


def test_failed_build_leaves_no_files_that_look_complete(tmp_path):
    splits, out = small_splits(tmp_path / "musicnet"), tmp_path / "windows"
    broken = tmp_path / "musicnet" / "train_data" / "9.wav"
    broken.write_text("not audio")
    splits["train"].insert(1, Recording("9", broken, splits["train"][0].csv))
    with pytest.raises(AmtError, match=r"9\.wav: not a readable audio file"):
        write_windows(splits, out, windows_per_recording=5, margin_s=0.5, params={"v": 2}, progress=False)
    assert not list(out.glob("audio-*.npy")) and not (out / "windows.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["musicnet"]


def test_failed_rebuild_keeps_the_previous_build_intact(tmp_path):
    splits, out = small_splits(tmp_path / "musicnet"), tmp_path / "windows"
    write_windows(splits, out, windows_per_recording=5, margin_s=0.5, params={"v": 1}, progress=False)
    splits["test"][0].wav.write_bytes(b"RIFF")
    with pytest.raises(AmtError):
        write_windows(splits, out, windows_per_recording=5, margin_s=0.5, params={"v": 2}, progress=False)
    assert windows_complete(out, {"v": 1}) and not windows_complete(out, {"v": 2})
    assert load_split(out, "train")[0].shape == (10, WINDOW_SIZE)


def test_window_statistics_summarise_the_labels():
    labels = np.zeros((4, 128))
    labels[0, [60, 64, 67]] = 1
    labels[1, 60] = 1
    labels[2, [20, 108]] = 1
    stats = window_statistics(labels)
    assert stats["windows"] == 4 and stats["max_notes_per_window"] == 3
    assert stats["mean_notes_per_window"] == 1.5 and stats["median_notes_per_window"] == 1.5
    assert stats["empty_share"] == 0.25
    assert (stats["lowest_pitch"], stats["highest_pitch"]) == (20, 108)
    assert stats["outside_label_space"] == 2
    assert stats["pitch_histogram"][60] == 2 and sum(stats["pitch_histogram"]) == 6
    assert window_statistics(np.zeros((0, 128)))["lowest_pitch"] is None


def test_split_lists_are_mini_musicnets():
    assert len(VALIDATION_IDS) == 40 and len(EXTRA_TEST_IDS) == 30
    assert "2575" in VALIDATION_IDS and not set(VALIDATION_IDS) & set(EXTRA_TEST_IDS)


def write_mini_musicnet_copy(root):
    """One recording of each kind: train, validation, extra test (both in MusicNet's train split), test."""
    quiet = [(0.1, 0.4, 60)]
    for split, recording_id in (("train", "1727"), ("train", "2575"), ("train", "2224"), ("test", "1759")):
        write_recording(root, split, recording_id, seconds=0.5, notes=quiet)


def test_musicnet_splits_follow_mini_musicnet(tmp_path, caplog):
    write_mini_musicnet_copy(tmp_path)
    splits = mini_musicnet_splits(tmp_path)
    assert {split: [r.id for r in recs] for split, recs in splits.items()} == {
        "train": ["1727"],
        "valid": ["2575"],
        "test": ["1759", "2224"],
    }
    assert "lacks 68 of mini-MusicNet's" in caplog.text


def test_musicnet_splits_read_a_copy_construct_py_already_rearranged(tmp_path):
    write_mini_musicnet_copy(tmp_path)
    for kind in ("data", "labels"):
        (tmp_path / f"valid_{kind}").mkdir()
        suffix = "wav" if kind == "data" else "csv"
        (tmp_path / f"train_{kind}" / f"2575.{suffix}").rename(tmp_path / f"valid_{kind}" / f"2575.{suffix}")
    splits = mini_musicnet_splits(tmp_path)
    assert [r.id for r in splits["valid"]] == ["2575"] and [r.id for r in splits["train"]] == ["1727"]


def test_musicnet_windows_prepare_builds_once_then_reuses(tmp_path):
    write_mini_musicnet_copy(tmp_path / "musicnet")
    source = MusicNetWindows(tmp_path / "musicnet", tmp_path / "windows", windows_per_recording=4, progress=False)
    out = source.prepare()
    assert out == tmp_path / "windows"
    assert [len(load_split(out, split)[0]) for split in ("train", "valid", "test")] == [4, 4, 8]
    stamp = (out / "audio-train.npy").stat().st_mtime_ns
    assert source.prepare() == out and (out / "audio-train.npy").stat().st_mtime_ns == stamp
    MusicNetWindows(tmp_path / "musicnet", out, windows_per_recording=3, progress=False).prepare()
    assert len(load_split(out, "test")[0]) == 6
