"""How a context model's forward pass runs: PyTorch, or ONNX Runtime on the same model exported once.

ONNX Runtime runs the context models' convolutions several times faster than PyTorch on a CPU (the
README gives the measurements). The graph is exported from the checkpoint's model by PyTorch's own
exporter (``torch.onnx.export(dynamo=True)``, the number of frames left free) the first time a
checkpoint runs this way, and kept in a cache folder (``AMT_CACHE_DIR``, default
``~/.cache/amt/onnx``) under the checkpoint file's checksum, beside its :class:`ModelCard` (what
running and decoding the graph needs besides the weights). The checkpoint stays the one owner of the
weights and the settings: a changed checkpoint is exported again. Once both are cached,
:func:`exported` lets ``amt transcribe`` run without reading the checkpoint's tensors or importing
PyTorch, which is most of its start-up. ``engine="auto"`` picks ONNX Runtime for a context model on
the CPU when the ``fast`` extra is installed (``pip install 'amt[fast]'``), else PyTorch. This module
imports PyTorch only to export.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from amt.bundled import DEFAULT_CHECKPOINT
from amt.decode import DecoderConfig
from amt.errors import AmtError
from amt.features import LogFrequency
from amt.files import cache_root, write_atomically, write_json
from amt.grid import FrameGrid, own_grid
from amt.labels import LabelSpace

if TYPE_CHECKING:
    from amt.checkpoint import Checkpoint
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
    return cache_root() / "onnx"


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


@dataclass(frozen=True)
class ModelCard:
    """What running an exported context model and decoding its output need besides its graph: the
    frame grid, the bands, the label space and the decoder settings saved with the checkpoint."""

    grid: FrameGrid
    bands: LogFrequency
    labels: LabelSpace
    decoder_config: DecoderConfig

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> ModelCard:
        model = checkpoint.model
        return cls(model.grid, model.bands, model.labels, checkpoint.decoder_config)

    def to_json(self) -> dict:
        return {
            "hop": self.grid.hop,
            "window": self.grid.window,
            "bands": asdict(self.bands),
            "notes": self.labels.notes,
            "decoder_config": asdict(self.decoder_config),
        }

    @classmethod
    def from_json(cls, card: dict) -> ModelCard:
        return cls(
            FrameGrid(card["hop"], card["window"]),
            LogFrequency(**card["bands"]),
            LabelSpace(card["notes"]),
            DecoderConfig(**card["decoder_config"]),
        )


@dataclass(frozen=True)
class Exported:
    """A checkpoint whose graph and card are cached: all that transcribing with it needs, with the same
    ``grid``, ``decoder_config`` and ``context`` a loaded :class:`amt.checkpoint.Checkpoint` has."""

    path: Path
    graph: Path
    card: ModelCard
    context = True

    @property
    def decoder_config(self) -> DecoderConfig:
        return self.card.decoder_config

    def grid(self, hop: int | None = None) -> FrameGrid:
        return own_grid(self.card.grid, hop, self.path.name)


def _cached(path: Path) -> tuple[Path, Path]:
    """Where the graph and the card of the checkpoint at ``path`` are cached."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return cache_folder() / f"{digest}.onnx", cache_folder() / f"{digest}.json"


def exported(ckpt: str | os.PathLike | None, engine: str = "auto", device: str = "cpu") -> Exported | None:
    """The checkpoint ``ckpt`` (default: the bundled model) as its cached graph and card, when ONNX
    Runtime is to run it and both are cached; None otherwise (then load the checkpoint itself)."""
    path = Path(ckpt) if ckpt is not None else DEFAULT_CHECKPOINT
    if engine not in ("auto", "onnx") or device != "cpu" or not path.is_file() or not onnx_installed():
        return None
    graph, card = _cached(path)
    if not (graph.is_file() and card.is_file()):
        return None
    try:
        return Exported(path, graph, ModelCard.from_json(json.loads(card.read_text())))
    except (OSError, ValueError, KeyError, TypeError, AmtError):
        log.info("%s: an unreadable model card; the checkpoint is read instead", card)
        return None


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
    import torch

    class Heads(torch.nn.Module):
        """The model with its heads as a tuple, in a fixed order (what the exporter takes)."""

        def __init__(self, heads: list[str]):
            super().__init__()
            self.model, self.heads = model, heads

        def forward(self, spectrogram: torch.Tensor) -> tuple[torch.Tensor, ...]:
            outputs = self.model(spectrogram)
            return tuple(outputs[name] for name in self.heads)

    example = torch.zeros(1, EXPORT_FRAMES, model.bins)
    with torch.inference_mode():
        heads = list(model.eval()(example))
    frames = torch.export.Dim("frames", min=16, max=1 << 20)

    def write(tmp: str) -> None:
        with _quiet_exporter():
            torch.onnx.export(
                Heads(heads).eval(),
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


def export_once(checkpoint: Checkpoint) -> Exported:
    """The checkpoint's graph (exported unless already cached) and its card (written afresh: a few
    hundred bytes, and a card left unreadable by an older amt is mended)."""
    graph, card = _cached(checkpoint.path)
    if not graph.is_file():
        log.info("exporting %s to ONNX once (%s)", checkpoint.path.name, graph)
        export(checkpoint.model, graph)
    model_card = ModelCard.of(checkpoint)
    write_json(model_card.to_json(), card)
    return Exported(checkpoint.path, graph, model_card)


class OnnxContextModel:
    """A context model whose forward pass ONNX Runtime runs: the same grid, bands and label space as
    the model, and the same heads' logits (:meth:`logits`), from an exported graph."""

    context = True

    def __init__(self, exported: Exported, threads: int):
        import onnxruntime

        self.grid, self.bands, self.labels = exported.card.grid, exported.card.bands, exported.card.labels
        self.bins = self.bands.bands
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(str(exported.graph), options, providers=["CPUExecutionProvider"])
        self.heads = [output.name for output in self.session.get_outputs()]

    def logits(self, spectrogram: np.ndarray) -> dict[str, np.ndarray]:
        """``{head: logits [batch, frames, notes]}`` of a spectrogram excerpt ``[batch, frames, bins]``."""
        outputs = self.session.run(None, {INPUT: np.ascontiguousarray(spectrogram, dtype=np.float32)})
        return dict(zip(self.heads, outputs, strict=True))


def model_for(
    checkpoint: Checkpoint | Exported, engine: str, device: str = "cpu", threads: int | None = None
) -> TranscriptionModel | OnnxContextModel:
    """The checkpoint's model as ``engine`` runs it (the graph exported and cached on first use), ONNX
    Runtime on ``threads`` (default: as many as PyTorch uses, or every usable core without PyTorch)."""
    if isinstance(checkpoint, Exported):
        from amt.threads import usable_cores

        return OnnxContextModel(checkpoint, threads or usable_cores())
    if choose(engine, checkpoint.model, device) == "torch":
        return checkpoint.model
    import torch

    return OnnxContextModel(export_once(checkpoint), threads or torch.get_num_threads())
