"""Whole recordings → frame probabilities → note events → MIDI, note csv and piano-roll PNG.

The recording goes through the same audio stage as training (:func:`amt.audio.load_audio`, windows
of 4,096 samples every ``hop`` samples, each peak-normalised, ``abs(rfft)`` cut to the model's
``bins``), so a model sees whole recordings exactly as it saw its training windows. Windows are
made, transformed and classified :data:`CHUNK_WINDOWS` at a time: an hour of audio is held once as
samples (≈ 635 MB) but never as windows (as much again at the default hop, 4× that at a hop of
1,024) or spectra.

Frame ``i`` is the window centred on sample ``c_i``; its time is ``c_i / 44,100`` and it stands for
``[t_i - hop/2, t_i + hop/2)`` (see the note-event section of :mod:`amt.notes`).

A checkpoint is the one ``train.py`` writes (a :class:`amt.module.TranscriptionModule`). The module
does not pickle its model; the architecture is the ``model_config`` hyperparameter when the
checkpoint saves one, else the model section of the run's composed Hydra config: ``NAME.yaml``
beside ``NAME.ckpt`` (how bundled weights travel), or the training run's ``.hydra/config.yaml``
(``RUN/checkpoints/NAME.ckpt`` → ``RUN/.hydra/config.yaml``). That config also says whether the
model read log-compressed spectra. Checkpoints are pickles: load only checkpoints you trust.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, load_audio, peak_normalise, sequential_centres, spectra, windows_around
from amt.errors import AmtError
from amt.notes import (
    DECODERS,
    NO_ONSETS,
    NUM_NOTES,
    DecoderConfig,
    NoteEvent,
    decode,
    events_from_musicnet,
    read_musicnet_csv,
    write_atomically,
    write_midi,
    write_note_csv,
)

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS / "default.ckpt"
"""The model ``amt transcribe`` uses without ``--ckpt`` (see amt/weights/README.md)."""
CNN_MULTI_CHECKPOINT = WEIGHTS / "cnn_multi.ckpt"
"""The report's multi-layer CNN trained on the default corpus, bundled for comparison (``--ckpt``)."""

DECODER_CONFIG_KEY = "decoder_config"
"""Where a checkpoint's hyperparameters keep its tuned decoder settings."""

CHUNK_WINDOWS = 8_192
"""Windows cut, transformed and classified at a time (≈ 134 MB of float32 windows)."""
SEQUENCE_CHUNK = 2_048
"""Frames a context model transcribes at a time (47 s at a hop of 1,024)."""
SEQUENCE_CONTEXT = 128
"""Frames of context a chunk sees on either side (3 s at a hop of 1,024)."""


# --- the model -----------------------------------------------------------------------------------


class LogCompressed(nn.Module):
    """A model trained on ``log1p`` spectra (``data.datamodule.log_compress=true``), fed raw magnitudes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.bins = model.bins

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.model(torch.log1p(spectra))


def _load_checkpoint(ckpt: Path) -> dict:
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as error:  # torch.load raises almost anything for a file that is not a checkpoint
        raise AmtError(f"{ckpt}: not a PyTorch checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise AmtError(f"{ckpt}: not a checkpoint of amt's TranscriptionModule (not a dictionary)")
    return checkpoint


def _read_checkpoint(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The model's weights (keys without ``model.``) and, when saved, its config from the hyperparameters."""
    checkpoint = _load_checkpoint(ckpt)
    state = checkpoint.get("state_dict")
    weights = {k.removeprefix("model."): v for k, v in (state or {}).items() if k.startswith("model.")}
    if not weights:
        raise AmtError(f"{ckpt}: not a checkpoint of amt's TranscriptionModule (no model.* weights in its state_dict)")
    return weights, (checkpoint.get("hyper_parameters") or {}).get("model_config")


