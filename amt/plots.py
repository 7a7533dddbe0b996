"""Piano-roll pictures of a transcription, alone or over the true notes (the report's Figures 10/11).

Notes are drawn on the model's frame grid (pitch vs time), the grid every metric uses, so what the
picture shows as a hit, a miss or a false note is exactly what the frame metrics count; each note is
outlined, so a repeated note reads as two. Colours are Okabe and Ito's, safe for colour-blind eyes;
the picture grows with the recording's length and pitch range, and the pitch axis names the notes.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from amt.decode import Frames
from amt.files import write_atomically
from amt.labels import LOWEST_MIDI, PIANO_KEYS, note_name
from amt.notes import NoteEvent, piano_roll

EMPTY, NOTE, HIT, FALSE, MISS = range(5)
COLOURS = ListedColormap(["white", "#0072B2", "#0072B2", "#D55E00", "#E69F00"])
"""Empty, note, hit (blue), false note (vermillion), missed (orange): Okabe and Ito's palette."""
LEGEND = {HIT: "hit (in both)", FALSE: "false note (predicted only)", MISS: "missed (true only)"}
SHOWN_FIRST = np.array([EMPTY, MISS, FALSE, HIT, NOTE])
"""What a pooled pixel shows when its frames differ: the last of these present (a note over nothing,
a hit over an error), so a long recording's structure stays visible."""
MAX_COLUMNS = 2_400
"""Frames beyond this many are pooled, a few per pixel column, instead of being skipped by the image scaler."""
NAMED_ROWS = 48
"""Up to this many pitch rows, every white key is named on the pitch axis; beyond, every C."""


def _size(seconds: float, rows: int, panels: int) -> tuple[float, float]:
    """Inches: wider for longer recordings (a second ≈ 0.25 in, 10..48 in), taller for wider pitch ranges."""
    width = float(np.clip(6 + seconds / 4, 10, 48))
    return width, panels * float(np.clip(1.2 + rows * 0.1, 3, 8))


