"""Folk tunes from music21's corpus, harmonised and accompanied on the piano.

music21 holds about 12,700 folk melodies in ABC (the Essen collection, O'Neill's 1850 collection,
Aird's airs, Ryan's Mammoth collection) and no accompaniment for any of them. Here a tune is
harmonised (a chord per span, chosen by how much of the melody it holds, how naturally it follows
the previous chord in common-practice harmony, and a cadence at the end), transposed, repeated to
the recording's length, and played with a left-hand texture of :mod:`amt.data.piano` under it,
sometimes doubled in thirds or octaves, then performed as the procedural pieces are.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np

from amt.data.perform import LEAD_IN_S, PERFORMED_STRETCH, TAIL_S, Performance, corpus_folder
from amt.data.piano import (
    HARMONIC_MINOR,
    HIGHEST_KEY,
    KEYBOARD_PROGRAMS,
    LEFT_HAND,
    LOWEST_KEY,
    MAJOR,
    NEXT_DEGREE,
    Chord,
    Piece,
    keys_of,
    play,
)
from amt.errors import AmtError

FOLK_LEFT_HANDS = {"block": 0.25, "alberti": 0.2, "broken": 0.25, "held": 0.15, "octaves": 0.05, "stride": 0.1}
"""Left-hand textures under a folk tune, and how often each is drawn (per four-bar phrase)."""
COLLECTIONS = ("essenFolksong/*.abc", "oneills1850/*.abc", "airdsAirs/*.abc", "ryansMammoth/*.abc")
TUNE_NUMBER = re.compile(r"^X:\s*(\d+)", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def folk_tunes() -> list[str]:
    """Every tune of the collections as ``PATH#NUMBER`` (corpus-relative path, its ``X:`` number)."""
    root = corpus_folder()
    tunes = []
    for pattern in COLLECTIONS:
        for path in sorted(root.glob(pattern)):
            numbers = TUNE_NUMBER.findall(path.read_text(errors="ignore"))
            tunes += [f"{path.relative_to(root).as_posix()}#{number}" for number in dict.fromkeys(numbers)]
    return tunes


def load_tune(tune: str) -> tuple[list[tuple[float, float, int]], float, int, bool]:
    """A tune's melody ``(onset beats, length beats, MIDI pitch)``, bar length in beats, tonic pitch class
    and whether it is minor."""
    from music21 import converter

    path, _, number = tune.partition("#")
    try:
        score = converter.parse(corpus_folder() / path, number=int(number))
    except Exception as error:  # music21 raises many kinds on a malformed tune
        raise AmtError(f"{tune}: music21 cannot read this tune ({error})") from None
    flat = score.flatten()
    melody = []
    for element in flat.notes:
        pitch = max(element.pitches, key=lambda p: p.midi).midi if element.isChord else element.pitch.midi
        if element.quarterLength > 0:
            melody.append((float(element.offset), float(element.quarterLength), int(pitch)))
    if len(melody) < 8:
        raise AmtError(f"{tune}: too short a tune to accompany ({len(melody)} notes)")
    signatures = flat.getElementsByClass("TimeSignature")
    bar = float(signatures[0].barDuration.quarterLength) if signatures else 4.0
    key = score.analyze("key")
    return melody, bar, int(key.tonic.pitchClass), key.mode == "minor"


def harmonise(melody: list[tuple[float, float, int]], end: float, span: float, tonic: int, minor: bool) -> list[Chord]:
    """A chord for every ``span`` beats: the triad (or dominant seventh) of the scale degree that holds
    the most of the melody sounding then, weighed by how naturally it follows the previous chord;
    the last two spans are V and I."""
    scale = HARMONIC_MINOR if minor else MAJOR
    triads = {degree: {(tonic + scale[(degree + 2 * k) % 7]) % 12 for k in range(3)} for degree in range(7)}
    follows = {d: dict(NEXT_DEGREE[d]) for d in NEXT_DEGREE}
    onsets = np.array([m[0] for m in melody])
    chords, degree = [], 0
    starts = np.arange(0.0, end - 1e-9, span)
    for i, start in enumerate(starts):
        sounding = [(min(o + length, start + span) - max(o, start), pitch % 12) for o, length, pitch in melody
                    if o < start + span and o + length > start]  # fmt: skip
        left = len(starts) - i
        if left <= 2:
            degree = 4 if left == 2 else 0
        else:
            fit = {
                d: sum(weight for weight, pc in sounding if pc in triads[d])
                + (0.5 if start in onsets and any(pc in triads[d] for _, pc in sounding[:1]) else 0)
                + 0.3 * math.log1p(follows[degree].get(d, 0))
                for d in range(7)
            }
            degree = max(fit, key=fit.get) if i else 0
        size = 4 if degree == 4 and left == 2 else 3
        tones = tuple((tonic + scale[(degree + 2 * k) % 7]) % 12 for k in range(size))
        chords.append(Chord(float(start), float(min(span, end - start)), tones, tones[0]))
    return chords


