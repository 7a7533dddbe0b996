"""Procedural piano performances: two hands over the whole keyboard, in the textures pianists play.

music21's corpus holds about ten piano pieces, and chorales and quartets played on a piano do not
sound like piano music: the gap between score-derived training data and real performances is mostly
musical content (dense chords, fast runs, the whole keyboard, pedal, dynamics). This module writes
and performs piano music of its own, one recording at a time, from a seeded generator:

- **Harmony** walks a common-practice chord progression (a Markov chain over scale degrees, major
  or harmonic minor, sevenths and inversions) and closes each phrase with a cadence, so chords sound
  like music rather than random clusters.
- **Textures**, chosen per phrase and hand: block chords (up to ten notes between the hands),
  Alberti, stride, broken-chord and octave basses, arpeggios, scale runs, a melody (sometimes in
  octaves or thirds), trills and repeated notes, at speeds from a slow chorale to virtuosic runs.
- **Performance**: the tempo map of :class:`amt.data.perform.Clock` (drift, breaths, ritardando),
  velocities 15–127 shaped by phrase, the melody louder and a little ahead of the accompaniment,
  legato or staccato phrases, and the sustain pedal changing with the harmony (CC64). Labels are the
  keys held down (key-down → key-up), as MusicNet and the evaluation sets give them.

Music is written in quarter notes (beats) first, then played into seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amt.data.perform import (
    INSTRUMENTS,
    LEAD_IN_S,
    MIN_NOTE_S,
    PERFORMED_STRETCH,
    TAIL_S,
    Clock,
    Performance,
    pedal_intervals,
    separate_repeats,
)
from amt.data.render import Room, Track
from amt.grid import SAMPLE_RATE
from amt.labels import MusicNetLabels

LOWEST_KEY, HIGHEST_KEY = 21, 108
"""A0 and C8: the piano's 88 keys."""

KEYBOARD_PROGRAMS = ((0, 0.55), (1, 0.15), (2, 0.06), (3, 0.06), (4, 0.06), (5, 0.06), (6, 0.03), (7, 0.03))
"""General MIDI keyboards (grand, bright grand, electric grand, honky-tonk, two electric pianos,
harpsichord, clavinet) and how often each plays a recording."""

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)

NEXT_DEGREE = {
    0: ((3, 3), (4, 3), (5, 2), (1, 2), (2, 1)),
    1: ((4, 4), (6, 1)),
    2: ((5, 2), (3, 2)),
    3: ((4, 3), (0, 2), (1, 2)),
    4: ((0, 4), (5, 1), (3, 1)),
    5: ((1, 2), (3, 2), (4, 1)),
    6: ((0, 1),),
}
"""Scale degree (0 = I) → the degrees that follow it in common-practice harmony, with weights."""


@dataclass(frozen=True)
class Chord:
    start: float  # beats
    length: float
    tones: tuple[int, ...]  # pitch classes, root first
    bass: int  # the pitch class in the bass (an inversion when not the root)


def _pick(options: tuple[tuple[int, float], ...], rng: np.random.Generator) -> int:
    values, weights = zip(*options, strict=True)
    return int(values[rng.choice(len(values), p=np.asarray(weights) / sum(weights))])


def progression(
    tonic: int, minor: bool, phrases: list[tuple[float, float]], rhythm: float, rng: np.random.Generator
) -> list[Chord]:
    """Chords of ``rhythm`` beats over each ``(start, end)`` phrase, ending on a V–I cadence."""
    scale = HARMONIC_MINOR if minor else MAJOR
    chords, degree = [], 0
    for start, end in phrases:
        times = np.arange(start, end - 1e-9, rhythm)
        for i, time in enumerate(times):
            left = len(times) - i
            degree = 4 if left == 2 else 0 if left == 1 else (0 if time == 0 else _pick(NEXT_DEGREE[degree], rng))
            size = 4 if (degree == 4 and rng.random() < 0.6) or rng.random() < 0.2 else 3
            tones = tuple((tonic + scale[(degree + 2 * k) % 7]) % 12 for k in range(size))
            bass = tones[int(rng.integers(1, 3))] if left > 1 and rng.random() < 0.25 else tones[0]
            chords.append(Chord(float(time), float(min(rhythm, end - time)), tones, bass))
    return chords


def keys_of(pitch_classes, low: int, high: int) -> np.ndarray:
    """Every key in ``low..high`` (clipped to the keyboard) whose pitch class is one of ``pitch_classes``."""
    keys = np.arange(max(low, LOWEST_KEY), min(high, HIGHEST_KEY) + 1)
    return keys[np.isin(keys % 12, list(pitch_classes))]


