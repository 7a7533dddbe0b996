"""amt.engine: a context model run by ONNX Runtime, exported once per checkpoint, against PyTorch."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from amt import engine
from amt.audio import SAMPLE_RATE, load_audio
from amt.bundled import CNN_MULTI_CHECKPOINT
from amt.checkpoint import load
from amt.cli import main
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


def test_a_cached_graph_transcribes_without_pytorch_and_writes_the_same_notes(
    context_checkpoint, test_recording, tmp_path, cache
):
    """The first run exports the graph and its card; a later one, in a fresh interpreter, runs from them
    and never imports torch (amt transcribe's start-up)."""
    first, second = tmp_path / "first.mid", tmp_path / "second.mid"
    command = ["transcribe", str(test_recording.wav), "--ckpt", str(context_checkpoint), "--threads", "1"]
    main([*command, "-o", str(first)])
    assert [p.suffix for p in sorted(cache.iterdir())] == [".json", ".onnx"]
    code = (
        "import sys; from amt.cli import main; "
        f"main({[*command, '-o', str(second)]!r}); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    environment = {**os.environ, "AMT_CACHE_DIR": str(cache.parent)}
    subprocess.run([sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True)
    assert first.with_suffix(".notes.csv").read_text() == second.with_suffix(".notes.csv").read_text()


def test_an_unreadable_model_card_means_reading_the_checkpoint_again(context_checkpoint, cache):
    engine.model_for(load(context_checkpoint), "onnx")
    assert isinstance(engine.exported(context_checkpoint), engine.Exported)
    (card,) = cache.glob("*.json")
    card.write_text("{}")
    assert engine.exported(context_checkpoint) is None
    assert engine.exported(context_checkpoint, engine="torch") is None
    engine.export_once(load(context_checkpoint))
    assert engine.exported(context_checkpoint).card == engine.ModelCard.of(load(context_checkpoint))


def test_a_variable_q_model_runs_on_its_own_front_end_in_onnx_runtime(
    context_checkpoint, test_recording, cache, tmp_path
):
    contents = torch.load(context_checkpoint, weights_only=True)
    contents["hyper_parameters"]["model_config"]["bands"]["shortest_window"] = 1024
    torch.save(contents, tmp_path / "variable_q.ckpt")
    checkpoint = load(tmp_path / "variable_q.ckpt")
    fast = engine.model_for(checkpoint, "onnx")
    assert fast.bands == checkpoint.model.bands and fast.bands.shortest_window == 1024
    samples = load_audio(test_recording.wav)[: 3 * SAMPLE_RATE]
    variable_q = context_probabilities(samples, checkpoint.model).probabilities
    np.testing.assert_allclose(context_probabilities(samples, fast).probabilities, variable_q, atol=1e-4)
    one_window = context_probabilities(samples, load(context_checkpoint).model).probabilities
    assert np.abs(variable_q - one_window).max() > 1e-5  # the same weights (barely trained), other features


def test_a_harmonic_stacking_model_runs_on_its_own_front_end_in_onnx_runtime(
    context_checkpoint, test_recording, cache, tmp_path
):
    contents = torch.load(context_checkpoint, weights_only=True)
    config = contents["hyper_parameters"]["model_config"]
    config["bands"]["bands_above"] = 27
    config["harmonics"] = [0.5, 1, 2, 3, 4, 5, 6, 7]
    torch.manual_seed(3)
    stacked = instantiate(config)
    contents["state_dict"] = {f"model.{name}": tensor for name, tensor in stacked.state_dict().items()}
    torch.save(contents, tmp_path / "stacked.ckpt")
    checkpoint = load(tmp_path / "stacked.ckpt")
    assert checkpoint.model.stack.shifts == [-24, 0, 24, 38, 48, 56, 62, 67] and checkpoint.model.bins == 230
    fast = engine.model_for(checkpoint, "onnx")
    assert fast.bands == checkpoint.model.bands and fast.bins == 230
    samples = load_audio(test_recording.wav)[: 3 * SAMPLE_RATE]
    expected = context_probabilities(samples, checkpoint.model)
    got = context_probabilities(samples, fast)
    for head in ("probabilities", "onsets"):
        np.testing.assert_allclose(getattr(got, head), getattr(expected, head), atol=1e-4)
