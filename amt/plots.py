"""Piano-roll pictures of a transcription, alone or over the true notes (the report's Figures 10/11).

Notes are drawn on the model's frame grid (pitch vs time), the grid every metric uses, so what the
picture shows as a hit, a miss or a false note is exactly what the frame metrics count.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from amt.decode import Frames
from amt.files import write_atomically
from amt.labels import LOWEST_MIDI, NUM_NOTES, note_name
from amt.notes import NoteEvent, piano_roll

EMPTY, NOTE, HIT, FALSE, MISS = range(5)
COLOURS = ListedColormap(["white", "#1f4e9c", "#2a9d3a", "#d62728", "#f0a202"])
LEGEND = {HIT: "hit (in both)", FALSE: "false note (predicted only)", MISS: "missed (true only)"}
SHOWN_FIRST = np.array([EMPTY, MISS, FALSE, HIT, NOTE])
"""What a pooled pixel shows when its frames differ: the last of these present (a note over nothing,
a hit over an error), so a long recording's structure stays visible."""
MAX_COLUMNS = 2_400
"""Frames beyond this many are pooled, a few per pixel column, instead of being skipped by the image scaler."""


def _pooled(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``image [T, 81]`` with runs of ``k`` frames pooled into one column (see :data:`SHOWN_FIRST`), and ``k``."""
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
    low, high = max(low - margin, 0), min(high + margin, NUM_NOTES - 1)
    while high - low < 12:
        low, high = max(low - 1, 0), min(high + 1, NUM_NOTES - 1)
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
    octaves = [m for m in range(LOWEST_MIDI + low, LOWEST_MIDI + high + 1) if m % 12 == 0]
    axes.set_yticks(octaves, [note_name(m) for m in octaves])
    axes.grid(axis="y", color="0.85", linewidth=0.6)
    axes.set_ylabel("pitch")
    axes.set_title(title, loc="left")


def _save(figure: Figure, path: str | os.PathLike) -> None:
    write_atomically(path, ".png", lambda tmp: figure.savefig(tmp, format="png", dpi=110))


def plot_transcription(
    events: list[NoteEvent],
    frames: Frames,
    path: str | os.PathLike,
    title: str = "",
    reference: list[NoteEvent] | None = None,
) -> None:
    """Write a PNG piano roll of ``events``; with ``reference`` notes, predicted over true, coloured
    by hits, false notes and misses, on the frames the model saw."""
    predicted = piano_roll(events, frames.times).astype(bool)
    if reference is None:
        figure = Figure(figsize=(12, 4), layout="constrained")
        axes = figure.subplots()
        _draw(axes, np.where(predicted, NOTE, EMPTY), frames, _pitch_rows(predicted), f"{title}: transcription")
    else:
        true = piano_roll(reference, frames.times).astype(bool)
        rows = _pitch_rows(predicted, true)
        figure = Figure(figsize=(12, 7), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        hits = predicted & true
        _draw(top, np.select([hits, predicted], [HIT, FALSE], EMPTY), frames, rows, f"{title}: predicted")
        _draw(bottom, np.select([hits, true], [HIT, MISS], EMPTY), frames, rows, f"{title}: true notes")
        figure.legend(
            handles=[Patch(color=COLOURS.colors[k], label=label) for k, label in LEGEND.items()],
            loc="outside upper right",
            ncols=3,
        )
        axes = bottom
    axes.set_xlabel("time (s)")
    _save(figure, path)


def probability_roll(probabilities: np.ndarray, truth: np.ndarray, title: str = "") -> np.ndarray:
    """An RGB picture ``[H, W, 3]`` uint8 of a model's note probabilities ``[frames, 81]`` over the true
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
