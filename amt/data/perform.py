"""One recording's music: a corpus score → an excerpt → an arrangement → a human-like performance.

- **Scores** are parsed with music21 into parallel arrays (ties merged, grace notes dropped),
  with bars, metronome marks, dynamics, staccato and fermatas.
- **Excerpts** are whole bars; a piece shorter than the excerpt is looped (a chorale's next verse).
- **Arrangement** for a MusicNet ensemble: parts, ranked high to low, go to the players, and each
  part is octave-shifted into its instrument's range (and the 81-note label space).
- **Performance**: tempo drift, breaths at phrase ends, held fermatas, a final ritardando;
  velocity per phrase (following the score's marks) with an arch, melody/bass balance, downbeat
  accents and jitter; onset jitter of a few ms; legato/detached/staccato articulation; sustain
  pedal on the piano. Labels are the *played* notes, key down → key up (not the pedal-extended
  sound), as in MusicNet.

Label conventions (MusicNet's): ``instrument`` is the General MIDI program numbered from 1 (piano 1,
harpsichord 7, violin 41, viola 42, cello 43, horn 61, oboe 69, bassoon 71, clarinet 72, flute 74);
``start_beat`` is the note's position in the score and ``end_beat`` its notated length, both in
quarter notes (MusicNet's ``end_beat`` column holds the length, despite its name); ``note_value``
names the notated value ("Dotted Quarter", "Triplet" for a triplet eighth, "Tied Half-Eighth").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from amt.data.render import Room, Track
from amt.errors import AmtError
from amt.grid import SAMPLE_RATE
from amt.labels import REPORT_NOTES, MusicNetLabels

# --- instruments and ensembles -----------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """A General MIDI instrument and its practical range (sounding MIDI pitches)."""

    name: str
    program: int  # General MIDI program, 0-based as MIDI and FluidSynth number them
    low: int
    high: int
    timbre: str  # the harmonic fallback's family (amt.data.render.TIMBRES)

    @property
    def musicnet_id(self) -> int:
        """MusicNet's ``instrument`` column: the General MIDI program numbered from 1."""
        return self.program + 1


INSTRUMENTS = {
    i.name: i
    for i in (
        Instrument("piano", 0, 21, 108, "piano"),
        Instrument("harpsichord", 6, 29, 89, "harpsichord"),
        Instrument("violin", 40, 55, 100, "bowed"),
        Instrument("viola", 41, 48, 88, "bowed"),
        Instrument("cello", 42, 36, 81, "bowed"),
        Instrument("horn", 60, 34, 77, "brass"),
        Instrument("oboe", 68, 58, 91, "double_reed"),
        Instrument("bassoon", 70, 34, 75, "double_reed"),
        Instrument("clarinet", 71, 50, 91, "clarinet"),
        Instrument("flute", 73, 60, 96, "flute"),
    )
}


@dataclass(frozen=True)
class Ensemble:
    """Melodic ``players`` (highest first), each taking one part, and a keyboard taking the rest."""

    players: tuple[str, ...]
    keyboard: str | None = None

    @property
    def min_parts(self) -> int:
        """Parts a score needs: a keyboard beside soloists gets at least two of them."""
        if self.keyboard is None:
            return 2
        return len(self.players) + 2 if self.players else 1


ENSEMBLES = {
    "solo_piano": Ensemble((), "piano"),
    "string_quartet": Ensemble(("violin", "violin", "viola", "cello")),
    "piano_trio": Ensemble(("violin", "cello"), "piano"),
    "piano_quartet": Ensemble(("violin", "viola", "cello"), "piano"),
    "accompanied_violin": Ensemble(("violin",), "piano"),
    "accompanied_cello": Ensemble(("cello",), "piano"),
    "accompanied_clarinet": Ensemble(("clarinet",), "piano"),
    "accompanied_flute": Ensemble(("flute",), "piano"),
    "violin_harpsichord": Ensemble(("violin",), "harpsichord"),
    "wind_quintet": Ensemble(("flute", "oboe", "clarinet", "horn", "bassoon")),
}


def corpus_folder() -> Path:
    """music21's bundled corpus, where every piece path of the synth corpus is relative to."""
    from music21 import common

    return Path(common.getCorpusFilePath())


