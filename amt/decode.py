"""Decoding: a model's frame (and onset) probabilities → note events.

Frame ``i`` of a :class:`Frames` stands for ``[t_i - hop/2, t_i + hop/2)`` on its grid
(:mod:`amt.grid`): a run of active frames ``i..j`` becomes the note ``[t_i - hop/2, t_j + hop/2)``
(onsets clipped at 0), so :func:`amt.notes.piano_roll` renders the notes back onto exactly the frames
decoded. Three decoders, by name (:data:`DECODERS`): ``naive`` (the report's threshold),
``hysteresis`` and ``onsets`` (Onsets and Frames); :class:`DecoderConfig` holds their settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from amt.errors import AmtError
from amt.grid import FrameGrid
from amt.labels import KNOWN_WIDTHS, LabelSpace
from amt.notes import NoteEvent


def _setting(default: float | bool, help: str, kind: str = "seconds"):
    """A :class:`DecoderConfig` field; its help and ``kind`` (probability, seconds, weight; switches are
    bools) make the command line's option (``amt.cli``)."""
    return field(default=default, metadata={"help": help, "kind": kind})


@dataclass(frozen=True)
class DecoderConfig:
    """Parameters of every decoder (each reads the ones it needs).

    ``threshold`` is the naive decoder's (the report's 0.5). The hysteresis and onsets decoders keep
    a note going while its probability stays above ``off``, bridge dips shorter than ``max_gap_s``
    and drop notes shorter than ``min_note_s``. Hysteresis starts a note where the probability
    exceeds ``on``; the onsets decoder starts one at a peak of the onset probability above
    ``onset_threshold``, and also where only the frame probability exceeds ``on`` when
    ``start_without_onset`` is set. With ``frame_rise``, the onset probability is first raised by that
    much times the frame probability's rise (:func:`frame_rise`), so a weak onset where the frame
    clearly starts still counts (basic-pitch's inferred onsets do the same from frame differences).
    With ``octave_ratio``, an onset peak weaker than that fraction of an onset peak an octave above or
    below it, within a frame, is dropped (:func:`octave_echoes`). From a model with an offset head,
    with ``end_at_offsets``, a note also ends at the first peak of the offset probability above
    ``offset_threshold`` after its start.
    The defaults suit the report's window models at the 4,096 hop and
    the context model at its own; ``amt tune --save`` stores a model's own best settings in its
    checkpoint, where they replace these (the README gives the measurements behind them).
    """

    threshold: float = _setting(0.5, "naive: a frame is on above this probability", kind="probability")
    on: float = _setting(0.5, "a note starts above this probability", kind="probability")
    off: float = _setting(0.3, "a sounding note goes on while its probability stays above this", kind="probability")
    max_gap_s: float = _setting(0.1, "bridge dips shorter than this, seconds")
    min_note_s: float = _setting(0.1, "drop notes shorter than this, seconds")
    onset_threshold: float = _setting(0.3, "onsets: onset peak threshold", kind="probability")
    frame_rise: float = _setting(
        0.0, "onsets: add this times the frame probability's rise to the onset probability", kind="weight"
    )
    octave_ratio: float = _setting(
        0.0,
        "onsets: drop an onset peak weaker than this times one an octave away within a frame (0: keep all)",
        kind="probability",
    )
    start_without_onset: bool = _setting(True, "onsets: a clear frame may start a note without an onset peak")
    offset_threshold: float = _setting(0.5, "onsets: offset peak threshold", kind="probability")
    end_at_offsets: bool = _setting(True, "onsets: an offset peak ends a note (models with an offset head)")

    def __post_init__(self):
        for setting in fields(self):
            if setting.metadata["kind"] == "probability" and not 0.0 <= getattr(self, setting.name) < 1.0:
                value = getattr(self, setting.name)
                raise AmtError(f"decoder {setting.name} must be a probability in [0, 1), got {value}")
        if self.off > self.on:
            raise AmtError(f"decoder off threshold ({self.off}) must not exceed the on threshold ({self.on})")
        if self.max_gap_s < 0 or self.min_note_s < 0 or self.frame_rise < 0:
            raise AmtError("decoder max_gap_s, min_note_s and frame_rise must not be negative")