def nearest_key(pitch_class: int, target: float) -> int:
    key = int(round(target))
    key += (pitch_class - key) % 12
    key = key - 12 if key - target > 6 else key
    return int(np.clip(key, LOWEST_KEY + (pitch_class - LOWEST_KEY) % 12, HIGHEST_KEY))


Note = tuple[float, float, int, str]
"""``(onset beats, length beats, key, role)``; role is "melody", "bass" or "inner" (for the balance)."""


# --- the left hand -----------------------------------------------------------------------------------


def bass_block(chord: Chord, centre: float, beat: float, rng: np.random.Generator) -> list[Note]:
    """The bass note, then a close chord above it, struck together (on every beat when ``beat`` says so)."""
    bass = nearest_key(chord.bass, centre - 10)
    voicing = keys_of(chord.tones, bass + 3, bass + 16)[: int(rng.integers(2, 4))]
    notes = []
    for onset in np.arange(chord.start, chord.start + chord.length - 1e-9, beat):
        length = min(beat, chord.start + chord.length - onset)
        notes += [(onset, length, bass, "bass")] + [(onset, length, int(k), "inner") for k in voicing]
    return notes


def alberti(chord: Chord, centre: float, step: float, rng: np.random.Generator) -> list[Note]:
    """Low, high, middle, high: the classical broken-chord bass."""
    low = nearest_key(chord.bass, centre - 7)
    middle, high = (keys_of(chord.tones, low + 3, low + 12).tolist() + [low + 7, low + 12])[:2]
    pattern = (low, high, middle, high)
    times = np.arange(chord.start, chord.start + chord.length - 1e-9, step)
    return [(t, step, pattern[i % 4], "bass" if i % 4 == 0 else "inner") for i, t in enumerate(times)]


def stride(chord: Chord, centre: float, beat: float, rng: np.random.Generator) -> list[Note]:
    """A low bass (or octave) on the strong beats, a chord in the middle of the keyboard between them."""
    bass = nearest_key(chord.bass, centre - 16)
    voicing = keys_of(chord.tones, int(centre) - 2, int(centre) + 10)[:3]
    notes = []
    for i, onset in enumerate(np.arange(chord.start, chord.start + chord.length - 1e-9, beat)):
        if i % 2 == 0:
            notes.append((onset, beat * 0.9, bass, "bass"))
            if bass - 12 >= LOWEST_KEY and rng.random() < 0.5:
                notes.append((onset, beat * 0.9, bass - 12, "bass"))
        else:
            notes += [(onset, beat * 0.6, int(k), "inner") for k in voicing]
    return notes


def broken_chord(chord: Chord, centre: float, step: float, rng: np.random.Generator) -> list[Note]:
    """An arpeggio up from the bass (and back down) over one or two octaves."""
    bass = nearest_key(chord.bass, centre - 12)
    keys = keys_of(chord.tones, bass, bass + int(rng.choice([12, 19, 24]))).tolist()
    cycle = keys + keys[-2:0:-1] if rng.random() < 0.5 else keys
    times = np.arange(chord.start, chord.start + chord.length - 1e-9, step)
    return [(t, step, cycle[i % len(cycle)], "bass" if i == 0 else "inner") for i, t in enumerate(times)]


def bass_octaves(chord: Chord, centre: float, beat: float, rng: np.random.Generator) -> list[Note]:
    """Octaves in the bass, down to the keyboard's lowest notes, struck on every beat."""
    bass = nearest_key(chord.bass, centre - 18)
    lower = bass - 12 if bass - 12 >= LOWEST_KEY else bass
    times = np.arange(chord.start, chord.start + chord.length - 1e-9, beat)
    return [(t, beat, k, "bass") for t in times for k in {bass, lower}]


def held_bass(chord: Chord, centre: float, beat: float, rng: np.random.Generator) -> list[Note]:
    """The bass and its fifth, held for the chord."""
    bass = nearest_key(chord.bass, centre - 12)
    fifth = keys_of(chord.tones, bass + 5, bass + 9)[:1].tolist()
    return [(chord.start, chord.length, k, "bass") for k in [bass, *fifth]]


# --- the right hand ----------------------------------------------------------------------------------


