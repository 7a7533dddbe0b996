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
import functools
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
    """Whether ``soundfont`` (or what a link to it points at) is one of :data:`EVALUATION_ONLY`, in any
    edition (Debian's ``MuseScore_General.sf3`` links to ``MuseScore_General_Full.sf3``)."""
    names = {Path(soundfont).stem.lower(), Path(soundfont).resolve().stem.lower()}
    return any(name.startswith(reserved) for name in names for reserved in EVALUATION_ONLY)


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
class SynthSettings:
    """A synthesiser's settings for one recording, so that no single sound dominates a corpus.

    ``detune_cents``: the whole instrument off concert pitch; ``stretch_cents``: octaves stretched
    by this much (a piano tuner's stretch, each key's pitch moved by ``stretch_cents`` per octave from
    A4); ``chorus``: FluidSynth's chorus level (None: FluidSynth's default). Labels keep the nominal keys.
    """

    detune_cents: float = 0.0
    stretch_cents: float = 0.0
    chorus: float | None = None

    def cents(self, keys):
        """How far each key (a MIDI number, or an array of them) sounds from its nominal pitch."""
        return self.detune_cents + self.stretch_cents * (keys - 69) / 12


SYNTHS = ("fluidsynth", "timidity", "sampler", "additive", "harmonic")
"""FluidSynth with a soundfont; TiMidity++ with a patch set (its config file); amt's sampler with a
recorded grand piano (:mod:`amt.data.samples`); amt's additive synthesiser with a timbre drawn per
recording; the harmonic fallback with its fixed timbres."""


@dataclass(frozen=True)
class Renderer:
    """Which synthesiser renders, with which sounds: FluidSynth with ``soundfont``, TiMidity++ with the
    config ``soundfont`` names, the sampler with the folder of samples ``soundfont`` names, the additive
    synthesiser, or (no soundfont) the harmonic fallback."""

    soundfont: Path | None = None
    synth: str | None = None

    @property
    def name(self) -> str:
        return self.synth or ("fluidsynth" if self.soundfont else "harmonic")

    def params(self) -> dict:
        """What identifies this renderer's output in a cache key: synthesiser, sounds path and size (for
        the sampler's folder, its manifest's)."""
        if self.soundfont is None:
            return {"renderer": self.name}
        from amt.data.samples import MANIFEST

        sounds = self.soundfont / MANIFEST if self.name == "sampler" else self.soundfont
        return {"renderer": self.name, "soundfont": str(self.soundfont), "soundfont_bytes": sounds.stat().st_size}

    def render(
        self,
        tracks: list[Track],
        n_samples: int,
        room: Room,
        settings: SynthSettings = SynthSettings(),
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Mono float32 audio of ``n_samples`` samples at 44.1 kHz (not normalised). ``rng`` draws the
        additive synthesiser's timbres (the sampler's, too, for its tracks that are not pianos)."""
        if self.name == "fluidsynth":
            return render_fluidsynth(tracks, n_samples, self.soundfont, room, settings)
        if self.name == "timidity":
            return render_timidity(tracks, n_samples, self.soundfont, settings)
        if self.name == "sampler":
            from amt.data.samples import PianoSamples

            timbres = draw_timbres(rng or np.random.default_rng(0))
            return render_sampled(tracks, n_samples, PianoSamples(self.soundfont), settings, timbres)
        if self.name == "additive":
            return render_harmonic(tracks, n_samples, settings, draw_timbres(rng or np.random.default_rng(0)))
        return render_harmonic(tracks, n_samples)

    def onset_latency(self, program: int, timbre: str = "piano") -> float:
        """Seconds from key-down to this renderer's sound of ``program`` (see :func:`onset_latency`)."""
        return onset_latency(self, program, timbre)


