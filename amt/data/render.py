"""Performed notes → audio: FluidSynth with a General MIDI soundfont, or a built-in harmonic synthesiser.

:mod:`amt.data.perform` turns scores into :class:`Track` s (one per player: a General MIDI
program, key-down/key-up times, velocities, sustain-pedal intervals); this module renders them.

FluidSynth is driven through pyfluidsynth, one fresh ``Synth`` per recording: a reused synth keeps
reverb and chorus state from the previous recording, so the same performance would not render to
the same samples (a new synth costs ≈ 0.1 s; FluidSynth caches the soundfont's samples). Samples are
read as float (``fluid_synth_write_float``), which neither clips nor dithers.

Without FluidSynth or a soundfont, :func:`choose_renderer` warns once and the harmonic synthesiser
renders instead: additive partials with an envelope per instrument family (struck, plucked, bowed,
blown), so the spectra still have the harmonic structure of real instruments, unlike pure sines.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amt.errors import AmtError
from amt.grid import SAMPLE_RATE

SOUNDFONT_ENV = "AMT_SOUNDFONT"
SYSTEM_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",  # Debian's alternatives link, Fedora, Arch
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
EVALUATION_ONLY = ("timgm6mb", "musescore_general")
"""Soundfonts that only ever render evaluation sets (file names, lower case, without suffix): they
never render a training or validation recording, so no model is trained or chosen on their timbres.
A system default (Debian's ``default-GM.sf2`` link) that resolves to one of them is passed over."""


def evaluation_only(soundfont: Path) -> bool:
    """Whether ``soundfont`` (a link is followed) is one of :data:`EVALUATION_ONLY`."""
    return Path(soundfont).resolve().stem.lower() in EVALUATION_ONLY


FLUIDSYNTH_GAIN = 0.4
"""Synth gain; the float output cannot clip, and recordings are peak-normalised afterwards."""

DRUM_CHANNEL = 9
TAIL_DECAYS = 5
"""The harmonic synthesiser renders a release for this many time constants before cutting it."""


@dataclass(frozen=True)
class Track:
    """One player's notes on one General MIDI program (0-based, as MIDI numbers them).

    ``notes`` rows are ``(key-down s, key-up s, MIDI pitch, velocity)``; ``pedal`` holds the
    sustain pedal's ``(down s, up s)`` intervals (CC64), which extend the sound, never the labels.
    """

    program: int
    timbre: str
    notes: np.ndarray
    pedal: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Room:
    """FluidSynth reverb settings, drawn per recording (different halls and microphone distances)."""

    size: float = 0.2
    damping: float = 0.0
    width: float = 0.5
    level: float = 0.9

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Room:
        """A training room: small to large, some damping, moderate reverb level."""
        return cls(
            size=rng.uniform(0.2, 0.8),
            damping=rng.uniform(0.1, 0.6),
            width=rng.uniform(0.5, 1.0),
            level=rng.uniform(0.2, 0.7),
        )


@dataclass(frozen=True)
class Renderer:
    """Which synthesiser renders: FluidSynth with ``soundfont``, or the harmonic one when it is None."""

    soundfont: Path | None = None

    @property
    def name(self) -> str:
        return "fluidsynth" if self.soundfont else "harmonic"

    def params(self) -> dict:
        """What identifies this renderer's output in a cache key: soundfont path and size."""
        if self.soundfont is None:
            return {"renderer": self.name}
        return {
            "renderer": self.name,
            "soundfont": str(self.soundfont),
            "soundfont_bytes": self.soundfont.stat().st_size,
        }

    def render(self, tracks: list[Track], n_samples: int, room: Room) -> np.ndarray:
        """Mono float32 audio of ``n_samples`` samples at 44.1 kHz (not normalised)."""
        if self.soundfont is None:
            return render_harmonic(tracks, n_samples)
        return render_fluidsynth(tracks, n_samples, self.soundfont, room)


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path | None:
    """The soundfont to use: ``explicit``, else ``$AMT_SOUNDFONT``, else the first system GM font found.

    A soundfont that is named (argument or environment) but missing gives None rather than
    another font, so the caller's fallback warning says that the named one was not found.
    """
    named = explicit or os.environ.get(SOUNDFONT_ENV)
    if named:
        path = Path(named).expanduser()
        return path.resolve() if path.is_file() else None
    for candidate in SYSTEM_SOUNDFONTS:
        if Path(candidate).is_file() and not evaluation_only(Path(candidate)):
            return Path(candidate).resolve()
    return None


def fluidsynth_problem() -> str | None:
    """Why pyfluidsynth cannot be used here (no module, no libfluidsynth), or None when it can."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as error:
        return f"FluidSynth is not usable ({error})"
    return None


def choose_renderer(soundfont: str | os.PathLike | None = None, evaluation: bool = False) -> Renderer:
    """FluidSynth with the soundfont found by :func:`find_soundfont`, else the harmonic synthesiser.

    Falling back from the system's default soundfont warns exactly once, naming what is missing: the
    corpus is then built, but sounds less like real instruments. A soundfont the user named (argument
    or ``$AMT_SOUNDFONT``) is never silently replaced: without it, or without FluidSynth, it is an error.
    An :data:`EVALUATION_ONLY` soundfont renders only what is marked ``evaluation`` (a test split).
    """
    named = soundfont or os.environ.get(SOUNDFONT_ENV)
    problem = fluidsynth_problem()
    found = find_soundfont(soundfont) if problem is None else None
    if named and found is None:
        reason = problem or "no such file"
        raise AmtError(f"{named}: cannot render with this soundfont ({reason})")
    if found is not None and evaluation_only(found) and not evaluation:
        raise AmtError(
            f"{named}: an evaluation-only soundfont; it renders test sets only, never a training or "
            "validation recording (so no model is trained or chosen on it)"
        )
    if problem is None and found is None:
        problem = (
            f"no General MIDI soundfont at {', '.join(SYSTEM_SOUNDFONTS)} (set ${SOUNDFONT_ENV} or pass soundfont=)"
        )
    if problem is not None:
        warnings.warn(f"amt: {problem}; rendering with the built-in harmonic synthesiser instead", stacklevel=2)
        return Renderer(None)
    return Renderer(found)


# --- FluidSynth -------------------------------------------------------------------------------


def _float_writer():
    """``fluid_synth_write_float`` from the libfluidsynth that pyfluidsynth loaded."""
    import fluidsynth

    write = ctypes.CDLL(fluidsynth.lib).fluid_synth_write_float
    write.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int] * 2
    write.restype = ctypes.c_int
    return write


def _channels(count: int) -> list[int]:
    """MIDI channels for ``count`` tracks, skipping the General MIDI drum channel."""
    channels = [c for c in range(16) if c != DRUM_CHANNEL]
    if count > len(channels):
        raise AmtError(f"a recording may have at most {len(channels)} players, got {count}")
    return channels[:count]


NOTE_OFF, PEDAL, NOTE_ON = 0, 1, 2
"""Event kinds, in the order they are applied when they fall on the same sample."""
SUSTAIN_PEDAL = 64


def _midi_events(tracks: list[Track]) -> list[tuple[int, int, int, int, int]]:
    """``(sample, kind, channel, key or controller, velocity or value)`` events in playing order."""
    events = []
    for channel, track in zip(_channels(len(tracks)), tracks, strict=True):
        for onset, offset, pitch, velocity in track.notes:
            events.append((round(onset * SAMPLE_RATE), NOTE_ON, channel, int(pitch), int(velocity)))
            events.append((round(offset * SAMPLE_RATE), NOTE_OFF, channel, int(pitch), 0))
        for down, up in track.pedal:
            events.append((round(down * SAMPLE_RATE), PEDAL, channel, SUSTAIN_PEDAL, 127))
            events.append((round(up * SAMPLE_RATE), PEDAL, channel, SUSTAIN_PEDAL, 0))
    return sorted(events)


def render_fluidsynth(tracks: list[Track], n_samples: int, soundfont: Path, room: Room) -> np.ndarray:
    """Render with a fresh FluidSynth synth (see the module docstring for why fresh)."""
    import fluidsynth

    write = _float_writer()
    synth = fluidsynth.Synth(
        gain=FLUIDSYNTH_GAIN,
        samplerate=float(SAMPLE_RATE),
        **{
            "synth.reverb.room-size": float(room.size),
            "synth.reverb.damp": float(room.damping),
            "synth.reverb.width": float(room.width),
            "synth.reverb.level": float(room.level),
        },
    )
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise AmtError(f"{soundfont}: FluidSynth could not load this soundfont")
        for channel, track in zip(_channels(len(tracks)), tracks, strict=True):
            synth.program_select(channel, sfid, 0, track.program)
        left = np.zeros(n_samples, dtype=np.float32)
        right = np.zeros(n_samples, dtype=np.float32)

        def run_until(stop: int, start: int) -> None:
            if stop > start:
                n = stop - start
                write(synth.synth, n, left[start:].ctypes.data, 0, 1, right[start:].ctypes.data, 0, 1)

        position = 0
        for sample, kind, channel, key, value in _midi_events(tracks):
            sample = min(sample, n_samples)
            run_until(sample, position)
            position = max(position, sample)
            if kind == NOTE_ON:
                synth.noteon(channel, key, value)
            elif kind == NOTE_OFF:
                synth.noteoff(channel, key)
            else:
                synth.cc(channel, key, value)
        run_until(n_samples, position)
    finally:
        synth.delete()
    return (left + right) * np.float32(0.5)


# --- harmonic synthesiser ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timbre:
    """An instrument family for the harmonic synthesiser.

    ``partials`` are the relative amplitudes of harmonics 1, 2, …; ``decay_s`` (struck and plucked
    strings) is the exponential decay of the fundamental at middle C, higher notes and partials
    dying faster; sustained timbres (``decay_s`` None) hold until key-up.
    """

    partials: tuple[float, ...]
    attack_s: float
    release_s: float
    decay_s: float | None = None
    vibrato: float = 0.0
    inharmonicity: float = 0.0


TIMBRES = {
    "piano": Timbre((1.0, 0.55, 0.32, 0.22, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025), 0.004, 0.12, 1.4, 0.0, 3e-4),
    "harpsichord": Timbre((1.0, 0.9, 0.7, 0.6, 0.5, 0.4, 0.32, 0.25, 0.2, 0.15, 0.1, 0.08), 0.002, 0.06, 0.9),
    "bowed": Timbre(tuple(1.0 / n for n in range(1, 13)), 0.07, 0.1, None, 0.004),
    "flute": Timbre((1.0, 0.35, 0.12, 0.05, 0.02), 0.05, 0.08, None, 0.003),
    "clarinet": Timbre((1.0, 0.04, 0.5, 0.03, 0.28, 0.02, 0.14, 0.01, 0.07), 0.03, 0.06, None, 0.001),
    "double_reed": Timbre((0.7, 1.0, 0.75, 0.5, 0.35, 0.25, 0.16, 0.1, 0.06), 0.03, 0.06, None, 0.002),
    "brass": Timbre((1.0, 0.7, 0.4, 0.22, 0.12, 0.06, 0.03), 0.05, 0.1, None, 0.001),
}


def _sound_ends(track: Track) -> np.ndarray:
    """When each note stops being held: key-up, or the pedal's release when the pedal is down then."""
    ends = track.notes[:, 1].astype(np.float64).copy()
    for down, up in track.pedal:
        held = (ends >= down) & (ends < up)
        ends[held] = up
    return ends


def _note_wave(timbre: Timbre, pitch: float, velocity: float, held_s: float) -> np.ndarray:
    """One note: its partials under an attack/decay/release envelope, ``held_s`` plus the release long."""
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    length = int((held_s + TAIL_DECAYS * timbre.release_s) * SAMPLE_RATE)
    t = np.arange(length, dtype=np.float64) / SAMPLE_RATE
    loudness = (velocity / 127.0) ** 2
    harmonics = np.arange(1, len(timbre.partials) + 1, dtype=np.float64)
    frequencies = f0 * harmonics * np.sqrt(1.0 + timbre.inharmonicity * harmonics**2)
    audible = frequencies < 0.45 * SAMPLE_RATE
    harmonics, frequencies = harmonics[audible], frequencies[audible]
    amplitudes = np.asarray(timbre.partials)[audible] * (0.35 + 0.65 * velocity / 127.0) ** (harmonics - 1)
    phase = 2 * np.pi * f0 * t
    if timbre.vibrato:
        rate = 5.5
        phase += timbre.vibrato * f0 / rate * np.sin(2 * np.pi * rate * np.maximum(t - 0.15, 0.0))
    envelope = np.minimum(1.0, t / timbre.attack_s)
    envelope *= np.where(t < held_s, 1.0, np.exp(-(t - held_s) / timbre.release_s))
    if timbre.decay_s is None:
        partials = amplitudes[:, None] * np.sin(frequencies[:, None] / f0 * phase[None, :])
    else:
        decay = timbre.decay_s * np.sqrt(261.6 / f0) / np.sqrt(harmonics)
        partials = amplitudes[:, None] * np.exp(-t[None, :] / decay[:, None])
        partials *= np.sin(frequencies[:, None] / f0 * phase[None, :])
    return (loudness * envelope * partials.sum(axis=0)).astype(np.float32)


def render_harmonic(tracks: list[Track], n_samples: int) -> np.ndarray:
    """Additive synthesis of every note of every track, summed."""
    out = np.zeros(n_samples, dtype=np.float32)
    for track in tracks:
        timbre = TIMBRES[track.timbre]
        for (onset, _, pitch, velocity), end in zip(track.notes, _sound_ends(track), strict=True):
            start = round(onset * SAMPLE_RATE)
            if start >= n_samples:
                continue
            wave = _note_wave(timbre, float(pitch), float(velocity), float(end - onset))[: n_samples - start]
            out[start : start + len(wave)] += wave
    return out