@dataclass
class MelodyLine:
    """The right hand's melody line: where it is, so that phrases continue from one another."""

    key: int
    low: int
    high: int

    def step(self, scale_keys: np.ndarray, chord_keys: np.ndarray, strong: bool, rng: np.random.Generator) -> int:
        """The next melody note: mostly a step in the scale, a chord tone on strong beats, now and then a leap."""
        if strong and len(chord_keys):
            candidates = chord_keys[np.abs(chord_keys - self.key) <= 7]
        elif rng.random() < 0.15:
            candidates = scale_keys[(np.abs(scale_keys - self.key) >= 5) & (np.abs(scale_keys - self.key) <= 9)]
        else:
            candidates = scale_keys[(np.abs(scale_keys - self.key) >= 1) & (np.abs(scale_keys - self.key) <= 2)]
        candidates = candidates[(candidates >= self.low) & (candidates <= self.high)]
        if len(candidates):
            self.key = int(rng.choice(candidates))
        return self.key


def melody(chords: list[Chord], voice: MelodyLine, scale_keys: np.ndarray, values: tuple[float, ...], doubling: str,
           rng: np.random.Generator) -> list[Note]:  # fmt: skip
    """A melody in note values drawn from ``values``, doubled an octave or a third/sixth below when asked."""
    notes = []
    for chord in chords:
        time, end = chord.start, chord.start + chord.length
        chord_keys = keys_of(chord.tones, voice.low, voice.high)
        while time < end - 1e-9:
            length = min(float(rng.choice(values)), end - time)
            key = voice.step(scale_keys, chord_keys, strong=float(time).is_integer(), rng=rng)
            notes.append((time, length, key, "melody"))
            if doubling == "octave" and key - 12 >= LOWEST_KEY:
                notes.append((time, length, key - 12, "inner"))
            elif doubling == "third":
                below = scale_keys[(scale_keys < key - 2) & (scale_keys >= key - 9)]
                if len(below):
                    notes.append((time, length, int(below[-1 if rng.random() < 0.7 else 0]), "inner"))
            time += length
    return notes


def block_chords(chords: list[Chord], voice: MelodyLine, beat: float, rng: np.random.Generator) -> list[Note]:
    """Chords of three to five notes under the melody note, struck on every beat."""
    notes = []
    for chord in chords:
        chord_keys = keys_of(chord.tones, voice.low, voice.high)
        for onset in np.arange(chord.start, chord.start + chord.length - 1e-9, beat):
            top = voice.step(chord_keys, chord_keys, True, rng)
            under = keys_of(chord.tones, top - 14, top - 1)[::-1][: int(rng.integers(2, 5))]
            length = min(beat, chord.start + chord.length - onset)
            notes += [(onset, length, top, "melody")] + [(onset, length, int(k), "inner") for k in under]
    return notes


def runs(chords: list[Chord], voice: MelodyLine, scale_keys: np.ndarray, step: float, rng: np.random.Generator,
         span: tuple[int, int] = (LOWEST_KEY + 24, HIGHEST_KEY)) -> list[Note]:  # fmt: skip
    """Scale runs in even fast notes, turning at the ends of a span of one to three octaves."""
    keys = scale_keys[(scale_keys >= span[0]) & (scale_keys <= span[1])]
    position = int(np.searchsorted(keys, voice.key).clip(0, len(keys) - 1))
    direction, turns = (1 if rng.random() < 0.5 else -1), int(rng.integers(7, 22))
    notes, time, end, taken = [], chords[0].start, chords[-1].start + chords[-1].length, 0
    while time < end - 1e-9:
        notes.append((time, step, int(keys[position]), "melody"))
        taken += 1
        if taken % turns == 0 or not 0 <= position + direction < len(keys):
            direction = -direction
        position += direction
        time += step
    voice.key = int(keys[position])
    return notes


def arpeggios(chords: list[Chord], voice: MelodyLine, step: float, rng: np.random.Generator) -> list[Note]:
    """Chord-tone arpeggios sweeping two to four octaves, up and down."""
    notes = []
    for chord in chords:
        top = min(HIGHEST_KEY, voice.key + int(rng.choice([12, 24, 36])))
        keys = keys_of(chord.tones, max(LOWEST_KEY, top - 48), top)[-int(rng.integers(6, 14)) :].tolist()
        cycle = keys + keys[-2:0:-1]
        times = np.arange(chord.start, chord.start + chord.length - 1e-9, step)
        notes += [(t, step, cycle[i % len(cycle)], "melody" if i % len(cycle) == len(keys) - 1 else "inner")
                  for i, t in enumerate(times)]  # fmt: skip
    return notes