@dataclass(frozen=True)
class Frames:
    """A model's view of one recording: its frame grid, note probabilities ``[T, notes]`` (their width
    names the label space) and, from a model with those heads, onset and offset probabilities and
    velocities (MIDI velocity / 127 at a note's onset frame), each ``[T, notes]``."""

    grid: FrameGrid
    probabilities: np.ndarray
    onsets: np.ndarray | None = None
    offsets: np.ndarray | None = None
    velocities: np.ndarray | None = None

    def __post_init__(self):
        probabilities = np.asarray(self.probabilities)
        if probabilities.ndim != 2 or probabilities.shape[1] not in KNOWN_WIDTHS:
            widths = " or ".join(f"[frames, {width}]" for width in KNOWN_WIDTHS)
            raise AmtError(f"frame probabilities must be {widths} (a label space), got shape {probabilities.shape}")
        object.__setattr__(self, "probabilities", probabilities)
        heads = {"onsets": "onset probabilities", "offsets": "offset probabilities", "velocities": "velocities"}
        for head, name in heads.items():
            if getattr(self, head) is not None:
                values = np.asarray(getattr(self, head))
                if values.shape != probabilities.shape:
                    raise AmtError(f"{name} {values.shape} do not match frame probabilities {probabilities.shape}")
                object.__setattr__(self, head, values)

    @property
    def labels(self) -> LabelSpace:
        return LabelSpace.of_width(self.probabilities.shape[1])

    @property
    def centres(self) -> np.ndarray:
        """Frame centres (samples)."""
        return self.grid.centres(len(self.probabilities))

    @property
    def times(self) -> np.ndarray:
        """Frame times (s): the window centres."""
        return self.grid.times(len(self.probabilities))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _bridge(mask: np.ndarray, max_gap_frames: int) -> np.ndarray:
    """``mask`` with every run of at most ``max_gap_frames`` False between two Trues set to True."""
    starts, ends = _runs(~mask)
    inner = (starts > 0) & (ends < len(mask)) & (ends - starts <= max_gap_frames)
    change = np.zeros(len(mask) + 1, dtype=np.int32)
    change[starts[inner]] += 1
    change[ends[inner]] -= 1
    return mask | (np.cumsum(change[:-1]) > 0)


def _frames_shorter_than(seconds: float, hop: float) -> int:
    """The most frames of ``hop`` seconds that last strictly less than ``seconds``."""
    return max(int(np.ceil(seconds / hop - 1e-9)) - 1, 0)


@dataclass(frozen=True)
class _Segmenter:
    """One pitch's frame probabilities → note spans in frames (the rules of :class:`DecoderConfig`)."""

    on: float
    off: float
    max_gap_frames: int = 0
    min_frames: int = 1
    start_without_onset: bool = True

    @classmethod
    def from_config(cls, config: DecoderConfig, hop: float, start_without_onset: bool) -> _Segmenter:
        return cls(
            on=config.on,
            off=config.off,
            max_gap_frames=_frames_shorter_than(config.max_gap_s, hop),
            min_frames=_frames_shorter_than(config.min_note_s, hop) + 1,
            start_without_onset=start_without_onset,
        )

    def spans(self, frames: np.ndarray, onsets: np.ndarray, offsets: np.ndarray | None = None) -> list[tuple[int, int]]:
        """Half-open frame spans ``[start, end)``.

        A stretch where the frame probability stays above ``off`` (dips bridged, onset frames
        included) holds one note per onset in it, each lasting until the next onset or the end of
        the stretch, or with ``offsets`` (offset peaks) until the first offset after its first frame.
        Before its first onset, a note starts at the first frame above ``on`` when
        ``start_without_onset`` is set (with no onsets at all, that is plain hysteresis).
        """
        spans = []
        sustained = _bridge((frames > self.off) | onsets, self.max_gap_frames)
        for run_start, run_end in zip(*_runs(sustained), strict=True):
            starts = [int(s) for s in run_start + np.flatnonzero(onsets[run_start:run_end])]
            first = starts[0] if starts else run_end
            loud = frames[run_start:first] > self.on
            if self.start_without_onset and loud.any():
                starts.insert(0, int(run_start + np.argmax(loud)))
            if not starts:
                continue
            ends = starts[1:] + [int(run_end)]
            if offsets is not None:
                ends = [_first_offset(offsets, s, e) for s, e in zip(starts, ends, strict=True)]
            spans += [(s, e) for s, e in zip(starts, ends, strict=True) if e - s >= self.min_frames]
        return spans


