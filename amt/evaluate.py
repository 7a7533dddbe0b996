"""Evaluation over a folder of recordings with MusicNet labels: systems rated, thresholds tuned, reports.

A system is rated on each recording and pooled over all of them (pooled = summed counts, so long
recordings weigh more, as in MusicNet's own evaluation). A system is a model with a decoder (each
``--decoder`` is its own system, sharing one inference pass) or a folder of note csvs that any
transcriber wrote (``--predictions``). Every system is scored on one frame grid: the model's (a
context model's own, a window model's at ``--hop``), or for prediction folders alone the report's
back-to-back windows unless a grid is given. The metrics are :mod:`amt.metrics`'.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile
from rich.progress import Progress
from rich.table import Table

from amt.data.recordings import Recording, find_labelled_recordings, performed_pedal
from amt.decode import DecoderConfig, Frames, decode
from amt.diagnostics import (
    Endings,
    Tally,
    add_endings,
    add_false_alarms,
    ending_metrics,
    endings,
    false_alarm_metrics,
    false_alarms,
    tally,
    with_performed_velocities,
)
from amt.diagnostics import add as add_tally
from amt.diagnostics import metrics as diagnostic_metrics
from amt.diagnostics import timbres as diagnostic_timbres
from amt.errors import AmtError
from amt.files import write_atomically
from amt.grid import WINDOW_GRID, FrameGrid
from amt.labels import read_musicnet_csv
from amt.metrics import OFFSET_RATIO, ONSET_TOLERANCE_S, Counts, micro_average_precision, score
from amt.notes import NOTE_CSV_SUFFIX, NoteEvent, events_from_musicnet, piano_roll, read_note_csv
from amt.transcribe import ModelRun

log = logging.getLogger(__name__)

POOLED = "pooled"


LABEL_UNITS = "MusicNet label csvs give start_time/end_time as sample indices at 44.1 kHz"
NOTE_UNITS = "note csvs give onset_s/offset_s in seconds"
LATE_TOLERANCE_S = 1.0
"""Notes may start this long after the audio ends (a last frame, rounding) before times look wrong."""
SHORT_CHECK_S = 5.0
"""Recordings from this long on are checked for notes that all end in their first twentieth."""


def audio_duration_s(wav: Path) -> float:
    """A recording's length in seconds, from its header (no decoding)."""
    try:
        info = soundfile.info(wav)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AmtError(f"{wav}: not a readable audio file ({error})") from None
    return info.frames / info.samplerate


# --- evaluation ----------------------------------------------------------------------------------


@dataclass
class SystemResult:
    """One system's counts (and, for a model, frame-probability AP) per recording."""

    counts: dict[str, Counts]
    average_precision: dict[str, float | None] | None = None

    def table(self) -> dict[str, dict[str, float | None]]:
        """Metrics per recording id and :data:`POOLED`."""
        rows = {rid: counts.metrics() for rid, counts in self.counts.items()}
        rows[POOLED] = sum(self.counts.values(), Counts()).metrics()
        if self.average_precision is not None:
            for rid, row in rows.items():
                row["average_precision"] = self.average_precision[rid]
        return rows


def _prediction_file(folder: Path, recording_id: str) -> Path | None:
    """A system's note csv for a recording: ``ID.notes.csv`` (amt's name), else ``ID.csv``."""
    for name in (f"{recording_id}{NOTE_CSV_SUFFIX}", f"{recording_id}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def check_timing(events: Sequence[NoteEvent], duration_s: float, source: Path, units: str) -> None:
    """Refuse notes that start after the recording ends, and warn about notes that all end within its
    first twentieth: both are what times in the wrong unit look like (``units`` says the right one)."""
    if not events:
        return
    last_onset, last_offset = max(e.onset_s for e in events), max(e.offset_s for e in events)
    if last_onset > duration_s + LATE_TOLERANCE_S:
        raise AmtError(
            f"{source}: a note starts at {last_onset:,.1f} s, after the recording ends ({duration_s:.1f} s); {units}"
        )
    if duration_s > SHORT_CHECK_S and last_offset < duration_s / 20:
        log.warning("%s: its notes all end by %.2f s of a %.0f s recording; %s", source, last_offset, duration_s, units)


@dataclass
class _Scored:
    """One recording's counts per system and, for a model, its probabilities and reference roll."""

    counts: dict[str, Counts]
    probabilities: np.ndarray | None = None
    roll: np.ndarray | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)
    endings: dict[str, Endings] = field(default_factory=dict)
    false_alarms: dict[str, dict[str, int]] = field(default_factory=dict)


