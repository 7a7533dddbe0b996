"""The audio stage on real files: any rate, width and channel count → mono float32 at 44.1 kHz."""

import numpy as np
import pytest
import soundfile

from amt.audio import (
    SAMPLE_RATE,
    WINDOW_SIZE,
    cut_windows,
    load_audio,
    peak_normalise,
    save_audio,
    spectra,
)
from amt.errors import AmtError


def tone(rate: int, seconds: float, frequency: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.5 * np.sin(2 * np.pi * frequency * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def dominant_frequency(samples: np.ndarray) -> float:
    magnitude = np.abs(np.fft.rfft(samples))
    return np.argmax(magnitude) * SAMPLE_RATE / len(samples)


@pytest.mark.parametrize(
    ("rate", "subtype", "channels", "fmt"),
    [
        (22_050, "PCM_16", 1, "WAV"),
        (44_100, "PCM_16", 1, "WAV"),
        (48_000, "PCM_24", 2, "WAV"),
        (44_100, "FLOAT", 2, "WAV"),
        (32_000, "PCM_16", 1, "FLAC"),
        (44_100, "VORBIS", 1, "OGG"),
    ],
)
def test_load_audio_any_format_gives_mono_float32_at_44k1(tmp_path, rate, subtype, channels, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    soundfile.write(path, tone(rate, 1.0, channels=channels), rate, subtype=subtype, format=fmt)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE) <= 2
    assert abs(dominant_frequency(samples) - 440.0) < 2.0
    assert 0.45 < np.abs(samples).max() < 0.55


def test_stereo_is_averaged(tmp_path):
    left, right = tone(SAMPLE_RATE, 0.5, 440.0), tone(SAMPLE_RATE, 0.5, 880.0)
    soundfile.write(tmp_path / "lr.wav", np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "lr.wav"), (left + right) / 2, atol=1e-6)


def test_save_audio_round_trips_within_16_bit_precision(tmp_path):
    samples = tone(SAMPLE_RATE, 0.2).astype(np.float32)
    save_audio(tmp_path / "out.wav", samples)
    np.testing.assert_allclose(load_audio(tmp_path / "out.wav"), samples, atol=1 / 2**15)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not audio at all", "not a readable audio file"), (None, "no such audio file")],
)
def test_bad_files_fail_with_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AmtError, match=message):
        load_audio(path)


def test_zero_length_wav_fails(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0), SAMPLE_RATE)
    with pytest.raises(AmtError, match="no samples"):
        load_audio(tmp_path / "empty.wav")


def test_windows_at_centres_with_zero_padding():
    samples = np.arange(10_000, dtype=np.float32)
    windows = cut_windows(samples, np.array([0, 5_000, 9_999]))
    assert windows.shape == (3, WINDOW_SIZE)
    assert windows[1, 0] == 5_000 - WINDOW_SIZE // 2 and windows[1, WINDOW_SIZE // 2] == 5_000
    assert np.all(windows[0, : WINDOW_SIZE // 2] == 0) and windows[0, WINDOW_SIZE // 2] == 0
    assert windows[2, WINDOW_SIZE // 2] == 9_999 and np.all(windows[2, WINDOW_SIZE // 2 + 1 :] == 0)


def test_peak_normalise_leaves_silence_at_zero():
    windows = np.array([[0.0, 0.25, -0.5], [0.0, 0.0, 0.0]], dtype=np.float32)
    normalised = peak_normalise(windows)
    np.testing.assert_allclose(normalised[0], [0.0, 0.5, -1.0])
    assert np.all(normalised[1] == 0) and np.all(np.isfinite(normalised))


@pytest.mark.parametrize("bins", [512, 128])
def test_spectra_match_numpy_rfft(bins):
    windows = np.random.default_rng(0).uniform(-1, 1, size=(20_000, WINDOW_SIZE)).astype(np.float32)
    expected = np.abs(np.fft.rfft(windows[:50].astype(np.float64), axis=1))[:, :bins]
    result = spectra(windows, bins)
    assert result.shape == (20_000, bins) and result.dtype == np.float32
    np.testing.assert_allclose(result[:50], expected, rtol=1e-4, atol=1e-3)


def test_spectrum_peak_lands_on_the_tone_bin():
    bin_hz = SAMPLE_RATE / WINDOW_SIZE
    window = tone(SAMPLE_RATE, WINDOW_SIZE / SAMPLE_RATE, frequency=40 * bin_hz)[None, :WINDOW_SIZE]
    assert np.argmax(spectra(window.astype(np.float32), 512)[0]) == 40
