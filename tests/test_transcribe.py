"""``amt transcribe`` end to end: real renders of the tiny corpus → a real checkpoint → MIDI, csv, PNG."""

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import torch

from amt import transcribe
from amt.audio import SAMPLE_RATE, WINDOW_SIZE, cut_windows, load_audio, peak_normalise, spectra
from amt.checkpoint import load
from amt.cli import main
from amt.errors import AmtError
from amt.grid import CONTEXT_GRID, FrameGrid
from amt.models.base import TranscriptionModel
from amt.models.cnn import CNN1Layer
from amt.notes import read_note_csv
from amt.transcribe import frame_probabilities

REPO = Path(__file__).resolve().parent.parent


def test_streaming_in_chunks_gives_the_probabilities_of_all_windows_at_once(checkpoint, test_recording, monkeypatch):
    model = load(checkpoint).model
    samples = load_audio(test_recording.wav)
    centres = FrameGrid(1024).recording_centres(len(samples))
    with torch.inference_mode():
        whole = model(torch.from_numpy(spectra(peak_normalise(cut_windows(samples, centres)), model.bins))).sigmoid()
    monkeypatch.setattr(transcribe, "CHUNK_WINDOWS", 37)
    frames = frame_probabilities(samples, model, FrameGrid(1024), batch_size=10)
    np.testing.assert_array_equal(frames.centres, centres)
    np.testing.assert_allclose(frames.probabilities, whole.numpy(), atol=1e-6)
    assert frames.times[0] == WINDOW_SIZE / 2 / SAMPLE_RATE


class Broken(TranscriptionModel):
    """A model whose weights have gone to NaN."""

    def __init__(self):
        super().__init__(bins=64)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return torch.full((len(spectra), 81), float("nan"))


def test_a_model_giving_nan_is_an_error_not_silence():
    with pytest.raises(AmtError, match="NaN or infinite logits"):
        frame_probabilities(np.ones(SAMPLE_RATE, dtype=np.float32), Broken())