def _reference(recording: Recording, duration_s: float) -> list[NoteEvent]:
    reference = events_from_musicnet(read_musicnet_csv(recording.csv))
    check_timing(reference, duration_s, recording.csv, LABEL_UNITS)
    return reference


def _score_recording(
    recording: Recording,
    run: ModelRun | None,
    folders: Sequence[Path],
    grid: FrameGrid,
    progress: Progress | None,
    timbre: str | None = None,
) -> _Scored:
    """Every system's counts on one recording; with a ``timbre`` (diagnostics asked for), its tallies and
    endings too."""
    duration_s = audio_duration_s(recording.wav)
    reference, velocities = with_performed_velocities(_reference(recording, duration_s), recording.csv)
    scored = _Scored({})
    estimates = {}
    if run is not None:
        frames = run.frames(recording.wav, progress, recording.id)
        scored.probabilities, scored.roll = frames.probabilities, piano_roll(reference, frames.times, frames.labels)
        for name in run.decoders:
            estimates[name] = decode(name, frames, run.config)
            scored.counts[name] = score(reference, estimates[name], frames.times, velocities)
    times = grid.times(grid.count(round(duration_s * grid.sample_rate)))
    for folder in folders:
        path = _prediction_file(folder, recording.id)
        estimates[folder.name] = read_note_csv(path)
        check_timing(estimates[folder.name], duration_s, path, NOTE_UNITS)
        scored.counts[folder.name] = score(reference, estimates[folder.name], times, velocities)
    if timbre is not None:
        scored.tallies = {name: tally(reference, notes, timbre, velocities) for name, notes in estimates.items()}
        pedal = performed_pedal(recording.csv)
        scored.endings = {name: endings(reference, notes, pedal) for name, notes in estimates.items()}
        scored.false_alarms = {name: false_alarms(reference, notes) for name, notes in estimates.items()}
    return scored


def _named(error: AmtError, recording: Recording) -> str:
    """The error's line, naming the recording unless it begins with the file it is about already."""
    message = str(error)
    if Path(message.split(": ", 1)[0]).exists():
        return message
    return f"{recording.wav}: {message}"