# --- scores ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notes:
    """Notes as parallel arrays; times in quarter notes (of the score, or of an excerpt)."""

    part: np.ndarray
    pitch: np.ndarray
    onset: np.ndarray
    length: np.ndarray
    score_onset: np.ndarray  # position in the score, kept through excerpting (the csv's start_beat)
    staccato: np.ndarray
    fermata: np.ndarray
    dynamic: np.ndarray  # the score's dynamic level in force (0..1), NaN where it gives none
    value: np.ndarray  # note value names (object)

    def __len__(self) -> int:
        return len(self.pitch)

    def take(self, index) -> Notes:
        return Notes(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concatenate(cls, pieces: Sequence[Notes]) -> Notes:
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in pieces]) for f in fields(cls)})


@dataclass(frozen=True)
class Score:
    notes: Notes
    bars: np.ndarray  # bar starts in quarter notes, then the score's end
    tempi: tuple[tuple[float, float], ...]  # (offset, quarter-note bpm) of metronome marks

    def tempo_at(self, offset: float) -> float | None:
        """The quarter-note tempo of the last metronome mark at or before ``offset``, if any."""
        marks = [bpm for at, bpm in self.tempi if at <= offset]
        return marks[-1] if marks else None


TYPE_NAMES = {
    "breve": "Breve",
    "whole": "Whole",
    "half": "Half",
    "quarter": "Quarter",
    "eighth": "Eighth",
    "16th": "Sixteenth",
    "32nd": "Thirty Second",
    "64th": "Sixty Fourth",
}
DYNAMIC_MARKS = ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff")


def note_value(duration) -> str:
    """MusicNet's name for a music21 duration: "Dotted Quarter", "Triplet" (eighth), "Unknown"."""
    name = TYPE_NAMES.get(duration.type)
    if name is None or duration.dots > 1:
        return "Unknown"
    if duration.dots == 1:
        name = f"Dotted {name}"
    if not duration.tuplets:
        return name
    tuplet = duration.tuplets[0]
    if len(duration.tuplets) > 1 or (tuplet.numberNotesActual, tuplet.numberNotesNormal) != (3, 2):
        return "Unknown"
    return "Triplet" if name == "Eighth" else f"Triplet {name}"


def _part_rows(flat, part: int) -> list[list]:
    """``[part, pitch, onset, end, staccato, fermata, [values]]`` per sounding note; ties merged."""
    from music21 import articulations, expressions

    rows, tied = [], {}
    for element in flat.notes:
        if element.duration.isGrace or element.quarterLength == 0:
            continue
        onset = float(element.offset)
        end, value = onset + float(element.quarterLength), note_value(element.duration)
        staccato = any(
            isinstance(a, (articulations.Staccato, articulations.Staccatissimo)) for a in element.articulations
        )
        fermata = any(isinstance(e, expressions.Fermata) for e in element.expressions)
        for sounding in element.notes if element.isChord else [element]:
            if getattr(sounding, "pitch", None) is None:
                continue
            midi, tie = sounding.pitch.midi, sounding.tie or element.tie
            kind = tie.type if tie is not None else None
            if kind in ("continue", "stop") and midi in tied:
                row = tied[midi]
                row[3], row[5] = max(row[3], end), row[5] or fermata
                row[6].append(value)
                if kind == "stop":
                    del tied[midi]
                continue
            row = [part, midi, onset, end, staccato, fermata, [value]]
            rows.append(row)
            if kind == "start":
                tied[midi] = row
            else:
                tied.pop(midi, None)
    return rows


def _dynamic_levels(flat, rows: list[list]) -> list[float]:
    """The dynamic mark in force at each row's onset (music21's volume scalar), NaN before any."""
    from music21 import dynamics

    marks = [
        (float(d.offset), d.volumeScalar) for d in flat.getElementsByClass(dynamics.Dynamic) if d.value in DYNAMIC_MARKS
    ]
    if not marks:
        return [math.nan] * len(rows)
    offsets, levels = zip(*sorted(marks), strict=True)
    index = np.searchsorted(offsets, [row[2] for row in rows], side="right") - 1
    return [levels[i] if i >= 0 else math.nan for i in index]


def _bars(part, end: float) -> np.ndarray:
    """Bar starts of a part (quarter notes) and the score's end; a 4-beat grid when it has no bars."""
    starts = sorted({float(m.offset) for m in part.getElementsByClass("Measure")})
    if len(starts) < 2:
        starts = list(np.arange(0.0, end, 4.0))
    return np.array([s for s in starts if s < end] + [end])


