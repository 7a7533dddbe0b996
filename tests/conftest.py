"""Shared fixtures: the tiny offline corpus (built once per test session with the real renderer) and
real checkpoints trained on it, as train.py writes them."""

import os
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

WINDOW_MODEL_CONFIG = "model:\n  _target_: amt.models.cnn.CNN1Layer\n  bins: 256\n"
"""The run config of the ``checkpoint`` fixture's model (as .hydra/config.yaml holds it)."""
CONTEXT_CONFIG = {
    "_target_": "amt.models.context.ContextTranscriber",
    "temporal": "tcn",
    "channels": 4,
    "features": 16,
    "levels": 2,
    "bands": {"_target_": "amt.features.LogFrequency", "bands_per_semitone": 2, "bands_above": 0},
    "notes": 88,
    "offsets": True,
    "velocities": True,
}


def quiet_trainer(**options) -> L.Trainer:
    return L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, **options
    )


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """ONNX graphs the tests export (amt.engine) go to a temporary cache, not the user's."""
    before = os.environ.get("AMT_CACHE_DIR")
    os.environ["AMT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["AMT_CACHE_DIR"]
    else:
        os.environ["AMT_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder holding ``synth-tiny``, as ``data=synth data.preset=tiny`` expects it."""
    from amt.data.synth import SynthCorpus

    root = tmp_path_factory.mktemp("data")
    SynthCorpus(root / "synth-tiny", preset="tiny", progress=False).prepare()
    return root


@pytest.fixture
def run_env(data_dir, tmp_path) -> dict[str, str]:
    """Environment for running train.py/sweep.py as a user would: offline, data and outputs in tmp."""
    return {
        **os.environ,
        "AMT_DATA_DIR": str(data_dir),
        "AMT_OUTPUT_DIR": str(tmp_path / "outputs"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "0",
    }


@pytest.fixture(scope="session")
def test_recording(data_dir):
    """The tiny corpus's first test recording."""
    from amt.data.recordings import find_recordings

    return find_recordings(data_dir / "synth-tiny" / "recordings", "test")[0]


@pytest.fixture(scope="session")
def checkpoint(data_dir, tmp_path_factory) -> Path:
    """A train.py-style run folder's ``checkpoints/last.ckpt``: a 1-layer CNN (256 bins) fitted for a few
    seconds on the tiny corpus's training recordings (a TranscriptionModule, by a Lightning Trainer),
    with the run's config in ``.hydra/config.yaml`` and no model config in the checkpoint."""
    from amt.audio import spectra
    from amt.data.musicnet import sequential_windows
    from amt.data.recordings import find_recordings
    from amt.labels import REPORT_NOTES
    from amt.models.cnn import CNN1Layer
    from amt.module import TranscriptionModule

    run = tmp_path_factory.getbasetemp() / "trained-run"
    features, labels = [], []
    for recording in find_recordings(data_dir / "synth-tiny" / "recordings", "train"):
        _, windows, labels128 = sequential_windows(recording)
        features.append(spectra(windows, 256))
        labels.append(REPORT_NOTES.cut(labels128)[0])
    dataset = TensorDataset(torch.from_numpy(np.concatenate(features)), torch.from_numpy(np.concatenate(labels)))
    torch.manual_seed(0)
    module = TranscriptionModule(CNN1Layer(bins=256), optimizer=partial(torch.optim.Adam, lr=3e-3))
    trainer = quiet_trainer(max_epochs=25, default_root_dir=run)
    trainer.fit(module, DataLoader(dataset, batch_size=64, shuffle=True))
    trainer.save_checkpoint(run / "checkpoints" / "last.ckpt")
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text(WINDOW_MODEL_CONFIG + "data:\n  datamodule:\n    log_compress: false\n")
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def context_checkpoint(tmp_path_factory) -> Path:
    """A context model's checkpoint as train.py writes it (model config in the hyperparameters), fitted one step."""
    from amt.module import TranscriptionModule

    folder = tmp_path_factory.mktemp("context")
    torch.manual_seed(0)
    module = TranscriptionModule(model_config=CONTEXT_CONFIG)
    targets = dict.fromkeys(("frame", "onset", "offset", "velocity"), torch.zeros(32, 88))
    crops = [(torch.randn(32, 176), targets)] * 2
    quiet_trainer(max_steps=1).fit(module, DataLoader(crops, batch_size=2))
    module.trainer.save_checkpoint(folder / "context.ckpt")
    return folder / "context.ckpt"