def evaluate(
    root: str | os.PathLike,
    run: ModelRun | None = None,
    predictions: Sequence[str | os.PathLike] = (),
    grid: FrameGrid | None = None,
    progress: Progress | None = None,
    split: str | None = None,
    diagnose: bool = False,
) -> dict:
    """Rate a model (one system per decoder) and/or folders of note csvs on the recordings in ``root``
    (only its ``split``, when given), all on one frame grid: the model's, else ``grid`` (default:
    the report's back-to-back windows). With ``diagnose``, also where each system loses notes,
    where the notes it finds end and what its false alarms mistook (:mod:`amt.diagnostics`), under
    ``"diagnostics"``, ``"endings"`` and ``"false_alarms"``.

    A recording that cannot be scored (unreadable audio or labels, implausible times) is left out of
    every system and named under ``"failed"``; the others are still scored. Returns
    ``{"settings": {...}, "systems": {name: {recording id or "pooled": metrics}}, "failed": {id: line}}``,
    the form written as JSON; a prediction folder's system is named after the folder.
    """
    if run is None and not predictions:
        raise AmtError("nothing to evaluate: give a checkpoint or a folder of predictions")
    if run is not None and grid is not None and grid != run.grid:
        raise AmtError(f"the model runs on hop {run.grid.hop}, and systems are scored on one grid, not hop {grid.hop}")
    grid = run.grid if run is not None else grid or WINDOW_GRID
    recordings = find_labelled_recordings(root, split)
    folders = [Path(folder) for folder in predictions]
    for folder in folders:
        if not folder.is_dir():
            raise AmtError(f"{folder}: no such folder of predictions")
        missing = [r.id for r in recordings if _prediction_file(folder, r.id) is None]
        if missing:
            raise AmtError(
                f"{folder}: no note csv for recording(s) {', '.join(missing)} (expected ID{NOTE_CSV_SUFFIX} or ID.csv)"
            )
    decoders = run.decoders if run is not None else ()
    names = [*decoders, *(folder.name for folder in folders)]
    counts: dict[str, dict[str, Counts]] = {name: {} for name in names}
    ap: dict[str, float | None] = {}
    probabilities, rolls, failed = [], [], {}
    known_timbres = diagnostic_timbres([r.csv for r in recordings]) if diagnose else {}
    tallies: dict[str, Tally] = {name: {} for name in names}
    ended: dict[str, Endings] = {name: {} for name in names}
    alarms: dict[str, dict[str, int]] = {name: {} for name in names}
    for recording in recordings:
        timbre = known_timbres.get(recording.id, "unknown") if diagnose else None
        try:
            scored = _score_recording(recording, run, folders, grid, progress, timbre)
        except AmtError as error:
            failed[recording.id] = _named(error, recording)
            continue
        for name in names:
            counts[name][recording.id] = scored.counts[name]
            if diagnose:
                add_tally(tallies[name], scored.tallies[name])
                add_endings(ended[name], scored.endings[name])
                add_false_alarms(alarms[name], scored.false_alarms[name])
        if run is not None:
            ap[recording.id] = micro_average_precision(scored.probabilities, scored.roll)
            probabilities.append(scored.probabilities)
            rolls.append(scored.roll)
    if len(failed) == len(recordings):
        raise AmtError(f"no recording could be scored; the first: {next(iter(failed.values()))}")
    if run is not None:
        ap[POOLED] = micro_average_precision(np.concatenate(probabilities), np.concatenate(rolls))
    systems = {name: SystemResult(counts[name], ap if name in decoders else None) for name in names}
    settings = {
        "root": str(root),
        "split": split,
        "recordings": len(recordings) - len(failed),
        "hop": grid.hop,
        "onset_tolerance_s": ONSET_TOLERANCE_S,
        "offset_ratio": OFFSET_RATIO,
        "decoder_config": asdict(run.config) if run is not None else None,
    }
    results = {
        "settings": settings,
        "systems": {name: system.table() for name, system in systems.items()},
        "failed": failed,
    }
    if diagnose:
        results["diagnostics"] = {name: diagnostic_metrics(tallies[name]) for name in names}
        results["endings"] = {name: ending_metrics(ended[name]) for name in names}
        results["false_alarms"] = {name: false_alarm_metrics(alarms[name]) for name in names}
    return results


# --- threshold tuning ----------------------------------------------------------------------------

THRESHOLD_GRID = tuple(round(0.1 * k, 2) for k in range(1, 10))