SOUNDS = {
    "fluidr3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # fluid-soundfont-gm
    "sf-gmbank": "/usr/share/sounds/sf2/sf_GMbank.sf2",  # csound-soundfont
    "opl3": "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",  # opl3-soundfont: FM synthesis, a different timbre
    "freepats": "/etc/timidity/freepats.cfg",  # freepats, for TiMidity++
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",  # timgm6mb-soundfont: evaluation only
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",  # musescore-general-soundfont: evaluation only
}
"""Short names for the sound sets Debian packages (a recipe may also give a path); the sampler's
recorded pianos (``salamander``, ``uiowa``) are downloaded once instead (:mod:`amt.data.samples`)."""


@dataclass(frozen=True)
class Voice:
    """One way a corpus recipe renders recordings: a synthesiser (:data:`SYNTHS`), its sounds (a name in
    :data:`SOUNDS` or a path; none for the additive synthesiser) and how often it is drawn (``weight``)."""

    synth: str = "fluidsynth"
    sounds: str | None = None
    weight: float = 1.0

    def renderer(self, evaluation: bool = False) -> Renderer:
        """The renderer, checked: installed, and an evaluation-only soundfont only when ``evaluation``."""
        if self.synth not in SYNTHS:
            raise AmtError(f"unknown synthesiser {self.synth!r} (choose from: {', '.join(SYNTHS)})")
        if self.synth in ("additive", "harmonic"):
            return Renderer(None, self.synth)
        if self.synth == "sampler":
            from amt.data.samples import prepare_source

            return Renderer(prepare_source(self.sounds).resolve(), "sampler")
        path = Path(SOUNDS.get(self.sounds or "", self.sounds or "")).expanduser()
        if self.synth == "fluidsynth":
            return choose_renderer(path, evaluation=evaluation)
        if not path.is_file():
            raise AmtError(f"{path}: no such TiMidity++ config (Debian: apt-get install timidity freepats)")
        return Renderer(path.resolve(), "timidity")


@dataclass(frozen=True)
class SynthRanges:
    """What a recipe varies per recording (:class:`SynthSettings`): detune drawn from a normal with
    ``detune_cents`` standard deviation, stretch uniform in ``stretch_cents``, and with
    ``chorus_probability`` a chorus level from ``chorus``."""

    detune_cents: float = 0.0
    stretch_cents: tuple[float, float] = (0.0, 0.0)
    chorus_probability: float = 0.0
    chorus: tuple[float, float] = (0.5, 4.0)

    def draw(self, rng: np.random.Generator) -> SynthSettings:
        return SynthSettings(
            detune_cents=float(rng.normal(0, self.detune_cents)) if self.detune_cents else 0.0,
            stretch_cents=float(rng.uniform(*self.stretch_cents)),
            chorus=float(rng.uniform(*self.chorus)) if rng.random() < self.chorus_probability else 0.0,
        )


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


@functools.lru_cache(maxsize=1)
def _libfluidsynth() -> ctypes.CDLL:
    """The libfluidsynth pyfluidsynth loaded, with the signatures of the calls pyfluidsynth does not wrap:
    float output (``fluid_synth_write_float``) and key tuning."""
    import fluidsynth

    lib = ctypes.CDLL(fluidsynth.lib)
    buffer = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]  # samples, offset, stride
    lib.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, *buffer, *buffer]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    lib.fluid_synth_activate_key_tuning.argtypes = [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double), ctypes.c_int
    ]  # fmt: skip
    lib.fluid_synth_activate_tuning.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 4
    return lib


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


def _tune(synth, channels: list[int], settings: SynthSettings) -> None:
    """Detune and stretch the channels through FluidSynth's key tuning (one tuning program per channel)."""
    lib = _libfluidsynth()
    keys = np.arange(128, dtype=np.float64)
    cents = 100 * keys + settings.cents(keys)
    pitches = (ctypes.c_double * 128)(*cents)
    for channel in channels:
        lib.fluid_synth_activate_key_tuning(synth.synth, 0, channel, b"amt", pitches, 1)
        lib.fluid_synth_activate_tuning(synth.synth, channel, 0, channel, 1)