def trills(
    chords: list[Chord], voice: MelodyLine, scale_keys: np.ndarray, step: float, rng: np.random.Generator
) -> list[Note]:
    """A trill (the melody note and the scale step above, alternating) on each chord, then its resolution."""
    notes = []
    for chord in chords:
        key = voice.step(scale_keys, keys_of(chord.tones, voice.low, voice.high), True, rng)
        upper = scale_keys[scale_keys > key][:1]
        pair = (key, int(upper[0]) if len(upper) else key - 1)
        times = np.arange(chord.start, chord.start + chord.length * 0.75 - 1e-9, step)
        notes += [(t, step, pair[i % 2], "melody") for i, t in enumerate(times)]
        rest = chord.start + chord.length - (times[-1] + step if len(times) else chord.start)
        if rest > 1e-9:
            notes.append((chord.start + chord.length - rest, rest, key, "melody"))
    return notes


def repeated(chords: list[Chord], voice: MelodyLine, step: float, rng: np.random.Generator) -> list[Note]:
    """Repeated notes or repeated two- and three-note chords, as in toccatas and tremolo accompaniments."""
    notes = []
    for chord in chords:
        top = voice.step(
            keys_of(chord.tones, voice.low, voice.high), keys_of(chord.tones, voice.low, voice.high), True, rng
        )
        keys = [top, *keys_of(chord.tones, top - 9, top - 1)[::-1][: int(rng.integers(0, 3))].tolist()]
        for onset in np.arange(chord.start, chord.start + chord.length - 1e-9, step):
            notes += [(onset, step, k, "melody" if k == top else "inner") for k in keys]
    return notes


# --- a piece: phrases, textures, characters -------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    """How a piece moves: its tempo range (quarter notes a minute), note values and fast steps."""

    bpm: tuple[float, float]
    melody_values: tuple[float, ...]
    step: tuple[float, ...]  # the even note value of runs, arpeggios and broken chords
    harmonic_rhythm: tuple[float, ...]  # beats per chord


CHARACTERS = {
    "chorale": Character((48, 76), (1.0, 2.0, 1.0, 0.5), (1.0, 0.5), (1.0, 2.0)),
    "song": Character((60, 100), (1.0, 0.5, 1.5, 0.5, 2.0), (0.5, 0.25), (2.0, 4.0)),
    "classical": Character((90, 140), (0.5, 0.25, 1.0, 0.5), (0.25, 0.5), (2.0, 1.0, 4.0)),
    "virtuosic": Character((100, 168), (0.25, 0.5, 0.125), (0.125, 0.25), (2.0, 4.0, 1.0)),
}
CHARACTER_WEIGHTS = (("chorale", 0.15), ("song", 0.3), ("classical", 0.3), ("virtuosic", 0.25))

LEFT_HAND = {
    "block": (bass_block, "beat"),
    "alberti": (alberti, "step"),
    "stride": (stride, "beat"),
    "broken": (broken_chord, "step"),
    "octaves": (bass_octaves, "beat"),
    "held": (held_bass, "beat"),
}
RIGHT_HAND = ("melody", "octave melody", "third melody", "chords", "runs", "arpeggios", "trills", "repeated", "rest")
RIGHT_WEIGHTS = {
    "chorale": (0, 0, 1, 5, 0, 0, 0, 0, 0),
    "song": (6, 1, 2, 2, 0, 1, 0, 1, 0),
    "classical": (5, 1, 2, 2, 3, 2, 1, 1, 0),
    "virtuosic": (2, 2, 1, 2, 5, 4, 2, 2, 1),
}
LEFT_WEIGHTS = {
    "chorale": (6, 0, 0, 0, 1, 2),
    "song": (2, 2, 1, 3, 1, 2),
    "classical": (2, 4, 1, 3, 2, 1),
    "virtuosic": (2, 2, 2, 3, 3, 1),
}


def _choose(names, weights, rng: np.random.Generator) -> str:
    weights = np.asarray(weights, dtype=float)
    return list(names)[rng.choice(len(weights), p=weights / weights.sum())]


