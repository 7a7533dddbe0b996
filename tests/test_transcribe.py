"""``amt transcribe`` end to end: real renders of the tiny corpus → a real checkpoint → MIDI, csv, PNG."""

import functools
import json
import shutil
import subprocess
import sys
import tracemalloc
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pretty_midi
import pytest
import soundfile
import torch
from torch.utils.data import DataLoader, TensorDataset

from amt import transcribe
from amt.audio import SAMPLE_RATE, WINDOW_SIZE, cut_windows, load_audio, peak_normalise, sequential_centres, spectra
from amt.cli import main
from amt.data.musicnet import find_recordings, sequential_windows
from amt.errors import AmtError
from amt.models.cnn import CNN1Layer
from amt.module import TranscriptionModule
from amt.notes import DecoderConfig, cut_to_label_space, read_note_csv
from amt.transcribe import LogCompressed, frame_probabilities, load_model

REPO = Path(__file__).resolve().parent.parent
BINS = 256
MODEL_CONFIG = f"model:\n  _target_: amt.models.cnn.CNN1Layer\n  bins: {BINS}\n"


@functools.cache
def train_checkpoint(recordings: Path, run: Path) -> Path:
    """A train.py-style run folder: the checkpoint of a 1-layer CNN fitted for a few seconds on the tiny
    corpus's training recordings (as a TranscriptionModule, by a Lightning Trainer) and the run's config.

    Cached, so the test modules that share it train it once per session.
    """
    features, labels = [], []
    for recording in find_recordings(recordings, "train"):
        _, windows, labels128 = sequential_windows(recording)
        features.append(spectra(windows, BINS))
        labels.append(cut_to_label_space(labels128)[0])
    dataset = TensorDataset(torch.from_numpy(np.concatenate(features)), torch.from_numpy(np.concatenate(labels)))
    torch.manual_seed(0)
    module = TranscriptionModule(CNN1Layer(bins=BINS), optimizer=partial(torch.optim.Adam, lr=3e-3))
    trainer = L.Trainer(
        max_epochs=25,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=run,
    )
    trainer.fit(module, DataLoader(dataset, batch_size=64, shuffle=True))
    trainer.save_checkpoint(run / "checkpoints" / "last.ckpt")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(MODEL_CONFIG + "data:\n  datamodule:\n    log_compress: false\n")
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def checkpoint(data_dir, tmp_path_factory) -> Path:
    return train_checkpoint(data_dir / "synth-tiny" / "recordings", tmp_path_factory.getbasetemp() / "trained-run")


@pytest.fixture(scope="session")
def test_recording(data_dir):
    return find_recordings(data_dir / "synth-tiny" / "recordings", "test")[0]


def test_checkpoint_loads_as_the_trained_model(checkpoint):
    model = load_model(checkpoint)
    assert isinstance(model, CNN1Layer) and model.bins == BINS and not model.training
    saved = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert torch.equal(model.head.weight, saved["model.head.weight"])


def test_streaming_in_chunks_gives_the_probabilities_of_all_windows_at_once(checkpoint, test_recording, monkeypatch):
    model = load_model(checkpoint)
    samples = load_audio(test_recording.wav)
    centres = sequential_centres(len(samples), 1024)
    with torch.inference_mode():
        whole = model(torch.from_numpy(spectra(peak_normalise(cut_windows(samples, centres)), BINS))).sigmoid()
    monkeypatch.setattr(transcribe, "CHUNK_WINDOWS", 37)
    frames = frame_probabilities(samples, model, hop=1024, batch_size=10)
    np.testing.assert_array_equal(frames.centres, centres)
    np.testing.assert_allclose(frames.probabilities, whole.numpy(), atol=1e-6)
    assert frames.times[0] == WINDOW_SIZE / 2 / SAMPLE_RATE


class Broken(torch.nn.Module):
    """A model whose weights have gone to NaN."""

    bins = 64

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
    short = peak_traced_memory(lambda: frame_probabilities(noise[: 20 * SAMPLE_RATE], model, hop=512))
    long = peak_traced_memory(lambda: frame_probabilities(noise, model, hop=512))
    all_windows = len(sequential_centres(len(noise), 512)) * WINDOW_SIZE * 4
    growth_of_the_result = 60 * SAMPLE_RATE // 512 * 81 * 4
    assert long < short + growth_of_the_result + 1_000_000
    assert long < all_windows / 4


def test_transcribe_writes_midi_csv_and_piano_roll(checkpoint, test_recording, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transcribe", str(test_recording.wav), "-o", str(out), "--ckpt", str(checkpoint), "--plot"]) == 0
    name = test_recording.id
    midi = pretty_midi.PrettyMIDI(str(out / f"{name}.mid"))
    notes = read_note_csv(out / f"{name}.csv")
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
    assert target.is_file() and (tmp_path / "piece.csv").is_file() and (tmp_path / "piece.png").is_file()
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
    assert sorted(p.name for p in out.iterdir()) == [f"{test_recording.id}.csv", f"{test_recording.id}.mid"]


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


def copy_run(checkpoint: Path, folder: Path, config: str | None) -> Path:
    """The checkpoint alone in a new run folder, with ``config`` as its .hydra/config.yaml."""
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, folder / "checkpoints" / "last.ckpt")
    if config is not None:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(config)
    return folder / "checkpoints" / "last.ckpt"