def _first_offset(offsets: np.ndarray, start: int, end: int) -> int:
    """The end (exclusive) of a note spanning ``[start, end)`` cut at its first offset peak after ``start``."""
    found = np.flatnonzero(offsets[start + 1 : end])
    return start + 2 + int(found[0]) if len(found) else end


def _peaks(onsets: np.ndarray, threshold: float) -> np.ndarray:
    """Frames where the (onset or offset) probability is above ``threshold`` and a local maximum in
    time (the first frame of a plateau)."""
    silence = np.zeros((1, onsets.shape[1]), dtype=onsets.dtype)
    before = np.concatenate((silence, onsets[:-1]))
    after = np.concatenate((onsets[1:], silence))
    return (onsets > threshold) & (onsets > before) & (onsets >= after)


OCTAVE = 12
"""Semitones from a key to its second partial."""


def octave_echoes(peaks: np.ndarray, strength: np.ndarray, ratio: float) -> np.ndarray:
    """The onset ``peaks`` (``[T, notes]`` bool, keys a semitone apart) whose ``strength`` is below
    ``ratio`` times that of a peak an octave above or below, in the same frame or the next or the one
    before: the second partial of a struck key heard as a key of its own, or the key below a struck
    one heard from its partials. A real octave, both keys struck, has peaks of like strength and keeps both."""
    height = np.where(peaks, strength, 0.0)
    near = height.copy()
    near[1:] = np.maximum(near[1:], height[:-1])
    near[:-1] = np.maximum(near[:-1], height[1:])
    rival = np.zeros_like(height)
    rival[:, OCTAVE:] = near[:, :-OCTAVE]
    rival[:, :-OCTAVE] = np.maximum(rival[:, :-OCTAVE], near[:, OCTAVE:])
    return peaks & (strength < ratio * rival)


def frame_rise(probabilities: np.ndarray) -> np.ndarray:
    """How much each frame's probability rises from the frame before it to two frames after it (0 where
    it falls), ``[T, notes]``: where a note starts, its frame probability climbs over about three frames
    of 23 ms. Before the first frame is silence; past the last, the last frame holds."""
    silence = np.zeros((1, probabilities.shape[1]), dtype=probabilities.dtype)
    before = np.concatenate((silence, probabilities))[: len(probabilities)]
    after = np.concatenate((probabilities[2:], np.repeat(probabilities[-1:], min(2, len(probabilities)), axis=0)))
    return np.maximum(after - before, 0.0)


def _decode(
    frames: Frames, segmenter: _Segmenter, onset_frames: np.ndarray | None, offset_frames: np.ndarray | None = None
) -> list[NoteEvent]:
    """Segment every pitch and turn its frame spans into notes. A note's velocity is the model's
    velocity at its first frame when it has a velocity head, else its peak probability × 127 (a
    model's confidence, not a dynamic)."""
    probabilities, times, half_hop, labels = frames.probabilities, frames.times, frames.grid.hop_s / 2, frames.labels
    if onset_frames is None:
        onset_frames = np.zeros(probabilities.shape, dtype=bool)
    events = []
    for index in range(labels.notes):
        offsets = None if offset_frames is None else offset_frames[:, index]
        for start, end in segmenter.spans(probabilities[:, index], onset_frames[:, index], offsets):
            if frames.velocities is not None:
                level = float(frames.velocities[start, index])
            else:
                level = float(probabilities[start:end, index].max())
            events.append(
                NoteEvent(
                    onset_s=max(float(times[start]) - half_hop, 0.0),
                    offset_s=float(times[end - 1]) + half_hop,
                    pitch=labels.midi(index),
                    velocity=int(np.clip(round(level * 127), 1, 127)),
                )
            )
    return sorted(events, key=lambda e: (e.onset_s, e.pitch))