def right_hand(texture: str, chords: list[Chord], voice: MelodyLine, scale_keys: np.ndarray, character: Character,
               rng: np.random.Generator) -> list[Note]:  # fmt: skip
    step = float(rng.choice(character.step))
    if texture.endswith("melody"):
        doubling = texture.split()[0] if " " in texture else ""
        return melody(chords, voice, scale_keys, character.melody_values, doubling, rng)
    if texture == "chords":
        return block_chords(chords, voice, float(rng.choice([0.5, 1.0, 2.0])), rng)
    if texture == "runs":
        return runs(chords, voice, scale_keys, step, rng)
    if texture == "arpeggios":
        return arpeggios(chords, voice, step, rng)
    if texture == "trills":
        return trills(chords, voice, scale_keys, min(step, 0.125 if character.bpm[1] > 100 else 0.25), rng)
    if texture == "repeated":
        return repeated(chords, voice, step, rng)
    return []


@dataclass(frozen=True)
class Piece:
    """A procedural piano piece in beats, before it is played."""

    notes: list[Note]
    chords: list[Chord]
    phrases: list[tuple[float, float]]
    bpm: float
    end: float
    textures: list[tuple[str, str]]  # (left, right) per phrase
    character: str


def compose(seconds: float, rng: np.random.Generator) -> Piece:
    """Piano music lasting about ``seconds`` at its tempo (whole phrases)."""
    character_name = _choose(*zip(*CHARACTER_WEIGHTS, strict=True), rng)
    character = CHARACTERS[character_name]
    bpm = float(rng.uniform(*character.bpm))
    beats = seconds * bpm / 60
    bar = float(rng.choice([3.0, 4.0], p=[0.3, 0.7]))
    rhythm = min(float(rng.choice(character.harmonic_rhythm)), bar)
    phrases, start = [], 0.0
    while start < beats - bar / 2 or not phrases:
        length = bar * int(rng.choice([2, 4]))
        phrases.append((start, start + length))
        start += length
    tonic, minor = int(rng.integers(12)), bool(rng.random() < 0.35)
    chords = progression(tonic, minor, phrases, rhythm, rng)
    scale_keys = keys_of(
        {(tonic + step) % 12 for step in (HARMONIC_MINOR if minor else MAJOR)}, LOWEST_KEY, HIGHEST_KEY
    )
    left_centre, right_centre = rng.uniform(40, 56), rng.uniform(64, 84)
    voice = MelodyLine(int(right_centre), LOWEST_KEY + 30, HIGHEST_KEY)
    notes, textures = [], []
    for start, end in phrases:
        mine = [c for c in chords if start <= c.start < end]
        left_centre = float(np.clip(left_centre + rng.normal(0, 5), 30, 60))
        right_centre = float(np.clip(right_centre + rng.normal(0, 6), 60, 96))
        voice.low, voice.high = int(right_centre) - 12, min(HIGHEST_KEY, int(right_centre) + 14)
        voice.key = int(np.clip(voice.key, voice.low, voice.high))
        left = _choose(LEFT_HAND, LEFT_WEIGHTS[character_name], rng)
        right = _choose(RIGHT_HAND, RIGHT_WEIGHTS[character_name], rng)
        if right == "chords" and character_name == "chorale":
            left = "held" if rng.random() < 0.3 else "block"
        function, pace = LEFT_HAND[left]
        if pace == "step":
            value = float(rng.choice(character.step))
        elif left == "stride":
            value = 1.0  # strong and weak beats alternate
        else:
            value = float(rng.choice([1.0, 2.0, 0.5], p=[0.5, 0.3, 0.2]))
        for chord in mine:
            notes += function(chord, left_centre, value, rng)
        notes += right_hand(right, mine, voice, scale_keys, character, rng)
        textures.append((left, right))
    return Piece(notes, chords, phrases, bpm, phrases[-1][1], textures, character_name)


# --- playing it ------------------------------------------------------------------------------------------

ROLE_BALANCE = {"melody": 10.0, "bass": 3.0, "inner": -6.0}
"""Velocity added by role: the melody sings over the accompaniment, the bass carries."""


@dataclass(frozen=True)
class Touch:
    """A pianist's choices for one recording."""

    level: np.ndarray  # velocity each phrase is played around
    arch: np.ndarray  # crescendo-diminuendo depth per phrase
    legato: np.ndarray  # sounding share of each note's written length, per phrase
    melody_lead_s: float  # how far the melody sounds ahead of the accompaniment
    jitter_s: float
    pedal: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, phrases: int) -> Touch:
        base = rng.uniform(35, 95)
        level = base + rng.normal(0, 12, phrases)
        subito = rng.random(phrases) < 0.15  # a sudden piano or forte
        level[subito] = rng.uniform(25, 115, np.count_nonzero(subito))
        legato = rng.uniform(0.8, 1.0, phrases)
        staccato = rng.random(phrases) < 0.12
        legato[staccato] = rng.uniform(0.3, 0.55, np.count_nonzero(staccato))
        return cls(
            level=level,
            arch=rng.uniform(0, 18, phrases),
            legato=legato,
            melody_lead_s=float(rng.uniform(0.005, 0.03)),
            jitter_s=float(rng.uniform(0.003, 0.010)),
            pedal=bool(rng.random() < 0.8),
        )