def _train_config(ckpt: Path):
    """The composed train config beside the checkpoint or in its run folder (None when there is none)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for candidate in (ckpt.with_suffix(".yaml"), ckpt.parent.parent / ".hydra" / "config.yaml"):
        if candidate.is_file():
            try:
                return OmegaConf.load(candidate), candidate
            except (OSError, OmegaConfBaseException, ValueError) as error:
                raise AmtError(f"{candidate}: not a readable train config ({error})") from None
    return None, None


def _spectrum_options(config, source: Path) -> bool:
    """Whether the model read log1p spectra; refuses standardised ones (their statistics are not saved)."""
    from omegaconf import OmegaConf

    options = OmegaConf.select(config, "data.datamodule") or {}
    if options.get("standardise", False):
        raise AmtError(
            f"{source}: the model was trained on standardised spectra (data.datamodule.standardise=true), "
            "and the training split's statistics are not saved with it"
        )
    return bool(options.get("log_compress", False))


def _build_model(node, source: Path) -> nn.Module:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if not node or "_target_" not in node:
        raise AmtError(f"{source}: has no model section with a _target_")
    try:
        model = instantiate(node)
    except InstantiationException as error:
        raise AmtError(f"{source}: cannot build its model ({error.__cause__ or error})") from None
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "bins", None), int):
        raise AmtError(f"{source}: its model is not an nn.Module with a bins attribute")
    return model


def _existing(ckpt: str | os.PathLike | None) -> Path:
    """``ckpt`` (default: :data:`DEFAULT_CHECKPOINT`), which must exist."""
    ckpt = Path(ckpt) if ckpt is not None else DEFAULT_CHECKPOINT
    if not ckpt.is_file():
        if ckpt == DEFAULT_CHECKPOINT:
            raise AmtError(f"no default model is installed ({ckpt} is missing); pass --ckpt PATH")
        raise AmtError(f"{ckpt}: no such checkpoint")
    return ckpt


def load_model(ckpt: str | os.PathLike | None = None) -> nn.Module:
    """The model of a ``train.py`` checkpoint (default: :data:`DEFAULT_CHECKPOINT`), in eval mode on the CPU.

    The architecture comes from the checkpoint's ``model_config`` hyperparameter when it has one,
    else from the train config beside it or in its run folder. The model takes raw ``abs(rfft)``
    spectra: one trained with ``data.datamodule.log_compress=true`` (as that config says) comes
    wrapped in :class:`LogCompressed`; one trained with ``data.datamodule.standardise=true`` is
    refused, since its checkpoint lacks the training split's statistics.
    """
    ckpt = _existing(ckpt)
    weights, saved_model_config = _read_checkpoint(ckpt)
    config, config_file = _train_config(ckpt)
    if saved_model_config is None and config is None:
        raise AmtError(
            f"{ckpt}: cannot tell which model this checkpoint holds: it saves no model_config, and neither "
            f"{ckpt.with_suffix('.yaml').name} beside it nor its run's .hydra/config.yaml exists"
        )
    log_compress = _spectrum_options(config, config_file) if config is not None else False
    source = ckpt if saved_model_config is not None else config_file
    model = _build_model(saved_model_config if saved_model_config is not None else config.get("model"), source)
    _fit_weights(model, weights, ckpt, f"the model in {source}")
    return (LogCompressed(model) if log_compress else model).eval()


def _fit_weights(model: nn.Module, weights: dict[str, torch.Tensor], ckpt: Path, target: str) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = str(error).splitlines()
        raise AmtError(f"{ckpt}: its weights do not fit {target} ({lines[-1].strip()})") from None


def initialise_from(model: nn.Module, ckpt: str | os.PathLike) -> None:
    """Start training ``model`` from the weights of a ``train.py`` checkpoint (fine-tuning).

    Unlike resuming (``ckpt_path``), only the weights are taken: the optimiser, schedule and epoch
    count start afresh. float16 weights (the bundled models) are widened to the model's float32.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise AmtError(f"{ckpt}: no such checkpoint to initialise from")
    weights, _ = _read_checkpoint(ckpt)
    _fit_weights(model, weights, ckpt, f"model={type(model).__name__} as configured (check the model overrides)")


def checkpoint_decoder_config(ckpt: str | os.PathLike | None = None) -> DecoderConfig:
    """The decoder settings saved in a checkpoint (``amt tune --save``) over :class:`DecoderConfig`'s
    defaults: thresholds belong to the model they were tuned for."""
    saved = (_load_checkpoint(_existing(ckpt)).get("hyper_parameters") or {}).get(DECODER_CONFIG_KEY) or {}
    known = {field.name for field in fields(DecoderConfig)}
    return DecoderConfig(**{name: value for name, value in saved.items() if name in known})