TUNED = {
    "naive": ("threshold",),
    "hysteresis": ("on", "off"),
    "onsets": ("onset_threshold", "frame_rise", "octave_ratio", "off", "min_note_s"),
}
"""The settings :func:`tune_thresholds` searches, per decoder (and, for a model with an offset head,
``offset_threshold`` and ``end_at_offsets`` after them)."""
MIN_NOTE_GRID = (0.0, 0.05, 0.1)
"""Shortest notes kept (s) tried for the onsets decoder: at a 23 ms hop, 15% of the corpus's notes
last under 0.1 s, the default made for one-frame blips at the 93 ms hop."""
FRAME_RISE_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
"""Weights of the frame probability's rise added to the onset probability, tried for the onsets decoder."""
ENDING_NOTE_F1_SLACK = 0.005
"""The note F1 the endings stage of :func:`tune_thresholds` may give up for note F1 with offsets: about
what tuning the same model again from other starting settings moves it by (README, "Concert halls")."""
ENDING_FRAME_F1_SLACK = 0.005
"""The frame F1 the endings stage may give up for note F1 with offsets, counted from the best frame F1
among the endings within the note F1 slack: a lower ``off`` holds notes longer, which can buy a little
note F1 with offsets for a lot of frame F1 (README, "Concert halls")."""
OCTAVE_RATIO_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Octave ratios (:func:`amt.decode.octave_echoes`) tried for the onsets decoder."""
Trial = tuple[DecoderConfig, dict[str, float]]
"""A decoder setting tried by the tuner, with its pooled metrics."""


def _trial_configs(decoder: str, config: DecoderConfig, thresholds: Sequence[float]) -> list[DecoderConfig]:
    if decoder == "naive":
        return [replace(config, threshold=t) for t in thresholds]
    if decoder == "hysteresis":
        return [replace(config, on=on, off=off) for on in thresholds for off in thresholds if off <= on]
    if decoder == "onsets":
        return [
            replace(config, onset_threshold=t, off=off, on=max(config.on, off), min_note_s=shortest)
            for t in thresholds
            for off in thresholds
            for shortest in MIN_NOTE_GRID
        ]
    raise AmtError(f"thresholds can be tuned for the {', '.join(TUNED)} decoders, not '{decoder}'")


def tune_thresholds(
    frames: Sequence[Frames],
    reference_events: Sequence[Sequence[NoteEvent]],
    decoder: str = "hysteresis",
    config: DecoderConfig | None = None,
    thresholds: Sequence[float] = THRESHOLD_GRID,
) -> list[Trial]:
    """Grid-search the decoder's thresholds (naive: ``threshold``; hysteresis: ``on`` and ``off <= on``;
    onsets: ``onset_threshold``, ``off`` and ``min_note_s``) over the frames of one or more recordings
    for the best pooled onset-only note F1. For the onsets decoder, a second stage keeps the best ``off``
    and ``min_note_s`` and tries each ``frame_rise`` of :data:`FRAME_RISE_GRID` with each onset
    threshold (a weight raises the onset probability, so it needs its own threshold); a third keeps those
    and tries each ``octave_ratio`` of :data:`OCTAVE_RATIO_GRID` with each onset threshold (dropping
    octave echoes frees a lower threshold). For a model with an offset head, a last stage then keeps
    the onset settings and tries each offset threshold, and ending notes without offsets, each with
    each ``off``, for the best note F1 with offsets among those within :data:`ENDING_NOTE_F1_SLACK` of
    the best note F1 and :data:`ENDING_FRAME_F1_SLACK` of the best frame F1 among these: where notes
    end is what the offset head and ``off`` decide, and onsets come first.

    Returns every trial as ``(config, pooled metrics)``, best first.
    """
    if len(frames) != len(reference_events):
        raise AmtError("tune_thresholds needs one list of reference notes per recording's frames")

    def trial(candidate: DecoderConfig) -> tuple[DecoderConfig, dict]:
        total = Counts()
        for recording, reference in zip(frames, reference_events, strict=True):
            total += score(reference, decode(decoder, recording, candidate), recording.times)
        return candidate, total.metrics()

    trials = sorted(map(trial, _trial_configs(decoder, config or DecoderConfig(), thresholds)), key=_note_f1)
    if decoder == "onsets":
        for setting, grid in (("frame_rise", FRAME_RISE_GRID), ("octave_ratio", OCTAVE_RATIO_GRID)):
            best = trials[0][0]
            stage = [
                replace(best, **{setting: value}, onset_threshold=t)
                for value in grid
                for t in thresholds
                if (value, t) != (getattr(best, setting), best.onset_threshold)
            ]
            trials = sorted(trials + list(map(trial, stage)), key=_note_f1)
    if decoder == "onsets" and any(recording.offsets is not None for recording in frames):
        best = trials[0][0]
        holds = [replace(best, off=off, on=max(best.on, off)) for off in thresholds]
        endings = [replace(held, end_at_offsets=True, offset_threshold=t) for held in holds for t in thresholds]
        endings += [replace(held, end_at_offsets=False) for held in holds]
        trials = choose_ending(list(map(trial, endings)), trials) + trials
    return trials


def choose_ending(endings: list[Trial], earlier: list[Trial]) -> list[Trial]:
    """The endings stage's trials, the chosen first: by note F1 with offsets among those within
    :data:`ENDING_NOTE_F1_SLACK` of the best note F1 of every trial, these and the ``earlier`` stages'
    (a way of ending notes can also raise note F1: joined notes no longer count twice), and within
    :data:`ENDING_FRAME_F1_SLACK` of the best frame F1 among those; then the rest."""
    floor = max(metrics["note_f1"] for _, metrics in [*endings, *earlier]) - ENDING_NOTE_F1_SLACK
    kept = [metrics["frame_f1"] for _, metrics in endings if metrics["note_f1"] >= floor]
    frame_floor = max(kept, default=0.0) - ENDING_FRAME_F1_SLACK
    return sorted(endings, key=lambda t: (t[1]["note_f1"] < floor, t[1]["frame_f1"] < frame_floor, _offset_f1(t)))


def _note_f1(trial: Trial) -> float:
    return -trial[1]["note_f1"]


def _offset_f1(trial: Trial) -> float:
    return -trial[1]["note_offset_f1"]


def tune(
    root: str | os.PathLike,
    run: ModelRun,
    decoder: str = "hysteresis",
    thresholds: Sequence[float] = THRESHOLD_GRID,
    progress: Progress | None = None,
    split: str | None = None,
) -> tuple[list[tuple[DecoderConfig, dict[str, float]]], dict[str, str]]:
    """Run the model over every recording of ``root`` (or of its ``split``) once, then :func:`tune_thresholds`.

    Returns the trials and the recordings that could not be used (id → error line), as :func:`evaluate`.
    """
    frames, references, failed = [], [], {}
    recordings = find_labelled_recordings(root, split)
    for recording in recordings:
        try:
            references.append(_reference(recording, audio_duration_s(recording.wav)))
            frames.append(run.frames(recording.wav, progress, recording.id))
        except AmtError as error:
            references = references[: len(frames)]
            failed[recording.id] = _named(error, recording)
    if not frames:
        raise AmtError(f"no recording could be used; the first: {next(iter(failed.values()))}")
    return tune_thresholds(frames, references, decoder, run.config, thresholds), failed


# --- reports -------------------------------------------------------------------------------------

COLUMNS: tuple[tuple[str, str, Callable[[object], str]], ...] = (
    ("frame P", "frame_precision", "{:.3f}".format),
    ("frame R", "frame_recall", "{:.3f}".format),
    ("frame F1", "frame_f1", "{:.3f}".format),
    ("AP", "average_precision", "{:.3f}".format),
    ("note P", "note_precision", "{:.3f}".format),
    ("note R", "note_recall", "{:.3f}".format),
    ("note F1", "note_f1", "{:.3f}".format),
    ("+offset F1", "note_offset_f1", "{:.3f}".format),
    ("+velocity F1", "note_velocity_f1", "{:.3f}".format),
    ("re-attacks/note", "reattacks_per_note", "{:.3f}".format),
    ("notes ref/pred", "", str),
)


def _cells(row: dict) -> list[str]:
    cells = []
    for _, key, fmt in COLUMNS:
        if not key:
            cells.append(f"{row['reference_notes']}/{row['predicted_notes']}")
        else:
            cells.append("-" if row.get(key) is None else fmt(row[key]))
    return cells


def results_table(results: dict, per_recording: bool = False) -> Table:
    """The systems' pooled metrics (and, with ``per_recording``, every recording's) as a rich table."""
    settings = results["settings"]
    table = Table(
        title=f"{settings['recordings']} recordings in {settings['root']} (hop {settings['hop']}; "
        f"notes: onset ±{settings['onset_tolerance_s'] * 1000:.0f} ms, offsets ±{settings['offset_ratio']:.0%})"
    )
    table.add_column("system")
    table.add_column("recording")
    for title, _, _ in COLUMNS:
        table.add_column(title, justify="right")
    for name, rows in results["systems"].items():
        shown = list(rows) if per_recording else [POOLED]
        for rid in shown:
            table.add_row(name, rid, *_cells(rows[rid]), end_section=rid == POOLED)
    return table


def diagnostics_table(system: str, table: dict) -> Table:
    """One system's diagnostics (:func:`amt.diagnostics.metrics`): a row per attribute bin."""
    out = Table(
        title=f"{system}: onset-only note F1 by attribute (recall over reference notes, precision over predicted)"
    )
    for column in ("attribute", "bin", "reference notes", "recall", "predicted notes", "precision", "F1"):
        out.add_column(column, justify="left" if column in ("attribute", "bin") else "right")
    for attribute, bins in table.items():
        for i, (label, cell) in enumerate(bins.items()):
            numbers = [cell["recall"], cell["predicted_notes"], cell["precision"], cell["f1"]]
            out.add_row(
                attribute if i == 0 else "",
                label,
                str(cell["reference_notes"]),
                *(f"{v:.3f}" if isinstance(v, float) else "–" if v is None else str(v) for v in numbers),
                end_section=i == len(bins) - 1,
            )
    return out