def _pooled(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``image [T, notes]`` with runs of ``k`` frames pooled into one column (see :data:`SHOWN_FIRST`), and ``k``."""
    k = -(-len(image) // MAX_COLUMNS)
    if k <= 1:
        return image, 1
    padded = np.concatenate([image, np.full((-len(image) % k, image.shape[1]), EMPTY, image.dtype)])
    rank = np.argsort(SHOWN_FIRST)[padded]
    return SHOWN_FIRST[rank.reshape(-1, k, image.shape[1]).max(axis=1)], k


def _pitch_rows(*rolls: np.ndarray, margin: int = 2) -> tuple[int, int]:
    """First and last label index to show: the notes used, with a little room, at least an octave."""
    used = np.flatnonzero(np.any(np.stack([roll.any(axis=0) for roll in rolls]), axis=0))
    low, high = (used[0], used[-1]) if len(used) else (39 - 6, 39 + 6)  # around C4 when empty
    top = rolls[0].shape[1] - 1
    low, high = max(low - margin, 0), min(high + margin, top)
    while high - low < 12:
        low, high = max(low - 1, 0), min(high + 1, top)
    return int(low), int(high)


def _draw(axes, image: np.ndarray, frames: Frames, rows: tuple[int, int], title: str) -> None:
    hop = frames.grid.hop_s
    low, high = rows
    image, frames_per_column = _pooled(image)
    start = frames.times[0] - hop / 2 if len(image) else 0.0
    end = start + len(image) * frames_per_column * hop
    axes.imshow(
        image[:, low : high + 1].T,
        cmap=COLOURS,
        vmin=0,
        vmax=len(COLOURS.colors) - 1,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        extent=(start, end, LOWEST_MIDI + low - 0.5, LOWEST_MIDI + high + 0.5),
    )
    pitches = range(LOWEST_MIDI + low, LOWEST_MIDI + high + 1)
    named = [m for m in pitches if (m % 12 in (0, 2, 4, 5, 7, 9, 11) if high - low < NAMED_ROWS else m % 12 == 0)]
    axes.set_yticks(named, [note_name(m) for m in named], fontsize=7 if high - low < NAMED_ROWS else 9)
    axes.set_yticks([m for m in pitches if m % 12 == 0], minor=True)
    axes.grid(axis="y", which="minor", color="0.8", linewidth=0.6)
    axes.set_ylabel("pitch")
    axes.set_title(title, loc="left")


def _outline(axes, events: list[NoteEvent], rows: tuple[int, int]) -> None:
    """A thin outline around every note, so notes that touch (a repeated note) stay apart."""
    low, high = LOWEST_MIDI + rows[0], LOWEST_MIDI + rows[1]
    boxes = [
        Rectangle((e.onset_s, e.pitch - 0.45), e.offset_s - e.onset_s, 0.9) for e in events if low <= e.pitch <= high
    ]
    axes.add_collection(PatchCollection(boxes, facecolor="none", edgecolor="0.15", linewidth=0.5))


def _save(figure: Figure, path: str | os.PathLike) -> None:
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def plot_transcription(
    events: list[NoteEvent],
    frames: Frames,
    path: str | os.PathLike,
    title: str = "",
    reference: list[NoteEvent] | None = None,
    scores: str = "",
) -> None:
    """Write a PNG piano roll of ``events``; with ``reference`` notes, predicted over true, coloured
    by hits, false notes and misses, on the frames the model saw, with ``scores`` in the title."""
    predicted = piano_roll(events, frames.times, PIANO_KEYS).astype(bool)
    seconds = float(frames.times[-1]) if len(frames.times) else 0.0
    if reference is None:
        rows = _pitch_rows(predicted)
        figure = Figure(figsize=_size(seconds, rows[1] - rows[0], 1), layout="constrained")
        axes = figure.subplots()
        _draw(axes, np.where(predicted, NOTE, EMPTY), frames, rows, f"{title}: transcription, {len(events)} notes")
        _outline(axes, events, rows)
    else:
        true = piano_roll(reference, frames.times, PIANO_KEYS).astype(bool)
        rows = _pitch_rows(predicted, true)
        figure = Figure(figsize=_size(seconds, rows[1] - rows[0], 2), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        hits = predicted & true
        _draw(top, np.select([hits, predicted], [HIT, FALSE], EMPTY), frames, rows, f"predicted, {len(events)} notes")
        _draw(bottom, np.select([hits, true], [HIT, MISS], EMPTY), frames, rows, f"true, {len(reference)} notes")
        _outline(top, events, rows)
        _outline(bottom, reference, rows)
        figure.legend(
            handles=[Patch(color=COLOURS.colors[k], label=label) for k, label in LEGEND.items()],
            loc="outside lower center",
            ncols=3,
        )
        figure.suptitle(f"{title}: {scores}" if scores else title, x=0.01, ha="left")
        axes = bottom
    axes.set_xlabel("time (s)")
    _save(figure, path)


def probability_roll(probabilities: np.ndarray, truth: np.ndarray, title: str = "") -> np.ndarray:
    """An RGB picture ``[H, W, 3]`` uint8 of a model's note probabilities ``[frames, notes]`` over the true
    notes, sharing the pitch rows that are used: how a validation excerpt looks to the model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rows = _pitch_rows(probabilities > 0.5, truth > 0.5)
    figure = Figure(figsize=(10, 5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for axes, image, label in ((top, probabilities, "predicted probability"), (bottom, truth, "true notes")):
        shown = axes.imshow(
            image[:, rows[0] : rows[1] + 1].T,
            cmap="viridis",
            vmin=0,
            vmax=1,
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            extent=(0, len(image), LOWEST_MIDI + rows[0] - 0.5, LOWEST_MIDI + rows[1] + 0.5),
        )
        octaves = [m for m in range(LOWEST_MIDI + rows[0], LOWEST_MIDI + rows[1] + 1) if m % 12 == 0]
        axes.set_yticks(octaves, [note_name(m) for m in octaves])
        axes.set_ylabel("pitch")
        axes.set_title(label, loc="left")
    bottom.set_xlabel("frame")
    figure.colorbar(shown, ax=[top, bottom], shrink=0.6)
    figure.suptitle(title)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
