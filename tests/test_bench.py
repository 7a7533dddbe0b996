"""`make bench` (scripts/bench.py) runs end to end (its numbers are read by people, never asserted)."""

import importlib.util
from pathlib import Path

from amt.audio import load_audio

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench.py"


def load_bench():
    """scripts/ is not a package: the script loaded from its file, as ``make bench`` runs it."""
    spec = importlib.util.spec_from_file_location("bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_bench_prints_every_figure(capsys):
    bench.main(["--model", "cnn_1layer", "--steps", "30", "--repeats", "1", "--rtf-minutes", "0.1", "--startup", "1"])
    out = capsys.readouterr().out
    rows = (
        "bare PyTorch loop",
        "Lightning Trainer",
        "inference",
        "batch fetch",
        "cnn_multi, hop 4096",
        "default model, torch ",
        "default model, torch.compile",
        "default model, onnx int8",
        "int8 against float (onnx)",
        f"train ms/step, {bench.usable_cores()} threads (torch)",
        "inference windows/s, auto threads (amt)",
        "threads used, auto threads (amt)",
        "start-up, torch",
        "start-up, onnx",
    )
    for row in rows:
        assert row in out
    assert "× real time" in out and " 0 windows/s" not in out


def test_synthetic_recording_has_the_asked_length(tmp_path):
    seconds = bench.synthetic_recording(tmp_path / "r.wav", minutes=0.05)
    samples = load_audio(tmp_path / "r.wav")
    assert len(samples) == round(seconds * 44_100) and 0.5 < abs(samples).max() <= 0.91