def compose_folk(tune: str, seconds: float, rng: np.random.Generator) -> Piece:
    """The tune, transposed and repeated to about ``seconds`` at its drawn tempo, harmonised and accompanied."""
    melody, bar, tonic, minor = load_tune(tune)
    length = max(bar, math.ceil(max(o + d for o, d, _ in melody) / bar) * bar)
    bpm = float(rng.uniform(70, 140))
    repeats = max(1, round(seconds * bpm / 60 / length))
    shift = int(rng.integers(-5, 6))
    centre = float(np.mean([p for _, _, p in melody])) + shift
    shift += int(round((rng.uniform(64, 80) - centre) / 12)) * 12  # the melody in the right hand's register
    tonic = (tonic + shift) % 12
    tune_notes = [(o + k * length, d, p + shift) for k in range(repeats) for o, d, p in melody]
    tune_notes = [(o, d, p) for o, d, p in tune_notes if LOWEST_KEY <= p <= HIGHEST_KEY]
    end = repeats * length
    span = bar if bar <= 3.0 or rng.random() < 0.5 else bar / 2
    chords = harmonise(tune_notes, end, span, tonic, minor)
    phrases = [(float(start), float(min(end, start + 4 * bar))) for start in np.arange(0.0, end, 4 * bar)]
    notes = [(o, d, p, "melody") for o, d, p in tune_notes]
    doubling = rng.choice(["none", "third", "octave"], p=[0.6, 0.25, 0.15])
    scale_keys = keys_of({(tonic + s) % 12 for s in (HARMONIC_MINOR if minor else MAJOR)}, LOWEST_KEY, HIGHEST_KEY)
    for onset, duration, pitch in tune_notes:
        if doubling == "octave" and pitch - 12 >= LOWEST_KEY:
            notes.append((onset, duration, pitch - 12, "inner"))
        elif doubling == "third" and len(below := scale_keys[(scale_keys < pitch - 2) & (scale_keys >= pitch - 4)]):
            notes.append((onset, duration, int(below[-1]), "inner"))
    textures = []
    left_centre = float(rng.uniform(40, 54))
    for start, stop in phrases:
        left = str(rng.choice(list(FOLK_LEFT_HANDS), p=list(FOLK_LEFT_HANDS.values())))
        function, pace = LEFT_HAND[left]
        value = float(rng.choice([0.5, 0.25])) if pace == "step" else 1.0
        for chord in chords:
            if start <= chord.start < stop:
                notes += function(chord, left_centre, value, rng)
        textures.append((left, f"folk melody{'' if doubling == 'none' else ' in ' + doubling + 's'}"))
    return Piece(notes, chords, phrases, bpm, end, textures, "folk")


def folk_performance(
    tune: str, duration_s: float, rng: np.random.Generator, evaluation: bool = False
) -> tuple[Performance, dict]:
    """A recording of about ``duration_s`` seconds of ``tune`` accompanied on the piano, and what it holds."""
    seconds = max(2.0, (duration_s - float(np.mean(LEAD_IN_S)) - TAIL_S) / PERFORMED_STRETCH)
    piece = compose_folk(tune, seconds, rng)
    performance = play(piece, rng, ((0, 1.0),) if evaluation else KEYBOARD_PROGRAMS)
    details = {
        "textures": [f"{left}+{right}" for left, right in piece.textures],
        "quarter_bpm": round(piece.bpm, 1),
        "program": int(performance.tracks[0].program),
        "pedal": bool(performance.tracks[0].pedal),
    }
    return performance, details