def test_checkpoints_of_the_wrong_kind_are_one_clear_error(checkpoint, tmp_path):
    (tmp_path / "random.ckpt").write_bytes(b"\x00\x01 not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "plain.ckpt")
    cases = {
        tmp_path / "nowhere.ckpt": "no such checkpoint",
        tmp_path / "random.ckpt": "not a PyTorch checkpoint",
        tmp_path / "plain.ckpt": "not a checkpoint of amt's TranscriptionModule",
        copy_run(checkpoint, tmp_path / "bare", None): "cannot tell which model",
        copy_run(checkpoint, tmp_path / "wide", MODEL_CONFIG.replace(str(BINS), "512")): "do not fit the model",
        copy_run(
            checkpoint, tmp_path / "std", MODEL_CONFIG + "data:\n  datamodule:\n    standardise: true\n"
        ): "standardised",
        copy_run(checkpoint, tmp_path / "nomodel", "data:\n  bins: 3\n"): "no model section",
    }
    for path, message in cases.items():
        with pytest.raises(AmtError, match=message) as error:
            load_model(path)
        assert "\n" not in str(error.value)


def test_config_beside_the_checkpoint_and_log_compressed_models(checkpoint, tmp_path):
    shutil.copy(checkpoint, tmp_path / "bundled.ckpt")
    (tmp_path / "bundled.yaml").write_text(MODEL_CONFIG + "data:\n  datamodule:\n    log_compress: true\n")
    model = load_model(tmp_path / "bundled.ckpt")
    assert isinstance(model, LogCompressed) and model.bins == BINS
    spectrum = torch.rand(2, BINS) * 100
    assert torch.allclose(model(spectrum), model.model(torch.log1p(spectrum)))


def test_a_model_config_saved_in_the_checkpoint_needs_no_yaml(checkpoint, tmp_path):
    saved = torch.load(checkpoint, weights_only=False)
    saved["hyper_parameters"]["model_config"] = {"_target_": "amt.models.cnn.CNN1Layer", "bins": BINS}
    torch.save(saved, tmp_path / "self-describing.ckpt")
    model = load_model(tmp_path / "self-describing.ckpt")
    assert isinstance(model, CNN1Layer) and torch.equal(model.head.bias, saved["state_dict"]["model.head.bias"])


def test_missing_default_checkpoint_says_to_pass_one(monkeypatch, tmp_path):
    monkeypatch.setattr(transcribe, "DEFAULT_CHECKPOINT", tmp_path / "weights" / "default.ckpt")
    with pytest.raises(AmtError, match="no default model is installed .* pass --ckpt"):
        load_model()


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


CONTEXT_CONFIG = {
    "_target_": "amt.models.context.ContextTranscriber",
    "temporal": "tcn",
    "channels": 4,
    "features": 16,
    "levels": 2,
}


@pytest.fixture(scope="module")
def context_checkpoint(tmp_path_factory) -> Path:
    """A context model's checkpoint as train.py writes it (model config in the hyperparameters), fitted one step."""
    folder = tmp_path_factory.mktemp("context")
    torch.manual_seed(0)
    module = TranscriptionModule(model_config=CONTEXT_CONFIG)
    crops = [(torch.randn(32, 176), {"frame": torch.zeros(32, 81), "onset": torch.zeros(32, 81)})] * 2
    trainer = L.Trainer(
        max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
    )
    trainer.fit(module, DataLoader(crops, batch_size=2))
    trainer.save_checkpoint(folder / "context.ckpt")
    return folder / "context.ckpt"


def test_a_context_model_transcribes_in_chunks_as_in_one_pass(context_checkpoint, test_recording, monkeypatch):
    model = load_model(context_checkpoint)
    samples = load_audio(test_recording.wav)[: 8 * SAMPLE_RATE]
    whole = transcribe.sequence_probabilities(samples, model)
    assert whole.onsets.shape == whole.probabilities.shape == (len(whole.centres), 81)
    np.testing.assert_array_equal(whole.centres, sequential_centres(len(samples), 1024))
    # receptive field ±6 frames (3 encoder convolutions, dilations 1 and 2): 16 frames of context suffice
    monkeypatch.setattr(transcribe, "SEQUENCE_CHUNK", 50)
    monkeypatch.setattr(transcribe, "SEQUENCE_CONTEXT", 16)
    chunked = frame_probabilities(samples, model)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=1e-5)
    np.testing.assert_allclose(chunked.onsets, whole.onsets, atol=1e-5)


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


def test_a_packed_checkpoint_keeps_the_model_and_its_decoder_settings(context_checkpoint, test_recording, tmp_path):
    tuned = tmp_path / "tuned.ckpt"
    shutil.copy(context_checkpoint, tuned)
    transcribe.save_decoder_config(tuned, DecoderConfig(onset_threshold=0.4, min_note_s=0.05))
    packed = tmp_path / "packed.ckpt"
    script = Path(__file__).resolve().parent.parent / "scripts" / "pack_checkpoint.py"
    subprocess.run([sys.executable, str(script), str(tuned), str(packed)], check=True, capture_output=True)
    assert packed.stat().st_size < tuned.stat().st_size / 2
    assert transcribe.checkpoint_decoder_config(packed) == DecoderConfig(onset_threshold=0.4, min_note_s=0.05)
    samples = load_audio(test_recording.wav)[: 4 * SAMPLE_RATE]
    full, half = (frame_probabilities(samples, load_model(ckpt)) for ckpt in (context_checkpoint, packed))
    np.testing.assert_allclose(half.probabilities, full.probabilities, atol=0.01)
    np.testing.assert_allclose(half.onsets, full.onsets, atol=0.01)