def render_fluidsynth(
    tracks: list[Track], n_samples: int, soundfont: Path, room: Room, settings: SynthSettings = SynthSettings()
) -> np.ndarray:
    """Render with a fresh FluidSynth synth (see the module docstring for why fresh)."""
    import fluidsynth

    write = _libfluidsynth().fluid_synth_write_float
    synth = fluidsynth.Synth(
        gain=FLUIDSYNTH_GAIN,
        samplerate=float(SAMPLE_RATE),
        **{
            "synth.reverb.room-size": float(room.size),
            "synth.reverb.damp": float(room.damping),
            "synth.reverb.width": float(room.width),
            "synth.reverb.level": float(room.level),
            **({"synth.chorus.level": float(settings.chorus)} if settings.chorus is not None else {}),
        },
    )
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise AmtError(f"{soundfont}: FluidSynth could not load this soundfont")
        channels = _channels(len(tracks))
        for channel, track in zip(channels, tracks, strict=True):
            synth.program_select(channel, sfid, 0, track.program)
        if settings.detune_cents or settings.stretch_cents:
            _tune(synth, channels, settings)
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


def performance_midi(tracks: list[Track]):
    """The tracks as a MIDI file (``pretty_midi.PrettyMIDI``): one instrument per track with its program,
    key-down/key-up notes and velocities, and sustain-pedal changes (CC64)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120)
    _channels(len(tracks))  # as many players as MIDI channels (pretty_midi assigns them, skipping drums)
    for track in tracks:
        instrument = pretty_midi.Instrument(track.program)
        instrument.notes = [pretty_midi.Note(int(v), int(p), float(on), float(off)) for on, off, p, v in track.notes]
        for down, up in track.pedal:
            instrument.control_changes += [
                pretty_midi.ControlChange(SUSTAIN_PEDAL, 127, float(down)),
                pretty_midi.ControlChange(SUSTAIN_PEDAL, 0, float(up)),
            ]
        midi.instruments.append(instrument)
    return midi


# --- TiMidity++ ------------------------------------------------------------------------------------

TIMIDITY_CONFIGS = Path("/etc/timidity")
"""Debian's TiMidity++ patch-set configs (``freepats.cfg`` with ``freepats``)."""