def endings_table(title: str, table: dict) -> Table:
    """Every system's endings (:func:`amt.diagnostics.ending_metrics`): a row per system and bin."""
    out = Table(title=f"{title}: where the notes with a matched onset end (offset tolerance as mir_eval's)")
    for column in ("system", "key-up", "onset-matched notes", "offset on time", "early", "late", "median error"):
        out.add_column(column, justify="left" if column in ("system", "key-up") else "right")
    for system, bins in table.items():
        for i, (label, cell) in enumerate(bins.items()):
            shares = (f"{cell[key]:.3f}" for key in ("on_time", "early", "late"))
            out.add_row(
                system if i == 0 else "",
                label,
                str(cell["matched_notes"]),
                *shares,
                f"{cell['median_error_ms']:+.0f} ms",
                end_section=i == len(bins) - 1,
            )
    return out


def false_alarms_table(title: str, table: dict) -> Table:
    """Every system's false alarms (:func:`amt.diagnostics.false_alarm_metrics`): a row per system."""
    kinds = list(next(iter(table.values()), {}))
    out = Table(title=f"{title}: predicted notes that match none, by the reference notes struck within 50 ms")
    out.add_column("system")
    out.add_column("false alarms", justify="right")
    for kind in kinds:
        out.add_column(kind, justify="right")
    for system, cells in table.items():
        everything = sum(cell["notes"] for cell in cells.values())
        out.add_row(system, str(everything), *(f"{cells[kind]['share']:.3f}" for kind in kinds))
    return out