@lru_cache(maxsize=8)
def load_score(piece: str, voices: tuple[str, ...] = ()) -> Score:
    """Parse a corpus score into :class:`Notes`, bars and tempo marks (music21 is slow: cached)."""
    from music21 import converter, tempo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = converter.parse(corpus_folder() / piece, forceSource=True)
    parts = list(getattr(parsed, "parts", []))
    named = [p for p in parts if p.partName in voices]
    parts = named if len(named) >= 2 else parts
    rows, levels = [], []
    for index, part in enumerate(parts):
        flat = part.flatten()
        part_rows = _part_rows(flat, index)
        rows += part_rows
        levels += _dynamic_levels(flat, part_rows)
    if not rows:
        raise AmtError(f"{corpus_folder() / piece}: no notes in this score")
    end = max(row[3] for row in rows)
    marks = parts[0].flatten().getElementsByClass(tempo.MetronomeMark)
    tempi = tuple(sorted((float(m.offset), float(m.getQuarterBPM())) for m in marks if m.getQuarterBPM()))
    onsets = np.array([row[2] for row in rows])
    notes = Notes(
        part=np.array([row[0] for row in rows]),
        pitch=np.array([row[1] for row in rows]),
        onset=onsets,
        length=np.array([row[3] - row[2] for row in rows]),
        score_onset=onsets,
        staccato=np.array([row[4] for row in rows]),
        fermata=np.array([row[5] for row in rows]),
        dynamic=np.array(levels, dtype=np.float64),
        value=np.array([row[6][0] if len(row[6]) == 1 else "Tied " + "-".join(row[6]) for row in rows], dtype=object),
    )
    return Score(notes, _bars(parts[0], end), tempi)


# --- excerpts and arrangement ----------------------------------------------------------------------


@dataclass(frozen=True)
class Excerpt:
    notes: Notes  # onsets in quarter notes from the excerpt's start
    bars: np.ndarray  # bar starts in the excerpt, then its end
    spans: tuple[tuple[float, float], ...]  # the score's (from, to) quarter notes played, in order