def _note_value_name(beats: float) -> str:
    from music21.duration import Duration

    from amt.data.perform import note_value

    return note_value(Duration(quarterLength=beats))


def play(piece: Piece, rng: np.random.Generator, programs=KEYBOARD_PROGRAMS) -> Performance:
    """Key-down and key-up times, velocities and pedal for ``piece``, on one of ``programs`` (weighted);
    labels are the keys held down."""
    program = _pick(programs, rng)
    onset, length, key = (np.array([n[i] for n in piece.notes], dtype=float) for i in range(3))
    role = np.array([n[3] for n in piece.notes])
    starts = np.array([start for start, _ in piece.phrases])
    ends = np.array([end for _, end in piece.phrases])
    clock = Clock(piece.end, piece.bpm, ends, rng)
    touch = Touch.draw(rng, len(piece.phrases))
    lead_in = rng.uniform(*LEAD_IN_S)
    phrase = np.searchsorted(starts, onset, side="right") - 1
    position = (onset - starts[phrase]) / (ends[phrase] - starts[phrase])
    velocity = touch.level[phrase] + touch.arch[phrase] * (np.sin(np.pi * position) - 0.5)
    velocity += np.vectorize(ROLE_BALANCE.get)(role) + rng.normal(0, 5, len(onset))
    velocity = np.clip(np.round(velocity), 15, 127)
    jitter = np.clip(rng.normal(0, touch.jitter_s, len(onset)), -3 * touch.jitter_s, 3 * touch.jitter_s)
    start = clock(onset) + lead_in + jitter - touch.melody_lead_s * (role == "melody")
    written = clock(onset + length) - clock(onset)
    stop = start + np.maximum(MIN_NOTE_S, written * touch.legato[phrase] * rng.uniform(0.95, 1.05, len(onset)))
    keep = np.flatnonzero(separate_repeats(key.astype(np.int64), start, stop))
    pedal = ()
    if touch.pedal and program < 6:  # harpsichord and clavinet have no sustain pedal
        changes = clock(np.array([chord.start for chord in piece.chords])) + lead_in
        pedal = pedal_intervals(changes, float(stop[keep].max()), rng)
    instrument = program + 1
    rows = [
        (round(start[i] * SAMPLE_RATE), round(stop[i] * SAMPLE_RATE), instrument, int(key[i]), float(onset[i]),
         float(length[i]), _note_value_name(float(length[i])))
        for i in keep
    ]  # fmt: skip
    track = Track(
        program=program,
        timbre=INSTRUMENTS["harpsichord" if program == 6 else "piano"].timbre,
        notes=np.column_stack([start[keep], stop[keep], key[keep], velocity[keep]]),
        pedal=pedal,
    )
    last_sound = max([float(stop[keep].max()), *(up for _, up in pedal)])
    n_samples = round((last_sound + TAIL_S) * SAMPLE_RATE)
    return Performance(
        [track], MusicNetLabels.from_rows(rows), n_samples, Room.draw(rng), float(rng.uniform(0.5, 0.95))
    )


def procedural_performance(
    duration_s: float, rng: np.random.Generator, evaluation: bool = False
) -> tuple[Performance, dict]:
    """A piano recording of about ``duration_s`` seconds (lead-in and tail included) and what it holds;
    for an ``evaluation`` set, on an acoustic grand (as the recordings it stands for)."""
    piece = compose(max(2.0, (duration_s - float(np.mean(LEAD_IN_S)) - TAIL_S) / PERFORMED_STRETCH), rng)
    performance = play(piece, rng, ((0, 1.0),) if evaluation else KEYBOARD_PROGRAMS)
    entry = {
        "character": piece.character,
        "textures": [f"{left}+{right}" for left, right in piece.textures],
        "quarter_bpm": round(piece.bpm, 1),
        "program": int(performance.tracks[0].program),
        "pedal": bool(performance.tracks[0].pedal),
    }
    return performance, entry
