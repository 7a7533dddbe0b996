"""Shared fixtures: the tiny offline corpus, built once per test session with the real renderer."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
