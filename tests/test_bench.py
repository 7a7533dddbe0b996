"""`make bench` runs end to end (its numbers are read by people, never asserted)."""

from amt.audio import load_audio
from amt.bench import main, synthetic_recording


def test_bench_prints_every_figure(capsys):
    main(["--model", "cnn_1layer", "--steps", "30", "--repeats", "1", "--rtf-minutes", "0.1"])
    out = capsys.readouterr().out
    rows = (
        "bare PyTorch loop",
        "Lightning Trainer",
        "inference",
        "batch fetch",
        "cnn_multi, hop 4096",
        "default model",
    )
    for row in rows:
        assert row in out
    assert "× real time" in out


def test_synthetic_recording_has_the_asked_length(tmp_path):
    seconds = synthetic_recording(tmp_path / "r.wav", minutes=0.05)
    samples = load_audio(tmp_path / "r.wav")
    assert len(samples) == round(seconds * 44_100) and 0.5 < abs(samples).max() <= 0.91