def peak_traced_memory(function) -> int:
    """Peak bytes that Python and numpy allocate while ``function`` runs (torch's allocations are not traced)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_however_long_the_recording(monkeypatch):
    monkeypatch.setattr(transcribe, "CHUNK_WINDOWS", 256)
    model = CNN1Layer(bins=64)
    noise = np.random.default_rng(0).standard_normal(80 * SAMPLE_RATE).astype(np.float32)
    grid = FrameGrid(512)
    short = peak_traced_memory(lambda: frame_probabilities(noise[: 20 * SAMPLE_RATE], model, grid))
    long = peak_traced_memory(lambda: frame_probabilities(noise, model, grid))
    all_windows = grid.count(len(noise)) * WINDOW_SIZE * 4
    growth_of_the_result = 60 * SAMPLE_RATE // 512 * 81 * 4
    assert long < short + growth_of_the_result + 1_000_000
    assert long < all_windows / 4


def test_transcribe_writes_midi_csv_and_piano_roll(checkpoint, test_recording, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transcribe", str(test_recording.wav), "-o", str(out), "--ckpt", str(checkpoint), "--plot"]) == 0
    name = test_recording.id
    midi = pretty_midi.PrettyMIDI(str(out / f"{name}.mid"))
    notes = read_note_csv(out / f"{name}.notes.csv")
    assert len(notes) > 10, "the trained model hears notes in a recording of the corpus"
    assert sorted((n.pitch, round(n.start, 2)) for n in midi.instruments[0].notes) == sorted(
        (e.pitch, round(e.onset_s, 2)) for e in notes
    )
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{len(notes)} notes" in capsys.readouterr().out


def test_transcribe_with_labels_plots_against_the_truth_and_scores(checkpoint, test_recording, tmp_path, capsys):
    target = tmp_path / "piece.mid"
    args = ["transcribe", str(test_recording.wav), "-o", str(target), "--ckpt", str(checkpoint)]
    assert main([*args, "--labels", str(test_recording.csv), "--hop", "2048", "--decoder", "naive"]) == 0
    assert target.is_file() and (tmp_path / "piece.notes.csv").is_file() and (tmp_path / "piece.png").is_file()
    assert "note F1" in capsys.readouterr().out


def write_bad_inputs(folder: Path) -> list[Path]:
    folder.mkdir()
    (folder / "text.wav").write_text("this is not audio\n")
    soundfile.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    soundfile.write(folder / "short.wav", np.zeros(1000, dtype=np.float32), SAMPLE_RATE)
    return [folder / "text.wav", folder / "empty.wav", folder / "short.wav", folder / "missing.wav"]


def test_bad_inputs_are_reported_one_line_each_and_the_good_ones_still_transcribed(
    checkpoint, test_recording, tmp_path, capsys
):
    bad = write_bad_inputs(tmp_path / "bad")
    inputs = [bad[0], test_recording.wav, *bad[1:]]
    out = tmp_path / "out"
    assert main(["transcribe", *map(str, inputs), "-o", str(out), "--ckpt", str(checkpoint)]) == 2
    assert (out / f"{test_recording.id}.mid").is_file()
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("amt: error: ") for line in errors)
    for path, message in zip(bad, ["not a readable audio file", "holds no samples", "shorter than one window",
                                   "no such audio file"], strict=True):  # fmt: skip
        assert any(str(path) in line and message in line for line in errors), (path, message, errors)
    assert errors[-1] == "amt: error: 4 of 5 inputs failed"
    assert sorted(p.name for p in out.iterdir()) == [f"{test_recording.id}.mid", f"{test_recording.id}.notes.csv"]


def run_failing(args: list[str], capsys) -> str:
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("amt: error: ")
    return line


def test_unwritable_output_and_argument_errors(checkpoint, test_recording, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    wav, ckpt = str(test_recording.wav), str(checkpoint)
    assert "not a folder" in run_failing(["transcribe", wav, "-o", str(tmp_path / "file"), "--ckpt", ckpt], capsys)
    for out in (tmp_path / "file" / "out", tmp_path / "file" / "x.mid"):
        line = run_failing(["transcribe", wav, "-o", str(out), "--ckpt", ckpt], capsys)
        assert "cannot create the output folder" in line
    assert "names one MIDI file" in run_failing(["transcribe", wav, wav, "-o", str(tmp_path / "x.mid")], capsys)
    assert "would overwrite" in run_failing(["transcribe", wav, wav, "-o", str(tmp_path / "o")], capsys)
    if not torch.cuda.is_available():
        assert "no CUDA GPU" in run_failing(["transcribe", wav, "-o", str(tmp_path), "--device", "cuda"], capsys)
    frame_model = ["--ckpt", ckpt, "--decoder", "onsets"]
    assert "onset probabilities" in run_failing(["transcribe", wav, "-o", str(tmp_path), *frame_model], capsys)


@pytest.mark.slow
def test_a_checkpoint_from_train_py_transcribes_and_evaluates(run_env, data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = ["model=cnn_1layer", "data.preset=tiny", "trainer.max_epochs=2", "logger=csv", f"hydra.run.dir={run}"]
    trained = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO, env=run_env, capture_output=True, text=True, timeout=600
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    recordings = data_dir / "synth-tiny" / "recordings"
    wav = next((recordings / "test_data").glob("*.wav"))
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert main(["transcribe", str(wav), "-o", str(tmp_path / "out"), "--ckpt", ckpt, "--plot"]) == 0
    assert pretty_midi.PrettyMIDI(str(tmp_path / "out" / f"{wav.stem}.mid")).instruments
    assert main(["evaluate", str(recordings), "--ckpt", ckpt, "--json", str(tmp_path / "metrics.json")]) == 0
    assert "pooled" in capsys.readouterr().out


def test_a_context_model_transcribes_in_chunks_as_in_one_pass(context_checkpoint, test_recording, monkeypatch):
    model = load(context_checkpoint).model
    samples = load_audio(test_recording.wav)[: 8 * SAMPLE_RATE]
    whole = transcribe.context_probabilities(samples, model)
    shape = (len(whole.centres), 88)
    assert whole.onsets.shape == whole.offsets.shape == whole.velocities.shape == whole.probabilities.shape == shape
    np.testing.assert_array_equal(whole.centres, CONTEXT_GRID.recording_centres(len(samples)))
    # receptive field ±6 frames (3 encoder convolutions, dilations 1 and 2): 16 frames of context suffice
    monkeypatch.setattr(transcribe, "CONTEXT_CHUNK", 50)
    monkeypatch.setattr(transcribe, "CONTEXT_MARGIN", 16)
    chunked = frame_probabilities(samples, model)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=1e-5)
    for head in ("onsets", "offsets", "velocities"):
        np.testing.assert_allclose(getattr(chunked, head), getattr(whole, head), atol=1e-5)


def test_a_context_model_transcribes_and_evaluates_with_the_onsets_decoder(
    context_checkpoint, test_recording, tmp_path, capsys
):
    folder = tmp_path / "recordings"
    folder.mkdir()
    shutil.copy(test_recording.wav, folder / "r.wav")
    shutil.copy(test_recording.csv, folder / "r.csv")
    assert (
        main(
            [
                "transcribe",
                str(folder / "r.wav"),
                "-o",
                str(tmp_path / "out"),
                "--ckpt",
                str(context_checkpoint),
                "--decoder",
                "onsets",
            ]
        )
        == 0
    )
    pretty_midi.PrettyMIDI(str(tmp_path / "out" / "r.mid"))
    report = tmp_path / "metrics.json"
    args = ["evaluate", str(folder), "--ckpt", str(context_checkpoint), "--json", str(report)]
    assert main([*args, "--decoder", "onsets", "--decoder", "hysteresis"]) == 0
    assert set(json.loads(report.read_text())["systems"]) == {"onsets", "hysteresis"}
