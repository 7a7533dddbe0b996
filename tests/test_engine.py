"""amt.engine: a context model run by ONNX Runtime, exported once per checkpoint, against PyTorch."""

import shutil

import numpy as np
import pytest
import torch

from amt import engine
from amt.audio import SAMPLE_RATE, load_audio
from amt.checkpoint import CNN_MULTI_CHECKPOINT, load
from amt.errors import AmtError
from amt.transcribe import context_probabilities

pytestmark = pytest.mark.skipif(not engine.onnx_installed(), reason="the fast extra (ONNX Runtime) is not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AMT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def test_onnx_runtime_gives_the_models_probabilities_for_any_length(context_checkpoint, test_recording, cache):
    checkpoint = load(context_checkpoint)
    fast = engine.model_for(checkpoint, "onnx")
    assert isinstance(fast, engine.OnnxContextModel) and len(list(cache.glob("*.onnx"))) == 1
    assert (fast.grid, fast.bands, fast.labels, fast.bins) == (
        checkpoint.model.grid,
        checkpoint.model.bands,
        checkpoint.model.labels,
        checkpoint.model.bins,
    )
    samples = load_audio(test_recording.wav)[: 6 * SAMPLE_RATE]
    reference, onnx = context_probabilities(samples, checkpoint.model), context_probabilities(samples, fast)
    for head in ("probabilities", "onsets", "offsets", "velocities"):
        np.testing.assert_allclose(getattr(onnx, head), getattr(reference, head), atol=1e-4)
    assert engine.model_for(checkpoint, "auto").__class__ is engine.OnnxContextModel


def test_the_graph_is_exported_once_per_checkpoint_and_again_when_it_changes(context_checkpoint, tmp_path, cache):
    engine.model_for(load(context_checkpoint), "onnx")
    (graph,) = cache.glob("*.onnx")
    stamp = graph.stat().st_mtime_ns
    engine.model_for(load(context_checkpoint), "onnx")
    assert graph.stat().st_mtime_ns == stamp
    changed = tmp_path / "changed.ckpt"
    shutil.copy(context_checkpoint, changed)
    contents = torch.load(changed, weights_only=True)
    contents["state_dict"]["model.onset_head.bias"] += 1.0
    torch.save(contents, changed)
    engine.model_for(load(changed), "onnx")
    assert len(list(cache.glob("*.onnx"))) == 2


def test_engines_are_chosen_or_refused_in_one_line(context_checkpoint, monkeypatch, cache):
    window_model = load(CNN_MULTI_CHECKPOINT).model
    assert (
        engine.choose("auto", window_model) == "torch"
        and engine.choose("auto", load(context_checkpoint).model) == "onnx"
    )
    with pytest.raises(AmtError, match="window model"):
        engine.choose("onnx", window_model)
    with pytest.raises(AmtError, match="--device cuda"):
        engine.choose("onnx", load(context_checkpoint).model, device="cuda")
    monkeypatch.setattr(engine, "onnx_installed", lambda: False)
    assert engine.choose("auto", load(context_checkpoint).model) == "torch"
    with pytest.raises(AmtError, match=r"pip install 'amt\[fast\]'"):
        engine.choose("onnx", load(context_checkpoint).model)
    assert not cache.exists()