def start_bar(score: Score, excerpt: int, excerpts: int, beats_needed: float, rng: np.random.Generator) -> int:
    """A bar holding notes, in the ``excerpt``-th of ``excerpts`` stretches of the piece."""
    bars = score.bars
    latest = int(np.searchsorted(bars, bars[-1] - beats_needed, side="right")) - 1
    if excerpts > 1 and latest < excerpts:
        latest = len(bars) - 1  # too short for distinct excerpts: start anywhere, the excerpt loops
    latest = max(latest, 0)
    lo = latest * excerpt // excerpts
    hi = max(lo + 1, latest * (excerpt + 1) // excerpts)
    bar = int(rng.integers(lo, hi))
    with_notes = np.unique(np.searchsorted(bars, score.notes.onset, side="right") - 1)
    later = with_notes[with_notes >= bar]
    return int(later[0]) if len(later) else int(with_notes[0])


def cut_excerpt(score: Score, first_bar: int, beats: float) -> Excerpt:
    """Whole bars from ``first_bar``, as close to ``beats`` quarter notes as bars allow (at least one),
    looping past the score's end."""
    bars, n_bars = score.bars, len(score.bars) - 1
    spans, bar, start, played = [], first_bar, float(bars[first_bar]), 0.0
    while played == 0 or played + (bars[bar + 1] - bars[bar]) / 2 < beats:
        played += bars[bar + 1] - bars[bar]
        bar += 1
        if bar == n_bars:  # the piece ends: play it again from the top, like a chorale's next verse
            spans.append((start, float(bars[-1])))
            bar, start = 0, float(bars[0])
    if bars[bar] > start:
        spans.append((start, float(bars[bar])))
    pieces, bar_starts, cursor = [], [], 0.0
    for a, b in spans:
        notes = score.notes.take((score.notes.onset >= a) & (score.notes.onset < b))
        pieces.append(replace(notes, onset=notes.onset - a + cursor, length=np.minimum(notes.length, b - notes.onset)))
        bar_starts.append(bars[(bars >= a) & (bars < b)] - a + cursor)
        cursor += b - a
    return Excerpt(Notes.concatenate(pieces), np.concatenate(bar_starts + [[cursor]]), tuple(spans))


def choose_ensemble(weights: Sequence[tuple[str, float]], parts: int, rng: np.random.Generator) -> str:
    """An ensemble, drawn by weight among those the excerpt has enough parts for."""
    options = [(name, w) for name, w in weights if ENSEMBLES[name].min_parts <= parts]
    if not options:
        options = [("solo_piano", 1.0)]
    weights = np.array([w for _, w in options])
    return options[int(rng.choice(len(options), p=weights / weights.sum()))][0]


def _spread(k: int, n: int) -> list[int]:
    """``k`` distinct indices spread over ``range(n)``, both ends included (k <= n), rounding down.

    Rounding down keeps the upper players: a wind quintet on four parts leaves out the horn, and a
    string quartet on three parts becomes a trio-sonata group, two violins and cello.
    """
    return [0] if k == 1 else [j * (n - 1) // (k - 1) for j in range(k)]


def assign_parts(ranked: list[int], ensemble: Ensemble) -> list[tuple[str, list[int]]]:
    """``(instrument, parts)`` per player; ``ranked`` are the excerpt's parts, highest first.

    Soloists beside a keyboard take the top part (and the bass, …); the keyboard takes the rest.
    Without a keyboard, extra parts are shared out in order, and with fewer parts than players
    the players used are spread over the ensemble (see :func:`_spread`).
    """
    players, n = list(ensemble.players), len(ranked)
    if ensemble.keyboard is not None:
        taken = [ranked[i] for i in _spread(len(players), n)] if players else []
        rest = [p for p in ranked if p not in taken]
        return [(name, [part]) for name, part in zip(players, taken, strict=True)] + [(ensemble.keyboard, rest)]
    if n >= len(players):
        return [(name, [ranked[i] for i in range(n) if i * len(players) // n == j]) for j, name in enumerate(players)]
    return [(players[j], [ranked[i]]) for i, j in enumerate(_spread(n, len(players)))]


def fit_range(pitches: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Octave-shift a part to keep most notes in range (the smallest shift wins ties), then fold the rest in."""
    low, high = max(instrument.low, REPORT_NOTES.lowest), min(instrument.high, REPORT_NOTES.highest)
    shifts = 12 * np.arange(-4, 5)
    inside = [np.count_nonzero((pitches + s >= low) & (pitches + s <= high)) for s in shifts]
    best = max(range(len(shifts)), key=lambda i: (inside[i], -abs(shifts[i])))
    shifted = pitches + shifts[best]
    shifted = np.where(shifted < low, shifted + 12 * np.ceil((low - shifted) / 12), shifted)
    shifted = np.where(shifted > high, shifted - 12 * np.ceil((shifted - high) / 12), shifted)
    return shifted.astype(np.int64)


@dataclass(frozen=True)
class Player:
    instrument: Instrument
    notes: Notes  # pitches already fitted to the instrument's range
    ranks: np.ndarray  # rank of each note's part in the excerpt (0 = top part)


def arrange(excerpt: Excerpt, ensemble: Ensemble) -> list[Player]:
    """Rank the excerpt's parts by mean pitch, give them to the players, fit each part to its instrument."""
    notes = excerpt.notes
    parts = np.unique(notes.part)
    means = [notes.pitch[notes.part == p].mean() for p in parts]
    ranked = [int(p) for _, p in sorted(zip(means, parts, strict=True), key=lambda mp: (-mp[0], mp[1]))]
    rank_of = {part: rank for rank, part in enumerate(ranked)}
    players = []
    for name, owned in assign_parts(ranked, ensemble):
        instrument = INSTRUMENTS[name]
        mine = notes.take(np.isin(notes.part, owned))
        pitch = mine.pitch.copy()
        for part in owned:
            pitch[mine.part == part] = fit_range(mine.pitch[mine.part == part], instrument)
        players.append(
            Player(
                instrument, replace(mine, pitch=pitch), np.array([rank_of[int(p)] for p in mine.part], dtype=np.int64)
            )
        )
    return [p for p in players if len(p.notes)]


# --- performance ------------------------------------------------------------------------------------

TEMPO_STEP = 0.125
"""Quarter notes per cell of the tempo map (tempo is constant within a cell)."""
LEAD_IN_S = (0.3, 1.0)
TAIL_S = 1.8
"""Audio kept after the last sound stops (release and reverb)."""
PERFORMED_STRETCH = 1.1
"""How much longer a performance runs than its tempo implies (drift, breaths, fermatas, ritardando)."""
MIN_NOTE_S = 0.05
CHORD_S = 0.03
"""Two notes of one player on one key this close together are one key press."""
REPEAT_GAP_S = 0.01
"""A key comes up at least this long before it is struck again."""


@dataclass(frozen=True)
class Style:
    """A performer's choices for one recording, per phrase where musicians vary them."""

    level: np.ndarray  # velocity around which each phrase is played
    arch: np.ndarray  # crescendo-diminuendo depth of each phrase
    legato: np.ndarray  # sounding share of each note's notated length, per phrase
    detached: np.ndarray  # phrases with short notes played detached
    jitter_s: float
    pedal: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, phrases: int) -> Style:
        return cls(
            level=rng.uniform(55, 90) + rng.normal(0, 8, phrases),
            arch=rng.uniform(0, 12, phrases),
            legato=rng.uniform(0.75, 0.98, phrases),
            detached=rng.random(phrases) < 0.15,
            jitter_s=float(rng.uniform(0.004, 0.010)),
            pedal=bool(rng.random() < 0.6),
        )


def phrase_starts(excerpt: Excerpt, rng: np.random.Generator) -> np.ndarray:
    """Phrases: groups of two to four bars, and a new phrase after every fermata."""
    bars, end = excerpt.bars[:-1], excerpt.bars[-1]
    starts, i = [], 0
    while i < len(bars):
        starts.append(bars[i])
        i += int(rng.integers(2, 5))
    notes = excerpt.notes
    after_fermatas = notes.onset[notes.fermata] + notes.length[notes.fermata]
    starts = np.unique(np.concatenate([[0.0], starts, after_fermatas]))
    return starts[starts < end]


class Clock:
    """Music time (quarter notes from 0 to ``end``) → seconds: tempo drift, breaths at phrase ends,
    held notes (fermatas, ``held`` as ``(onset, length)`` pairs) and a final ritardando."""

    def __init__(
        self,
        end: float,
        bpm: float,
        phrase_ends: np.ndarray,
        rng: np.random.Generator,
        held: Sequence[tuple[float, float]] = (),
    ):
        cells = max(1, math.ceil(end / TEMPO_STEP))
        self.grid = np.arange(cells + 1) * TEMPO_STEP
        centre = self.grid[:-1] + TEMPO_STEP / 2
        spb = np.full(cells, 60.0 / bpm)
        for depth, period in (
            (rng.uniform(0.02, 0.06), rng.uniform(12, 32)),
            (rng.uniform(0, 0.03), rng.uniform(3, 8)),
        ):
            spb *= 1 + depth * np.sin(2 * np.pi * centre / period + rng.uniform(0, 2 * np.pi))
        for phrase_end in phrase_ends:
            spb[(centre > phrase_end - 1) & (centre < phrase_end)] *= rng.uniform(1.0, 1.12)
        holding = np.zeros(cells, dtype=bool)
        for onset, length in held:
            holding |= (centre >= onset) & (centre < onset + length)
        spb[holding] *= rng.uniform(1.4, 2.0)
        slowing = min(4.0, end / 4)
        spb *= 1 + np.clip((centre - (end - slowing)) / slowing, 0, 1) * rng.uniform(0.1, 0.35)
        self.times = np.concatenate([[0.0], np.cumsum(spb * TEMPO_STEP)])

    def __call__(self, beats: np.ndarray) -> np.ndarray:
        return np.interp(beats, self.grid, self.times)


def velocities(
    player: Player,
    phrase: np.ndarray,
    position: np.ndarray,
    style: Style,
    excerpt: Excerpt,
    parts: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Phrase level and arch, the score's marks, the melody and bass a little louder, downbeat accents, jitter."""
    notes = player.notes
    velocity = style.level[phrase] + style.arch[phrase] * (np.sin(np.pi * position) - 0.5)
    marked = ~np.isnan(notes.dynamic)
    velocity[marked] = 0.5 * velocity[marked] + 0.5 * (30 + 80 * notes.dynamic[marked])
    if parts > 1:
        velocity += np.where(player.ranks == 0, 5, np.where(player.ranks == parts - 1, 2, -3))
    velocity += 4 * np.isin(notes.onset, excerpt.bars)
    velocity += rng.normal(0, 5, len(notes))
    return np.clip(np.round(velocity), 20, 120)


def articulation(notes: Notes, phrase: np.ndarray, style: Style, end: float, rng: np.random.Generator) -> np.ndarray:
    """Sounding share of each note's notated length: phrase legato, detached phrases, staccato, fermatas held."""
    ratio = style.legato[phrase].copy()
    detached = style.detached[phrase] & (notes.length <= 1)
    ratio[detached] = rng.uniform(0.45, 0.7, np.count_nonzero(detached))
    ratio[notes.staccato] = rng.uniform(0.3, 0.5, np.count_nonzero(notes.staccato))
    ratio[notes.fermata | (notes.onset + notes.length >= end)] = 1.0
    return ratio * rng.uniform(0.95, 1.05, len(notes))


def separate_repeats(pitch: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """One player cannot sound one key twice: merge notes struck together, lift a key before it is restruck.

    Shortens ``end`` in place; returns which notes remain.
    """
    keep = np.ones(len(pitch), dtype=bool)
    previous = None
    for i in np.lexsort((start, pitch)):
        if previous is not None and pitch[i] == pitch[previous]:
            if start[i] - start[previous] < CHORD_S:
                end[previous], keep[i] = max(end[previous], end[i]), False
                continue
            end[previous] = max(start[previous] + MIN_NOTE_S / 2, min(end[previous], start[i] - REPEAT_GAP_S))
        previous = i
    return keep


def pedal_changes(bars: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where a pianist changes the pedal in a score: as each bar (or, in long bars, half bar) begins."""
    changes = bars[:-1]
    if rng.random() < 0.5:
        long_bars = np.diff(bars) >= 4
        changes = np.sort(np.concatenate([changes, (bars[:-1] + np.diff(bars) / 2)[long_bars]]))
    return changes


def pedal_intervals(times: np.ndarray, last_up: float, rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
    """Legato pedalling on changes at ``times`` (seconds): lift as the change comes, press again just
    after the new notes; the last release follows the last key-up ``last_up``."""
    downs = times + rng.uniform(0.04, 0.12, len(times))
    ups = np.append(times[1:] + rng.uniform(-0.02, 0.03, len(times) - 1), last_up + rng.uniform(0.2, 0.8))
    return tuple((float(d), float(u)) for d, u in zip(downs, ups, strict=True) if u > d + 0.05)


@dataclass(frozen=True)
class Performance:
    tracks: list[Track]
    labels: MusicNetLabels
    n_samples: int
    room: Room
    peak: float  # the recording's peak level after normalising


def perform(excerpt: Excerpt, players: list[Player], bpm: float, rng: np.random.Generator) -> Performance:
    """Play the arranged excerpt: key-down/up times, velocities, pedal; labels are the keys held."""
    end = float(excerpt.bars[-1])
    starts = phrase_starts(excerpt, rng)
    ends = np.append(starts[1:], end)
    score = excerpt.notes
    clock = Clock(
        end, bpm, ends, rng, held=list(zip(score.onset[score.fermata], score.length[score.fermata], strict=True))
    )
    style = Style.draw(rng, len(starts))
    lead_in = rng.uniform(*LEAD_IN_S)
    parts = len(np.unique(excerpt.notes.part))
    tracks, rows, last_sound = [], [], 0.0
    for player in players:
        notes = player.notes
        phrase = np.searchsorted(starts, notes.onset, side="right") - 1
        position = (notes.onset - starts[phrase]) / (ends[phrase] - starts[phrase])
        velocity = velocities(player, phrase, position, style, excerpt, parts, rng)
        jitter = np.clip(rng.normal(0, style.jitter_s, len(notes)), -3 * style.jitter_s, 3 * style.jitter_s)
        start = clock(notes.onset) + lead_in + rng.normal(0, 0.005) + jitter
        notated = clock(notes.onset + notes.length) - clock(notes.onset)
        stop = start + np.maximum(MIN_NOTE_S, notated * articulation(notes, phrase, style, end, rng))
        keep = separate_repeats(notes.pitch, start, stop)
        pedal = ()
        if style.pedal and player.instrument.timbre == "piano":
            changes = clock(pedal_changes(excerpt.bars, rng)) + lead_in
            pedal = pedal_intervals(changes, float(stop.max()), rng)
        kept = np.flatnonzero(keep)
        tracks.append(
            Track(
                program=player.instrument.program,
                timbre=player.instrument.timbre,
                notes=np.column_stack([start[kept], stop[kept], notes.pitch[kept], velocity[kept]]),
                pedal=pedal,
            )
        )
        rows += [
            (
                round(start[i] * SAMPLE_RATE),
                round(stop[i] * SAMPLE_RATE),
                player.instrument.musicnet_id,
                int(notes.pitch[i]),
                float(notes.score_onset[i]),
                float(notes.length[i]),
                notes.value[i],
            )
            for i in kept
        ]
        last_sound = max(last_sound, float(stop.max()), *(up for _, up in pedal))
    room = Room.draw(rng)
    n_samples = round((last_sound + TAIL_S) * SAMPLE_RATE)
    return Performance(tracks, MusicNetLabels.from_rows(rows), n_samples, room, float(rng.uniform(0.5, 0.95)))
