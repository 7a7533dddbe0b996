"""Whole recordings → frame probabilities → note events → MIDI, note csv and piano-roll PNG.

The recording goes through the same audio stage as training (:func:`amt.audio.load_audio`, windows
of 4,096 samples on a frame grid (:mod:`amt.grid`), each peak-normalised, ``abs(rfft)`` cut to the
model's ``bins``), so a window model sees whole recordings exactly as it saw its training windows.
Windows are made, transformed and classified :data:`CHUNK_WINDOWS` at a time: an hour of audio is
held once as samples (≈ 635 MB) but never as windows (as much again at the default hop, 4× that at
a hop of 1,024) or spectra. A context model reads the log-frequency spectrogram on its own grid.
Models come from checkpoints (:mod:`amt.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.progress import Progress
from scipy.special import expit

from amt.audio import load_audio, peak_normalise, spectra, windows_around
from amt.decode import DecoderConfig, Frames, check_decoders, decode
from amt.engine import OnnxContextModel
from amt.errors import AmtError
from amt.grid import WINDOW_GRID, FrameGrid
from amt.labels import read_musicnet_csv
from amt.notes import NOTE_CSV_SUFFIX, NoteEvent, events_from_musicnet, write_midi, write_note_csv

if TYPE_CHECKING:
    import torch

    from amt.models.base import TranscriptionModel

    Model = TranscriptionModel | OnnxContextModel

CHUNK_WINDOWS = 8_192
"""Windows cut, transformed and classified at a time (≈ 134 MB of float32 windows)."""
CONTEXT_CHUNK = 2_048
"""Frames a context model transcribes at a time (47 s at a hop of 1,024)."""
CONTEXT_MARGIN = 128
"""Frames of context a chunk sees on either side (3 s at a hop of 1,024)."""


# --- the device and the frames --------------------------------------------------------------------


def resolve_device(name: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, refusing a GPU that is not there (PyTorch is imported only for a GPU)."""
    if name == "cpu":
        return name
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise AmtError(f"unknown device '{name}' (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AmtError("--device cuda: no CUDA GPU is available")
    return str(device)


def _classify(model: TranscriptionModel, features: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    import torch

    notes = model.labels.notes
    out = np.empty((len(features), notes), dtype=np.float32)
    for start in range(0, len(features), batch_size):
        batch = torch.from_numpy(features[start : start + batch_size]).to(device)
        logits = model(batch)
        if logits.shape != (len(batch), notes):
            raise AmtError(f"the model returned shape {tuple(logits.shape)}, expected [batch, {notes}]")
        out[start : start + len(batch)] = _finite_probabilities(logits.float().cpu().numpy())
    return out


def frame_probabilities(
    samples: np.ndarray,
    model: Model,
    grid: FrameGrid | None = None,
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    description: str = "transcribing",
) -> Frames:
    """Note (and, from a context model, onset) probabilities over a whole recording.

    A window model classifies a window at every frame of ``grid`` (default: the report's
    back-to-back windows); a context model runs on its own grid, and ``grid``, when given, must be
    that one. Memory stays bounded: windows and spectra exist only :data:`CHUNK_WINDOWS` at a time.
    """
    if batch_size < 1:
        raise AmtError(f"batch size must be positive, got {batch_size}")
    if model.context:
        if grid is not None and grid != model.grid:
            raise AmtError(
                f"a context model transcribes on its own frame grid (hop {model.grid.hop}), not hop {grid.hop}"
            )
        return context_probabilities(samples, model, device, progress, description)
    import torch

    device = torch.device(device)
    grid = grid or WINDOW_GRID
    centres = grid.recording_centres(len(samples))
    probabilities = np.empty((len(centres), model.labels.notes), dtype=np.float32)
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
    return Frames(grid, probabilities)


def _finite_probabilities(logits: np.ndarray) -> np.ndarray:
    if not np.isfinite(logits).all():
        raise AmtError("the model returned NaN or infinite logits (are its weights broken?)")
    return expit(logits.astype(np.float32, copy=False))


def _head_logits(model: Model, device: str | torch.device) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A context model's ``{head: logits}`` for a spectrogram excerpt ``[1, frames, bins]``, as arrays:
    ONNX Runtime's directly, PyTorch's on ``device``."""
    if isinstance(model, OnnxContextModel):
        return model.logits
    import torch

    # channels-last: the acoustic encoder's 2-D convolutions run faster in that layout (README: Speed)
    model = model.to(device, memory_format=torch.channels_last).eval()

    def logits(excerpt: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outputs = model(torch.from_numpy(excerpt).to(device))
        return {name: values.float().cpu().numpy() for name, values in outputs.items()}

    return logits


def context_probabilities(
    samples: np.ndarray,
    model: Model,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    description: str = "transcribing",
) -> Frames:
    """Every head's probabilities (frames, onsets, and offsets and velocities when the model has those
    heads) of a context model over a whole recording, on the model's own grid.

    The spectrogram (:mod:`amt.features`, 0.7 KB a frame: 110 MB for an hour) is run through the
    model :data:`CONTEXT_CHUNK` frames at a time, each chunk seeing :data:`CONTEXT_MARGIN`
    frames of context on either side, so memory stays bounded and chunk edges are not heard as edges.
    """
    from amt.features import log_frequency_spectrogram

    features = log_frequency_spectrogram(samples, model.grid, model.bands)
    heads: dict[str, np.ndarray] = {}
    task = progress.add_task(description, total=len(features)) if progress is not None else None
    head_logits = _head_logits(model, device)
    for start in range(0, len(features), CONTEXT_CHUNK):
        stop = min(start + CONTEXT_CHUNK, len(features))
        first, last = max(0, start - CONTEXT_MARGIN), min(len(features), stop + CONTEXT_MARGIN)
        outputs = head_logits(features[None, first:last])
        keep = slice(start - first, stop - first)
        for name, logits in outputs.items():
            if name not in heads:
                heads[name] = np.empty((len(features), logits.shape[-1]), dtype=np.float32)
            heads[name][start:stop] = _finite_probabilities(logits[0, keep])
        if task is not None:
            progress.advance(task, stop - start)
    if task is not None:
        progress.remove_task(task)
    if not heads:  # a recording shorter than one frame
        heads = {name: np.empty((0, model.labels.notes), dtype=np.float32) for name in ("frame", "onset")}
    return Frames(
        model.grid, heads["frame"], heads["onset"], offsets=heads.get("offset"), velocities=heads.get("velocity")
    )


@dataclass(frozen=True)
class ModelRun:
    """A model, the frame grid it runs on (default: a context model's own, else the report's windows),
    and how to decode its output (one system per decoder)."""

    model: Model
    grid: FrameGrid | None = None
    decoders: tuple[str, ...] = ("hysteresis",)
    config: DecoderConfig = DecoderConfig()
    batch_size: int = 1024
    device: str = "cpu"

    def __post_init__(self):
        if self.grid is None:
            object.__setattr__(self, "grid", self.model.grid or WINDOW_GRID)
        check_decoders(self.decoders, self.model.context)

    def frames(self, wav: Path, progress: Progress | None = None, description: str = "transcribing") -> Frames:
        """The model's frames over one recording."""
        samples = load_audio(wav)
        return frame_probabilities(samples, self.model, self.grid, self.batch_size, self.device, progress, description)


# --- files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outputs:
    """Where one input's results go: ``NAME.mid``, ``NAME.notes.csv`` and (with ``--plot``) ``NAME.png``."""

    midi: Path

    @property
    def csv(self) -> Path:
        return self.midi.with_suffix("").with_name(self.midi.stem + NOTE_CSV_SUFFIX)

    @property
    def png(self) -> Path:
        return self.midi.with_suffix(".png")

    def files(self) -> tuple[Path, Path, Path]:
        return self.midi, self.csv, self.png


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
"""What a folder given as input contributes: its audio files (what libsndfile reads)."""


def audio_inputs(paths: Sequence[Path]) -> list[Path]:
    """The inputs, each folder replaced by its audio files (sorted, not recursive)."""
    inputs = []
    for path in map(Path, paths):
        if not path.is_dir():
            inputs.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not found:
            raise AmtError(f"{path}: a folder without audio files ({', '.join(AUDIO_SUFFIXES)})")
        inputs += found
    return inputs


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created, outermost first."""
    missing = [folder, *folder.parents]
    missing = [f for f in reversed(missing) if not f.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AmtError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None
    return missing


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders amt created for outputs that never came, innermost first, if still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _refuse_overwriting_inputs(outputs: Sequence[Outputs], inputs: Sequence[Path]) -> None:
    """Outputs never replace an input (a recording, a labels csv): refuse before any work."""
    protected = {Path(path).resolve() for path in inputs}
    for out in outputs:
        for path in out.files():
            if path.resolve() in protected:
                raise AmtError(f"{path}: is an input; amt never writes over its inputs (choose another -o)")


def output_paths(inputs: Sequence[Path], out: Path, protected: Sequence[Path] = ()) -> tuple[list[Outputs], list[Path]]:
    """``OUT/NAME.mid`` for each input, or ``out`` itself when it names one ``.mid`` file for one input,
    and the folders created for them.

    Refuses outputs that would replace an input or a ``protected`` file (labels). The output folder
    is created here, so an unusable one fails once, before any work; :func:`remove_if_empty` takes
    it away again when nothing was written into it.
    """
    if out.suffix.lower() in (".mid", ".midi"):
        if len(inputs) != 1:
            raise AmtError(f"-o {out} names one MIDI file, but {len(inputs)} inputs were given; pass a folder")
        outputs, folder = [Outputs(out)], out.parent
    else:
        if out.exists() and not out.is_dir():
            raise AmtError(f"{out}: exists and is not a folder")
        names = [Path(path).stem for path in inputs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise AmtError(f"several inputs are named {', '.join(repeated)}; their outputs in {out} would overwrite")
        outputs, folder = [Outputs(out / f"{name}.mid") for name in names], out
    _refuse_overwriting_inputs(outputs, [*inputs, *protected])
    return outputs, _make_folder(folder)


@dataclass(frozen=True)
class TranscribeSettings:
    """Everything about how recordings are transcribed, apart from the model.

    ``grid`` is the frame grid of a window model (None: the report's back-to-back windows); a
    context model keeps its own (:meth:`amt.checkpoint.Checkpoint.grid` chooses).
    """

    grid: FrameGrid | None = None
    batch_size: int = 1024
    device: str = "cpu"
    decoder: str = "hysteresis"
    decoder_config: DecoderConfig = DecoderConfig()
    plot: bool = False

    def __post_init__(self):
        if self.batch_size < 1:
            raise AmtError(f"batch size must be positive, got {self.batch_size}")
        check_decoders([self.decoder])


def score_line(reference: list[NoteEvent], events: list[NoteEvent], frames: Frames) -> str:
    """A transcription's scores against the true notes, in one line."""
    from amt.metrics import score

    metrics = score(reference, events, frames.times).metrics()
    return (
        f"note F1 {metrics['note_f1']:.3f} (with offsets {metrics['note_offset_f1']:.3f}), "
        f"frame F1 {metrics['frame_f1']:.3f}, re-attacks/note {metrics['reattacks_per_note']:.3f}"
    )


@dataclass(frozen=True)
class Transcription:
    """The notes of one recording, the frames they were decoded from, and (when labels were given) the true notes."""

    events: list[NoteEvent]
    frames: Frames
    reference: list[NoteEvent] | None = None


def transcribe_file(
    audio: Path,
    outputs: Outputs,
    model: Model,
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
            load_audio(audio), model, settings.grid, settings.batch_size, settings.device, progress, audio.name
        )
        events = decode(settings.decoder, frames, settings.decoder_config)
        write_midi(events, outputs.midi, name=f"{audio.stem} (amt)")
        write_note_csv(events, outputs.csv)
        if settings.plot:
            from amt.plots import plot_transcription

            scores = score_line(reference, events, frames) if reference is not None else ""
            plot_transcription(events, frames, outputs.png, title=audio.name, reference=reference, scores=scores)
    except AmtError as error:
        if str(audio) in str(error):
            raise
        raise AmtError(f"{audio}: {error}") from None
    return Transcription(events, frames, reference)