def decode_naive(frames: Frames, config: DecoderConfig) -> list[NoteEvent]:
    """The report's decoding: every run of frames above ``config.threshold`` is a note.

    A single missed frame inside a held note splits it in two, which MIDI plays as a re-attack.
    """
    return _decode(frames, _Segmenter(on=config.threshold, off=config.threshold), None)


def decode_hysteresis(frames: Frames, config: DecoderConfig) -> list[NoteEvent]:
    """Notes start above ``config.on`` and continue above ``config.off``; dips shorter than
    ``config.max_gap_s`` are bridged and notes shorter than ``config.min_note_s`` dropped."""
    return _decode(frames, _Segmenter.from_config(config, frames.grid.hop_s, start_without_onset=True), None)


NO_ONSETS = "the onsets decoder needs onset probabilities, and this model predicts frames only"


def decode_onsets(frames: Frames, config: DecoderConfig) -> list[NoteEvent]:
    """Onsets-and-Frames decoding: a note starts at a peak of the onset probability above
    ``config.onset_threshold`` and continues while the frame probability stays above ``config.off``.

    A second onset peak inside a sounding note starts a new note (a repeated note). Frames that rise
    above ``config.on`` without an onset start a note only with ``config.start_without_onset``. With
    ``config.frame_rise``, peaks are picked from the onset probability plus that much of the frame
    probability's rise; with ``config.octave_ratio``, peaks an octave from a much stronger one are
    dropped.
    """
    if frames.onsets is None:
        raise AmtError(NO_ONSETS)
    onsets = frames.onsets
    if config.frame_rise:
        onsets = onsets + config.frame_rise * frame_rise(frames.probabilities)
    segmenter = _Segmenter.from_config(config, frames.grid.hop_s, config.start_without_onset)
    offsets = None
    if config.end_at_offsets and frames.offsets is not None:
        offsets = _peaks(frames.offsets, config.offset_threshold)
    peaks = _peaks(onsets, config.onset_threshold)
    if config.octave_ratio:
        peaks &= ~octave_echoes(peaks, onsets, config.octave_ratio)
    return _decode(frames, segmenter, peaks, offsets)


DECODERS: dict[str, Callable[[Frames, DecoderConfig], list[NoteEvent]]] = {
    "naive": decode_naive,
    "hysteresis": decode_hysteresis,
    "onsets": decode_onsets,
}
"""Decoders by name."""


def check_decoders(names: Sequence[str], predicts_onsets: bool = True) -> None:
    """Refuse an unknown decoder name, and the onsets decoder for a model without an onset head."""
    for name in names:
        if name not in DECODERS:
            raise AmtError(f"unknown decoder '{name}' (choose from: {', '.join(DECODERS)})")
        if name == "onsets" and not predicts_onsets:
            raise AmtError(NO_ONSETS)


def default_decoder(predicts_onsets: bool) -> str:
    """``onsets`` for a model with an onset head (a context model), else ``hysteresis``."""
    return "onsets" if predicts_onsets else "hysteresis"


READS = {
    "naive": ("threshold",),
    "hysteresis": ("on", "off", "max_gap_s", "min_note_s"),
    "onsets": (
        "onset_threshold",
        "frame_rise",
        "octave_ratio",
        "off",
        "start_without_onset",
        "on",
        "max_gap_s",
        "min_note_s",
        "offset_threshold",
        "end_at_offsets",
    ),  # fmt: skip
}
"""The :class:`DecoderConfig` settings each decoder reads."""


def describe(name: str, config: DecoderConfig) -> str:
    """The settings decoder ``name`` will use, as the command-line options that would set them."""

    def option(key: str) -> str:
        flag, value = key.replace("_", "-"), getattr(config, key)
        if isinstance(value, bool):
            return f"--{flag}" if value else f"--no-{flag}"
        return f"--{flag} {value:g}"

    return " ".join(option(key) for key in READS[name])


def decode(name: str, frames: Frames, config: DecoderConfig | None = None) -> list[NoteEvent]:
    """Decode a recording's frames with the decoder ``name``."""
    check_decoders([name])
    return DECODERS[name](frames, config or DecoderConfig())