def render_timidity(
    tracks: list[Track], n_samples: int, config: Path, settings: SynthSettings = SynthSettings()
) -> np.ndarray:
    """Render with the TiMidity++ command (a second synthesiser: its own sample playback and envelopes),
    its own reverb and chorus off (rooms come from :mod:`amt.data.acoustics`), leading silence kept.

    Not reproducible bit for bit: TiMidity++ seeds its random generator from the clock, and a dense
    performance renders differently from run to run (by up to −20 dB); no bundled recipe uses it.
    """
    import shutil
    import subprocess
    import tempfile

    import pretty_midi
    import soundfile

    if shutil.which("timidity") is None:
        raise AmtError("timidity is not installed (Debian/Ubuntu: apt-get install timidity freepats)")
    midi = performance_midi(tracks)
    if settings.detune_cents:
        for instrument in midi.instruments:
            instrument.pitch_bends.append(pretty_midi.PitchBend(round(8192 * settings.detune_cents / 200), 0.0))
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "in.mid", Path(folder) / "out.wav"
        midi.write(str(source))
        command = ["timidity", "-c", str(config), "--preserve-silence", "-EFreverb=0", "-EFchorus=0",
                   "-Ow", "--output-mono", "-s", str(SAMPLE_RATE), "-o", str(out), str(source)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not out.is_file():
            raise AmtError(f"{config}: timidity failed ({(result.stderr or result.stdout).strip()[-200:]})")
        audio, _ = soundfile.read(out, dtype="float32")
    audio = audio[:n_samples]
    return np.pad(audio, (0, n_samples - len(audio)))


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
    noise: float = 0.0  # level of the attack's noise burst (a hammer's thump, a bow's scrape)


TIMBRES = {
    "piano": Timbre((1.0, 0.55, 0.32, 0.22, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025), 0.004, 0.12, 1.4, 0.0, 3e-4),
    "harpsichord": Timbre((1.0, 0.9, 0.7, 0.6, 0.5, 0.4, 0.32, 0.25, 0.2, 0.15, 0.1, 0.08), 0.002, 0.06, 0.9),
    "bowed": Timbre(tuple(1.0 / n for n in range(1, 13)), 0.07, 0.1, None, 0.004),
    "flute": Timbre((1.0, 0.35, 0.12, 0.05, 0.02), 0.05, 0.08, None, 0.003),
    "clarinet": Timbre((1.0, 0.04, 0.5, 0.03, 0.28, 0.02, 0.14, 0.01, 0.07), 0.03, 0.06, None, 0.001),
    "double_reed": Timbre((0.7, 1.0, 0.75, 0.5, 0.35, 0.25, 0.16, 0.1, 0.06), 0.03, 0.06, None, 0.002),
    "brass": Timbre((1.0, 0.7, 0.4, 0.22, 0.12, 0.06, 0.03), 0.05, 0.1, None, 0.001),
}


def draw_timbres(rng: np.random.Generator) -> dict[str, Timbre]:
    """Every family's timbre varied for one recording of the additive synthesiser: partial levels
    (±6 dB each), brightness, inharmonicity (struck strings), decay, attack and release, attack noise."""
    timbres = {}
    for name, base in TIMBRES.items():
        harmonics = np.arange(1, len(base.partials) + 1)
        tilt = rng.uniform(-0.5, 0.5)  # brighter or darker, growing with the harmonic number
        partials = np.asarray(base.partials) * 10 ** (rng.normal(0, 0.3, len(harmonics)) / 2) * harmonics**tilt
        extra = int(rng.integers(0, 6))  # sometimes more partials than the base timbre has
        partials = np.concatenate([partials, partials[-1] * rng.uniform(0.3, 0.9, extra).cumprod()])
        struck = base.decay_s is not None
        timbres[name] = Timbre(
            partials=tuple(float(p) for p in partials / partials[0]),
            attack_s=base.attack_s * float(rng.uniform(0.5, 2.0)),
            release_s=base.release_s * float(rng.uniform(0.6, 1.8)),
            decay_s=base.decay_s * float(rng.uniform(0.5, 2.5)) if struck else None,
            vibrato=base.vibrato * float(rng.uniform(0, 2)),
            inharmonicity=float(rng.uniform(0, 8e-4)) if struck else 0.0,
            noise=float(rng.uniform(0, 0.3)),
        )
    return timbres


def _sound_ends(track: Track) -> np.ndarray:
    """When each note stops being held: key-up, or the pedal's release when the pedal is down then."""
    ends = track.notes[:, 1].astype(np.float64).copy()
    for down, up in track.pedal:
        held = (ends >= down) & (ends < up)
        ends[held] = up
    return ends


def _note_wave(
    timbre: Timbre, pitch: float, velocity: float, held_s: float, cents: float = 0.0, seed: int = 0
) -> np.ndarray:
    """One note: its partials under an attack/decay/release envelope, ``held_s`` plus the release long,
    ``cents`` off its key, with the timbre's attack noise (drawn from ``seed``)."""
    f0 = 440.0 * 2.0 ** ((pitch - 69 + cents / 100) / 12)
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
    wave = loudness * envelope * partials.sum(axis=0)
    if timbre.noise:
        burst = min(length, int(0.03 * SAMPLE_RATE))
        noise = np.random.default_rng(seed).normal(0, 1, burst) * np.exp(-np.arange(burst) / (0.006 * SAMPLE_RATE))
        wave[:burst] += timbre.noise * loudness * noise
    return wave.astype(np.float32)


def _add(out: np.ndarray, wave: np.ndarray, start: int) -> None:
    out[start : start + len(wave[: len(out) - start])] += wave[: len(out) - start]


def render_harmonic(
    tracks: list[Track],
    n_samples: int,
    settings: SynthSettings = SynthSettings(),
    timbres: dict[str, Timbre] = TIMBRES,
) -> np.ndarray:
    """Additive synthesis of every note of every track, summed: the fallback with its fixed ``timbres``,
    or the additive synthesiser with timbres drawn per recording (:func:`draw_timbres`)."""
    out = np.zeros(n_samples, dtype=np.float32)
    for track in tracks:
        timbre = timbres[track.timbre]
        for i, ((onset, _, pitch, velocity), end) in enumerate(zip(track.notes, _sound_ends(track), strict=True)):
            start = round(onset * SAMPLE_RATE)
            if start >= n_samples:
                continue
            wave = _note_wave(timbre, float(pitch), float(velocity), float(end - onset), settings.cents(pitch), seed=i)
            _add(out, wave, start)
    return out


def render_sampled(
    tracks: list[Track], n_samples: int, samples, settings: SynthSettings, timbres: dict[str, Timbre]
) -> np.ndarray:
    """The sampler: piano tracks played from recorded ``samples`` (:class:`amt.data.samples.PianoSamples`),
    every other track by the additive synthesiser with ``timbres``."""
    out = render_harmonic([track for track in tracks if track.timbre != "piano"], n_samples, settings, timbres)
    for track in tracks:
        if track.timbre != "piano":
            continue
        for (onset, _, pitch, velocity), end in zip(track.notes, _sound_ends(track), strict=True):
            start = round(onset * SAMPLE_RATE)
            if start < n_samples:
                _add(out, samples.note(int(pitch), float(velocity), float(end - onset), settings.cents(pitch)), start)
    return out


# --- onset latency ------------------------------------------------------------------------------------

LATENCY_PITCHES = (48, 60, 72)
LATENCY_THRESHOLD = 0.1
"""A note's sound begins where its envelope (1 ms mean) first reaches this share of its peak."""


@functools.lru_cache(maxsize=256)
def onset_latency(renderer: Renderer, program: int, timbre: str = "piano") -> float:
    """Seconds from key-down to the sound, for ``program`` (``timbre`` for the additive synthesisers)
    on ``renderer``: isolated notes (C3, C4, C5 at
    velocity 80, no reverb) rendered, the median delay to each one's energy onset. A slow attack (bowed
    strings, FluidR3's cello) counts too: labels should meet the sound where a listener hears it begin."""
    spacing = 1.5
    notes = np.array([[0.5 + i * spacing, 1.0 + i * spacing, pitch, 80] for i, pitch in enumerate(LATENCY_PITCHES)])
    track = Track(program, timbre, notes)
    n = round((0.5 + spacing * len(LATENCY_PITCHES)) * SAMPLE_RATE)
    audio = np.abs(renderer.render([track], n, Room(level=0.0), SynthSettings(chorus=0.0)))
    smooth = np.convolve(audio, np.ones(44) / 44, mode="same")
    delays = []
    for onset in notes[:, 0]:
        start, stop = round(onset * SAMPLE_RATE), round((onset + spacing) * SAMPLE_RATE)
        segment = smooth[start:stop]
        if segment.max() > 0:
            delays.append(np.argmax(segment >= LATENCY_THRESHOLD * segment.max()) / SAMPLE_RATE)
    return float(np.median(delays)) if delays else 0.0


def played_early(tracks: list[Track], renderer: Renderer) -> list[Track]:
    """The tracks with every key-down moved earlier by the renderer's latency for its program, so the
    sound begins where the labels (key-down times) say; key-ups stay."""
    moved = []
    for track in tracks:
        notes = track.notes.copy()
        notes[:, 0] = np.maximum(0.0, notes[:, 0] - renderer.onset_latency(track.program, track.timbre))
        moved.append(Track(track.program, track.timbre, notes, track.pedal))
    return moved