def save_decoder_config(ckpt: str | os.PathLike, config: DecoderConfig) -> None:
    """Store ``config`` in the checkpoint (atomically), where :func:`checkpoint_decoder_config` finds it."""
    ckpt = _existing(ckpt)
    checkpoint = _load_checkpoint(ckpt)
    checkpoint.setdefault("hyper_parameters", {})[DECODER_CONFIG_KEY] = asdict(config)
    write_atomically(ckpt, ".ckpt", lambda tmp: torch.save(checkpoint, tmp))


def default_decoder(model: nn.Module) -> str:
    """``onsets`` for a model that predicts onsets (a context model), else ``hysteresis``."""
    return "onsets" if getattr(model, "sequence", False) else "hysteresis"


def check_decoders(model: nn.Module, decoders: Sequence[str]) -> None:
    """Refuse, before any audio is read, the onsets decoder for a model that predicts frames only."""
    if "onsets" in decoders and not getattr(model, "sequence", False):
        raise AmtError(NO_ONSETS)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``, refusing a GPU that is not there."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AmtError(f"unknown device '{name}' (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AmtError("--device cuda: no CUDA GPU is available")
    return device


# --- frame probabilities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frames:
    """A model's view of one recording: frame centres (samples), note probabilities ``[T, 81]`` and,
    from a context model, onset probabilities ``[T, 81]``."""

    centres: np.ndarray
    probabilities: np.ndarray
    onsets: np.ndarray | None = None

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds (window centres)."""
        return self.centres / SAMPLE_RATE


def _classify(model: nn.Module, features: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    out = np.empty((len(features), NUM_NOTES), dtype=np.float32)
    for start in range(0, len(features), batch_size):
        batch = torch.from_numpy(features[start : start + batch_size]).to(device)
        logits = model(batch)
        if logits.shape != (len(batch), NUM_NOTES):
            raise AmtError(f"the model returned shape {tuple(logits.shape)}, expected [batch, {NUM_NOTES}]")
        out[start : start + len(batch)] = _finite_probabilities(logits)
    return out


def frame_probabilities(
    samples: np.ndarray,
    model: nn.Module,
    hop: int = WINDOW_SIZE,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    description: str = "transcribing",
) -> Frames:
    """Note probabilities of sequential windows every ``hop`` samples over a whole recording.

    Memory stays bounded: windows and spectra exist only :data:`CHUNK_WINDOWS` at a time.
    """
    if hop < 1 or batch_size < 1:
        raise AmtError(f"hop and batch size must be positive, got hop={hop}, batch size={batch_size}")
    device = torch.device(device)
    if getattr(model, "sequence", False):
        return sequence_probabilities(samples, model, device, progress, description)
    centres = sequential_centres(len(samples), hop)
    probabilities = np.empty((len(centres), NUM_NOTES), dtype=np.float32)
    task = progress.add_task(description, total=len(centres)) if progress is not None else None
    model = model.to(device).eval()
    with torch.inference_mode():
        for start in range(0, len(centres), CHUNK_WINDOWS):
            chunk = centres[start : start + CHUNK_WINDOWS]
            features = spectra(peak_normalise(windows_around(samples, chunk)), model.bins)
            probabilities[start : start + len(chunk)] = _classify(model, features, batch_size, device)
            if task is not None:
                progress.advance(task, len(chunk))
    if task is not None:
        progress.remove_task(task)
    return Frames(centres, probabilities)


def _finite_probabilities(logits: torch.Tensor) -> np.ndarray:
    if not torch.isfinite(logits).all():
        raise AmtError("the model returned NaN or infinite logits (are its weights broken?)")
    return torch.sigmoid(logits.float()).cpu().numpy()


def sequence_probabilities(
    samples: np.ndarray,
    model: nn.Module,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    description: str = "transcribing",
) -> Frames:
    """Frame and onset probabilities of a context model over a whole recording, at the model's own hop.

    The spectrogram (:mod:`amt.features`, 0.7 KB a frame: 110 MB for an hour) is run through the
    model :data:`SEQUENCE_CHUNK` frames at a time, each chunk seeing :data:`SEQUENCE_CONTEXT`
    frames of context on either side, so memory stays bounded and chunk edges are not heard as edges.
    """
    from amt.features import log_frequency_spectrogram

    features = log_frequency_spectrogram(samples, model.hop)
    frames, onsets = (np.empty((len(features), NUM_NOTES), dtype=np.float32) for _ in range(2))
    task = progress.add_task(description, total=len(features)) if progress is not None else None
    model = model.to(device).eval()
    with torch.inference_mode():
        for start in range(0, len(features), SEQUENCE_CHUNK):
            stop = min(start + SEQUENCE_CHUNK, len(features))
            first, last = max(0, start - SEQUENCE_CONTEXT), min(len(features), stop + SEQUENCE_CONTEXT)
            outputs = model(torch.from_numpy(features[first:last]).to(device).unsqueeze(0))
            keep = slice(start - first, stop - first)
            frames[start:stop] = _finite_probabilities(outputs["frame"][0, keep])
            onsets[start:stop] = _finite_probabilities(outputs["onset"][0, keep])
            if task is not None:
                progress.advance(task, stop - start)
    if task is not None:
        progress.remove_task(task)
    return Frames(sequential_centres(len(samples), model.hop), frames, onsets)


# --- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """Where one input's results go: ``NAME.mid``, ``NAME.csv`` and (with ``--plot``) ``NAME.png``."""

    midi: Path

    @property
    def csv(self) -> Path:
        return self.midi.with_suffix(".csv")

    @property
    def png(self) -> Path:
        return self.midi.with_suffix(".png")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AmtError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None


def output_paths(inputs: Sequence[Path], out: Path) -> list[Outputs]:
    """``OUT/NAME.mid`` for each input, or ``out`` itself when it names one ``.mid`` file for one input.

    The output folder is created here, so an unusable one fails once, before any work.
    """
    if out.suffix.lower() in (".mid", ".midi"):
        if len(inputs) != 1:
            raise AmtError(f"-o {out} names one MIDI file, but {len(inputs)} inputs were given; pass a folder")
        _make_folder(out.parent)
        return [Outputs(out)]
    if out.exists() and not out.is_dir():
        raise AmtError(f"{out}: exists and is not a folder")
    names = [Path(path).stem for path in inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AmtError(f"several inputs are named {', '.join(repeated)}; their outputs in {out} would overwrite")
    _make_folder(out)
    return [Outputs(out / f"{name}.mid") for name in names]


@dataclass(frozen=True)
class TranscribeSettings:
    """Everything about how recordings are transcribed, apart from the model."""

    hop: int = WINDOW_SIZE
    batch_size: int = 1024
    device: str = "cpu"
    decoder: str = "hysteresis"
    decoder_config: DecoderConfig = DecoderConfig()
    plot: bool = False

    def __post_init__(self):
        if self.hop < 1 or self.batch_size < 1:
            raise AmtError(f"hop and batch size must be positive, got {self.hop} and {self.batch_size}")
        if self.decoder not in DECODERS:
            raise AmtError(f"unknown decoder '{self.decoder}' (choose from: {', '.join(DECODERS)})")


@dataclass(frozen=True)
class Transcription:
    """The notes of one recording, its frame times, and (when labels were given) the true notes."""

    events: list[NoteEvent]
    frame_times: np.ndarray
    reference: list[NoteEvent] | None = None


def transcribe_file(
    audio: Path,
    outputs: Outputs,
    model: nn.Module,
    settings: TranscribeSettings | None = None,
    labels: Path | None = None,
    progress: Progress | None = None,
) -> Transcription:
    """Transcribe one recording and write its MIDI file, note csv and (optionally) piano-roll PNG.

    With ``labels`` (a MusicNet csv) the PNG compares the prediction with the true notes. Every
    error is an :class:`AmtError` naming the recording.
    """
    settings = settings or TranscribeSettings()
    try:
        reference = events_from_musicnet(read_musicnet_csv(labels)) if labels is not None else None
        frames = frame_probabilities(
            load_audio(audio), model, settings.hop, settings.batch_size, settings.device, progress, audio.name
        )
        events = decode(settings.decoder, frames.probabilities, frames.times, settings.decoder_config, frames.onsets)
        write_midi(events, outputs.midi)
        write_note_csv(events, outputs.csv)
        if settings.plot:
            from amt.plots import plot_transcription

            plot_transcription(events, frames.times, outputs.png, title=audio.name, reference=reference)
    except AmtError as error:
        if str(audio) in str(error):
            raise
        raise AmtError(f"{audio}: {error}") from None
    return Transcription(events, frames.times, reference)
