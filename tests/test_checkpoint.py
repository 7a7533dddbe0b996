"""Checkpoints: read once into the model and what it carries (config, decoder settings, frame grid); packing."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from amt import checkpoint as checkpoints
from amt.audio import SAMPLE_RATE, load_audio
from amt.bundled import CONTEXT_DEFAULT_CHECKPOINT
from amt.checkpoint import Preprocessed, load
from amt.cli import main
from amt.data.datamodule import SpectraDataModule
from amt.data.synth import SynthCorpus
from amt.decode import DecoderConfig
from amt.errors import AmtError
from amt.grid import CONTEXT_GRID, WINDOW_GRID, FrameGrid
from amt.labels import PIANO_KEYS, REPORT_NOTES
from amt.models.cnn import CNN1Layer
from amt.transcribe import frame_probabilities

REPO = Path(__file__).resolve().parent.parent
BINS = 256
"""The ``checkpoint`` fixture's model's bins."""
MODEL_CONFIG = f"model:\n  _target_: amt.models.cnn.CNN1Layer\n  bins: {BINS}\n"


def test_checkpoint_loads_as_the_trained_model_with_the_default_decoder(checkpoint):
    loaded = load(checkpoint)
    model = loaded.model
    assert isinstance(model, CNN1Layer) and model.bins == BINS and not model.training
    assert loaded.decoder_config == DecoderConfig() and loaded.grid() == WINDOW_GRID
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(model.head.weight, saved["model.head.weight"])


def test_a_checkpoint_carries_its_label_space_and_one_without_is_the_reports_81_notes(context_checkpoint):
    assert load(context_checkpoint).model.labels == PIANO_KEYS
    bundled = load(CONTEXT_DEFAULT_CHECKPOINT)
    assert "notes" not in bundled.contents["hyper_parameters"]["model_config"]
    assert bundled.model.labels == REPORT_NOTES and bundled.model.frame_head[-1].out_features == 81


def test_a_context_model_carries_its_frame_grid_and_ignores_another_hop(context_checkpoint, caplog):
    loaded = load(context_checkpoint)
    assert loaded.model.context and loaded.model.grid == CONTEXT_GRID
    assert loaded.grid() == loaded.grid(CONTEXT_GRID.hop) == CONTEXT_GRID and not caplog.records
    assert loaded.grid(4096) == CONTEXT_GRID
    assert "--hop 4096 is ignored" in caplog.text and "own hop (1024 samples)" in caplog.text


def test_a_window_model_runs_on_the_hop_asked_for(checkpoint):
    assert load(checkpoint).grid(512) == FrameGrid(512)


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
    torch.save({"state_dict": {"model.w": torch.zeros(3)}, "code": Path("any object")}, tmp_path / "pickled.ckpt")
    cases = {
        tmp_path / "nowhere.ckpt": "no such checkpoint",
        tmp_path / "random.ckpt": "not a PyTorch checkpoint",
        tmp_path / "plain.ckpt": "not a checkpoint of amt's TranscriptionModule",
        tmp_path / "pickled.ckpt": "amt loads only plain data",
        copy_run(checkpoint, tmp_path / "bare", None): "cannot tell which model",
        copy_run(checkpoint, tmp_path / "wide", MODEL_CONFIG.replace(str(BINS), "512")): "do not fit the model",
        copy_run(
            checkpoint, tmp_path / "std", MODEL_CONFIG + "data:\n  datamodule:\n    standardise: true\n"
        ): "standardised",
        copy_run(checkpoint, tmp_path / "nomodel", "data:\n  bins: 3\n"): "no model section",
    }
    for path, message in cases.items():
        with pytest.raises(AmtError, match=message) as error:
            load(path)
        assert "\n" not in str(error.value)


def test_config_beside_the_checkpoint_and_log_compressed_models(checkpoint, tmp_path):
    shutil.copy(checkpoint, tmp_path / "bundled.ckpt")
    (tmp_path / "bundled.yaml").write_text(MODEL_CONFIG + "data:\n  datamodule:\n    log_compress: true\n")
    model = load(tmp_path / "bundled.ckpt").model
    assert isinstance(model, Preprocessed) and model.bins == BINS
    spectrum = torch.rand(2, BINS) * 100
    assert torch.allclose(model(spectrum), model.model(torch.log1p(spectrum)))


def test_a_model_config_saved_in_the_checkpoint_needs_no_yaml(checkpoint, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    saved["hyper_parameters"]["model_config"] = {"_target_": "amt.models.cnn.CNN1Layer", "bins": BINS}
    torch.save(saved, tmp_path / "self-describing.ckpt")
    model = load(tmp_path / "self-describing.ckpt").model
    assert isinstance(model, CNN1Layer) and torch.equal(model.head.bias, saved["state_dict"]["model.head.bias"])


def test_missing_default_checkpoint_says_to_pass_one(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", tmp_path / "weights" / "default.ckpt")
    with pytest.raises(AmtError, match="no default model is installed .* pass --ckpt"):
        load()


def test_a_packed_checkpoint_keeps_the_model_and_its_decoder_settings(context_checkpoint, test_recording, tmp_path):
    tuned = tmp_path / "tuned.ckpt"
    shutil.copy(context_checkpoint, tuned)
    load(tuned).save_decoder_config(DecoderConfig(onset_threshold=0.4, min_note_s=0.05))
    packed = tmp_path / "packed.ckpt"
    script = Path(__file__).resolve().parent.parent / "scripts" / "pack_checkpoint.py"
    subprocess.run([sys.executable, str(script), str(tuned), str(packed)], check=True, capture_output=True)
    assert packed.stat().st_size < tuned.stat().st_size / 2
    assert load(packed).decoder_config == DecoderConfig(onset_threshold=0.4, min_note_s=0.05)
    samples = load_audio(test_recording.wav)[: 4 * SAMPLE_RATE]
    full, half = (frame_probabilities(samples, load(ckpt).model) for ckpt in (context_checkpoint, packed))
    np.testing.assert_allclose(half.probabilities, full.probabilities, atol=0.01)
    np.testing.assert_allclose(half.onsets, full.onsets, atol=0.01)


@pytest.mark.slow
def test_a_model_trained_on_standardised_spectra_carries_its_statistics(run_env, data_dir, tmp_path):
    run = tmp_path / "run"
    overrides = ["model=cnn_1layer", "data.preset=tiny", "trainer.max_epochs=1", "logger=csv", "test=false"]
    overrides += ["data.datamodule.standardise=true", "data.datamodule.log_compress=true", f"hydra.run.dir={run}"]
    result = subprocess.run(
        [sys.executable, "train.py", *overrides], cwd=REPO, env=run_env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = load(run / "checkpoints" / "last.ckpt")
    model = loaded.model
    assert isinstance(model, Preprocessed) and model.log_compress and model.standardise
    data = SpectraDataModule(SynthCorpus(data_dir / "synth-tiny", preset="tiny", progress=False), bins=model.bins,
                             log_compress=True, standardise=True)  # fmt: skip
    data.setup()
    raw = torch.from_numpy(
        np.load(next((data_dir / "synth-tiny" / "windows").glob(f"spectra-valid-{model.bins}*.npy")))
    )
    standardised, _ = data.datasets["valid"][torch.arange(len(raw))]
    with torch.inference_mode():
        torch.testing.assert_close(model(raw), model.model(standardised), atol=1e-4, rtol=1e-4)
    wav = next((data_dir / "synth-tiny" / "recordings" / "test_data").glob("*.wav"))
    assert (
        main(["transcribe", str(wav), "-o", str(tmp_path / "out"), "--ckpt", str(run / "checkpoints" / "last.ckpt")])
        == 0
    )