def tuning_table(trials: Sequence[tuple[DecoderConfig, dict]], decoder: str, title: str, top: int = 10) -> Table:
    """The ``top`` trials of :func:`tune_thresholds` as a rich table."""
    names = TUNED[decoder]
    columns = {"note F1": "note_f1", "note P": "note_precision", "note R": "note_recall"}
    columns |= {"+offset F1": "note_offset_f1", "frame F1": "frame_f1", "re-attacks/note": "reattacks_per_note"}
    table = Table(title=f"{title} (best {min(top, len(trials))} of {len(trials)})")
    for column in (*names, "offset_threshold" if decoder == "onsets" else "", *columns):
        if column:
            table.add_column(column, justify="right")
    for config, metrics in trials[:top]:
        ending = [f"{config.offset_threshold:.2f}" if config.end_at_offsets else "none"] if decoder == "onsets" else []
        table.add_row(
            *(f"{getattr(config, n):.2f}" for n in names), *ending, *(f"{metrics[k]:.3f}" for k in columns.values())
        )
    return table


def trial_records(trials: Sequence[tuple[DecoderConfig, dict]]) -> list[dict]:
    """Each trial's decoder settings and pooled metrics in one flat dict, for JSON."""
    return [{**asdict(config), **metrics} for config, metrics in trials]


def write_csv(results: dict, path: str | os.PathLike) -> None:
    """One row per (system, recording), the pooled rows included."""
    rows = [
        {"system": name, "recording": rid, **row}
        for name, table in results["systems"].items()
        for rid, row in table.items()
    ]
    columns = list(dict.fromkeys(key for row in rows for key in row))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, ".csv", write)
