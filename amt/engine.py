"""How a context model's forward pass runs: PyTorch, or ONNX Runtime on the same model exported once.

ONNX Runtime runs the context models' convolutions several times faster than PyTorch on a CPU (the
README gives the measurements). The graph is exported from the checkpoint's model by PyTorch's own
exporter (``torch.onnx.export(dynamo=True)``, the number of frames left free) the first time a
checkpoint runs this way, and kept in a cache folder (``AMT_CACHE_DIR``, default
``~/.cache/amt/onnx``) under the checkpoint file's checksum: the checkpoint stays the one owner of the
weights and the settings, and a changed checkpoint is exported again. ``engine="auto"`` picks ONNX
Runtime for a context model on the CPU when the ``fast`` extra is installed (``pip install
'amt[fast]'``), else PyTorch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from amt.checkpoint import Checkpoint
from amt.errors import AmtError
from amt.files import write_atomically
from amt.models.base import TranscriptionModel

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "onnx")
ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")
INPUT = "spectrogram"
EXPORT_FRAMES = 64
"""Frames of the example input the graph is traced with (any length runs afterwards)."""


def onnx_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ONNX_PACKAGES)


def cache_folder() -> Path:
    return Path(os.environ.get("AMT_CACHE_DIR") or Path.home() / ".cache" / "amt") / "onnx"


def choose(engine: str, model: TranscriptionModel, device: str = "cpu") -> str:
    """The engine that will run ``model``: ``engine``, or for ``auto`` the fastest one available."""
    if engine not in ENGINES:
        raise AmtError(f"unknown engine {engine!r} (choose from: {', '.join(ENGINES)})")
    if engine == "auto":
        return "onnx" if model.context and device == "cpu" and onnx_installed() else "torch"
    if engine == "onnx":
        if not model.context:
            raise AmtError("--engine onnx runs the context models; this checkpoint holds a window model")
        if device != "cpu":
            raise AmtError("--engine onnx runs on the CPU; use --engine torch with --device cuda")
        if not onnx_installed():
            raise AmtError("--engine onnx needs ONNX Runtime and the exporter: pip install 'amt[fast]'")
    return engine


class _Heads(nn.Module):
    """The model with its heads as a tuple, in a fixed order (what the exporter takes)."""

    def __init__(self, model: TranscriptionModel, heads: list[str]):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, spectrogram: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(spectrogram)
        return tuple(outputs[name] for name in self.heads)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's optimiser logs every pass and its tracer warns of deprecations inside PyTorch; keep
    its errors only, and its prints off the terminal."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export(model: TranscriptionModel, path: Path) -> None:
    """Write ``model``'s ONNX graph to ``path`` (atomically), with one input and a named output per head."""
    example = torch.zeros(1, EXPORT_FRAMES, model.bins)
    with torch.inference_mode():
        heads = list(model.eval()(example))
    frames = torch.export.Dim("frames", min=16, max=1 << 20)

    def write(tmp: str) -> None:
        with _quiet_exporter():
            torch.onnx.export(
                _Heads(model, heads).eval(),
                (example,),
                tmp,
                input_names=[INPUT],
                output_names=heads,
                dynamic_shapes=({1: frames},),
                dynamo=True,
                external_data=False,  # one file: the weights inside the graph
                verbose=False,
            )

    write_atomically(path, ".onnx", write)


class OnnxContextModel(TranscriptionModel):
    """A context model whose forward pass ONNX Runtime runs: the same grid, bands and label space, and
    the same ``{head: logits}`` output, from the exported graph at ``graph``."""

    context = True

    def __init__(self, model: TranscriptionModel, graph: Path, threads: int):
        import onnxruntime

        super().__init__(model.bins)
        self.grid, self.bands, self.labels = model.grid, model.bands, model.labels
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.heads = [output.name for output in self.session.get_outputs()]

    def forward(self, spectrogram: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.session.run(None, {INPUT: spectrogram.detach().cpu().numpy()})
        return {name: torch.from_numpy(values) for name, values in zip(self.heads, outputs, strict=True)}


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_for(checkpoint: Checkpoint, engine: str, device: str = "cpu") -> TranscriptionModel:
    """The checkpoint's model as ``engine`` runs it (the graph exported and cached on first use)."""
    if choose(engine, checkpoint.model, device) == "torch":
        return checkpoint.model
    graph = cache_folder() / f"{checksum(checkpoint.path)}.onnx"
    if not graph.is_file():
        log.info("exporting %s to ONNX once (%s)", checkpoint.path.name, graph)
        export(checkpoint.model, graph)
    return OnnxContextModel(checkpoint.model, graph, torch.get_num_threads())
