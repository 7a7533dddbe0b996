"""The offline default corpus: real scores, arranged, performed and rendered into MusicNet layout.

MusicNet is 50 GB and cannot be fetched everywhere, so amt builds a MusicNet-like corpus itself
from music21's bundled scores: Bach chorales, Palestrina masses, Monteverdi madrigals, string
quartets by Beethoven, Haydn, Mozart and Schumann, and piano pieces by Mozart, C. P. E. Bach,
Clara Schumann, Chopin, Joplin and Schoenberg. Each recording is an excerpt of a piece, arranged
for a MusicNet ensemble and performed with human variation (:mod:`amt.data.perform`), then rendered
with FluidSynth or the harmonic fallback (:mod:`amt.data.render`).

This module decides *what* is built: the presets (``tiny`` for tests, ``mini`` the size of
mini-MusicNet), which pieces go to which split (by piece: no piece is in two splits), and the build
itself, in a process pool with a progress bar. A build is deterministic for a seed: each recording
draws from its own generator seeded by ``(seed, id)`` and FluidSynth starts fresh per recording, so
the worker count and scheduling do not matter. ``ROOT/corpus.json``, written when every recording
is on disk, records the build's parameters and one entry per recording; the corpus is rebuilt only
when the parameters change. The windows (:mod:`amt.data.musicnet`) follow in ``ROOT/windows``.
"""

from __future__ import annotations

import fnmatch
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from rich.progress import Progress

from amt.audio import SAMPLE_RATE, save_audio
from amt.config import CONF_DIR
from amt.data.acoustics import Acoustics, Effect, RoomRanges
from amt.data.folk import folk_performance, folk_tunes
from amt.data.musicnet import windows_complete, write_windows
from amt.data.perform import (
    ENSEMBLES,
    LEAD_IN_S,
    PERFORMED_STRETCH,
    TAIL_S,
    Performance,
    Score,
    arrange,
    choose_ensemble,
    corpus_folder,
    cut_excerpt,
    load_score,
    perform,
    start_bar,
)
from amt.data.piano import procedural_performance
from amt.data.recordings import CORPUS_JSON, SPLITS, find_recordings
from amt.data.render import (
    Renderer,
    Room,
    SynthRanges,
    SynthSettings,
    Voice,
    choose_renderer,
    performance_midi,
    played_early,
)
from amt.errors import AmtError
from amt.files import as_json, take_folder, write_atomically, write_json
from amt.labels import write_musicnet_csv

CORPUS_VERSION = 1
"""Bump when a change to this module changes the recordings it builds (invalidates every cache)."""

FEATURE_CACHES = ("features-h*",)
"""amt's spectrogram caches inside a recordings folder (:mod:`amt.data.sequences`), kept on a rebuild."""
FIRST_ID = 1000
"""Recording ids are numbers from here, MusicNet-style."""


# --- sources and presets -----------------------------------------------------------------------


MUSICNET_MIX = (
    ("solo_piano", 0.40),
    ("string_quartet", 0.20),
    ("piano_trio", 0.10),
    ("accompanied_violin", 0.06),
    ("wind_quintet", 0.06),
    ("accompanied_cello", 0.04),
    ("piano_quartet", 0.04),
    ("accompanied_clarinet", 0.03),
    ("accompanied_flute", 0.03),
    ("violin_harpsichord", 0.03),
)
"""Ensemble weights, roughly MusicNet's mix (about half of its recordings are solo piano)."""


@dataclass(frozen=True)
class Family:
    """A group of music21 corpus scores played alike.

    ``tempo`` is the quarter-note range drawn from when the score has no metronome mark;
    ``voices``: when at least two parts carry these names, only they are played (a chorale's
    doubling horns and timpani are left out).
    """

    patterns: tuple[str, ...]
    tempo: tuple[float, float]
    excerpts_per_piece: int = 1
    ensembles: tuple[tuple[str, float], ...] = MUSICNET_MIX
    voices: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


FAMILIES = {
    "chorale": Family(("bach/bwv*.mxl",), (60, 84), voices=("Soprano", "Alto", "Tenor", "Bass")),
    "palestrina": Family(("palestrina/*.krn",), (95, 130)),
    "madrigal": Family(("monteverdi/madrigal.*.mxl",), (80, 110), exclude=("*_old.mxl",)),
    "quartet": Family(
        (
            "beethoven/*.mxl",
            "beethoven/opus*/movement*.mxl",
            "haydn/opus*/movement*.mxl",
            "mozart/k155/*.mxl",
            "mozart/k156/*.mxl",
            "mozart/k458/*.mxl",
            "mozart/k80/*.mxl",
            "schumann_robert/opus41no1/*.mxl",
        ),
        (70, 130),
        excerpts_per_piece=3,
        ensembles=(("string_quartet", 0.7), ("solo_piano", 0.2), ("wind_quintet", 0.1)),
    ),
    "keyboard": Family(
        (
            "mozart/k545/*.mxl",
            "cpebach/h186.mxl",
            "schumann_clara/polonaise_op1n*.mxl",
            "chopin/mazurka06-2.krn",
            "joplin/maple_leaf_rag.mxl",
            "schoenberg/opus19/*.mxl",
        ),
        (70, 120),
        excerpts_per_piece=3,
        ensembles=(("solo_piano", 1.0),),
    ),
}


@dataclass(frozen=True)
class Preset:
    """A corpus recipe (``conf/corpus/NAME.yaml``): recordings per split, their length, the music
    (``families``: source → weight), the windows cut from them, and how they sound.

    ``voices`` maps a split to the renderers its recordings draw from by weight (none: the system's
    default soundfont, or ``--soundfont``, renders everything); ``synth`` varies each recording's
    tuning and chorus; ``acoustics`` maps a split to the rooms and effects its recordings go through
    (a drawn room replaces FluidSynth's reverb); ``correct_latency`` plays every key early by its
    renderer's onset latency.
    """

    recordings: tuple[int, int, int]  # train, valid, test
    duration_s: tuple[float, float]
    families: tuple[tuple[str, float], ...]
    windows_per_recording: int = 250
    margin_s: float = 10.0
    workers: int = 2
    audio_format: str = "wav"
    voices: Mapping[str, tuple[Voice, ...]] | None = None
    synth: SynthRanges | None = None
    acoustics: Mapping[str, Acoustics] | None = None
    correct_latency: bool = False

    def __post_init__(self) -> None:
        """Plain values from a yaml (lists, mappings) become the tuples and dataclasses above."""
        families = self.families.items() if isinstance(self.families, Mapping) else self.families
        coerce = {
            "recordings": tuple(self.recordings),
            "duration_s": tuple(self.duration_s),
            "families": tuple((str(name), float(weight)) for name, weight in families),
        }
        for name in ("voices", "acoustics"):
            unknown = set(getattr(self, name) or ()) - set(SPLITS)
            if unknown:
                raise AmtError(f"corpus {name} for unknown splits {sorted(unknown)} (splits: {', '.join(SPLITS)})")
        if self.voices is not None:
            coerce["voices"] = {
                split: tuple(v if isinstance(v, Voice) else Voice(**v) for v in voices)
                for split, voices in self.voices.items()
            }
        if isinstance(self.synth, Mapping):
            coerce["synth"] = SynthRanges(**_tuples(self.synth))
        if self.acoustics is not None:
            coerce["acoustics"] = {split: _acoustics(settings) for split, settings in self.acoustics.items()}
        if self.audio_format not in ("wav", "flac"):
            raise AmtError(f"corpus audio_format {self.audio_format!r}: choose wav or flac")
        for name, value in coerce.items():
            object.__setattr__(self, name, value)
        unknown = {name for name, _ in self.families} - set(FAMILIES) - set(PROCEDURAL)
        if unknown:
            choices = ", ".join(sorted([*FAMILIES, *PROCEDURAL]))
            raise AmtError(f"corpus families {sorted(unknown)} do not exist (choose from: {choices})")

    def renderers(self, soundfont: str | Path | None = None) -> dict[str, list[tuple[Renderer, float]]]:
        """Each split's renderers and weights: the recipe's voices; for a split without voices (or every
        split, when the user names a ``soundfont``) :func:`~amt.data.render.choose_renderer`'s alone."""
        voices = {} if soundfont or self.voices is None else self.voices
        default = None
        chosen = {}
        for split in SPLITS:
            if split in voices:
                chosen[split] = [(voice.renderer(evaluation=split == "test"), voice.weight) for voice in voices[split]]
            else:
                default = default or choose_renderer(soundfont, evaluation=split == "test" and soundfont is not None)
                chosen[split] = [(default, 1.0)]
        return chosen


def _acoustics(settings: Acoustics | Mapping) -> Acoustics:
    if isinstance(settings, Acoustics):
        return settings
    settings = _tuples(settings)
    settings["rooms"] = RoomRanges(**_tuples(settings.get("rooms", {})))
    settings["effects"] = tuple(Effect(**effect) for effect in settings.get("effects", ()))
    return Acoustics(**settings)


def _tuples(settings: Mapping) -> dict:
    """A yaml mapping's ranges (lists) as tuples, as the frozen dataclasses hold them."""
    return {key: tuple(v) if isinstance(v, list) and key != "effects" else v for key, v in settings.items()}


@dataclass(frozen=True)
class Source:
    """A family that writes its performance itself instead of performing a score: ``perform(piece,
    duration_s, rng, evaluation)``. ``pieces`` lists what it draws from (each in one split only);
    without it every recording is a new piece, in no other split by construction."""

    perform: Callable[[str, float, np.random.Generator, bool], tuple[Performance, dict]]
    pieces: Callable[[], list[str]] | None = None


PROCEDURAL = {
    "piano": Source(lambda _, duration_s, rng, evaluation: procedural_performance(duration_s, rng, evaluation)),
    "folk": Source(folk_performance, folk_tunes),
}
"""Procedural piano pieces (:mod:`amt.data.piano`) and folk tunes accompanied on the piano (:mod:`amt.data.folk`)."""

CORPUS_RECIPES = CONF_DIR / "corpus"
"""Where the presets live: one yaml per corpus recipe."""


def preset_names() -> list[str]:
    return sorted(path.stem for path in CORPUS_RECIPES.glob("*.yaml"))


def _recipe(name: str) -> dict:
    """``conf/corpus/NAME.yaml`` as a dict; a recipe with ``extends: BASE`` is BASE with its top-level
    keys replaced by the recipe's (a whole ``voices`` or ``families``, not parts of one)."""
    from omegaconf import OmegaConf

    path = CORPUS_RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise AmtError(f"unknown synth corpus preset {name!r}; presets: {', '.join(preset_names())}")
    recipe = OmegaConf.to_container(OmegaConf.load(path))
    base = recipe.pop("extends", None)
    return {**_recipe(base), **recipe} if base else recipe


def load_preset(name: str) -> Preset:
    """The recipe ``conf/corpus/NAME.yaml``, instantiated (one clear line for an unknown name)."""
    from hydra.utils import instantiate

    return instantiate(_recipe(name), _convert_="all")


# --- planning: which pieces, which split ---------------------------------------------------------


@dataclass(frozen=True)
class RecordingPlan:
    """One recording to make: excerpt ``excerpt`` of ``excerpts`` of ``piece`` (a corpus path)."""

    id: str
    split: str
    family: str
    piece: str
    excerpt: int
    excerpts: int


def _piece_key(relative: str) -> str:
    """Versions of one piece share a key: ``bach/bwv18.5-lz.mxl`` and ``bach/bwv18.5-w.mxl``."""
    folder, _, name = relative.rpartition("/")
    return f"{folder}/{name.split('-')[0].rsplit('.', 1)[0]}"


def candidates(family: Family) -> list[str]:
    """The family's pieces (corpus-relative paths), sorted, one version of each."""
    root = corpus_folder()
    found = sorted({p.relative_to(root).as_posix() for pattern in family.patterns for p in root.glob(pattern)})
    kept: dict[str, str] = {}
    for path in found:
        if not any(fnmatch.fnmatch(path, pattern) for pattern in family.exclude):
            kept.setdefault(_piece_key(path), path)
    return sorted(kept.values())


def apportion(total: int, weights: Sequence[tuple[str, float]]) -> dict[str, int]:
    """Split ``total`` by ``weights`` into integers that sum to it (largest remainders)."""
    names = [name for name, _ in weights]
    shares = np.array([w for _, w in weights], dtype=np.float64)
    exact = total * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(names, counts.tolist(), strict=True))


def plan_recordings(preset: Preset, seed: int) -> list[RecordingPlan]:
    """Which excerpt of which piece each recording is, and its split; no piece is in two splits."""
    rng = np.random.default_rng(seed)
    pools = {}
    for name, _ in preset.families:
        if name not in PROCEDURAL:
            pools[name] = [str(p) for p in rng.permutation(candidates(FAMILIES[name]))]
        elif PROCEDURAL[name].pieces is not None:
            pools[name] = [str(p) for p in rng.permutation(PROCEDURAL[name].pieces())]
    plans = []
    for split, count in zip(SPLITS, preset.recordings, strict=True):
        for name, n in apportion(count, preset.families).items():
            if name not in pools:
                plans += [RecordingPlan("", split, name, f"procedural/{name}/{split}-{k}", 0, 1) for k in range(n)]
                continue
            needed = n if name in PROCEDURAL else math.ceil(n / FAMILIES[name].excerpts_per_piece)
            pieces, pools[name] = pools[name][:needed], pools[name][needed:]
            if n and not pieces:
                raise AmtError(f"the synth corpus needs more '{name}' pieces than music21's corpus has")
            for j, piece in enumerate(pieces):
                excerpts = n // len(pieces) + (j < n % len(pieces))
                plans += [RecordingPlan("", split, name, piece, k, excerpts) for k in range(excerpts)]
    return [replace(plan, id=str(FIRST_ID + i)) for i, plan in enumerate(plans)]


# --- recordings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PieceJob:
    """Every recording of one piece (parsed once), for one worker: the recipe, and each split's
    renderers with their weights."""

    plans: tuple[RecordingPlan, ...]
    preset: Preset
    renderers: Mapping[str, list[tuple[Renderer, float]]]
    seed: int
    folder: Path
    room: Room | None = None
    """Render every recording in this room instead of its own (see :func:`rerender_split`)."""


def plan_performance(
    plan: RecordingPlan, score: Score, seed: int, duration_s: tuple[float, float]
) -> tuple[Performance, dict]:
    """Excerpt, arrange and perform one recording; returns the performance and its corpus.json entry.

    The excerpt is aimed at a length drawn from ``duration_s`` for the whole recording: the score
    time left after the lead-in and the tail, less what the performance will stretch.
    """
    rng = np.random.default_rng([seed, int(plan.id)])
    family = FAMILIES[plan.family]
    music_s = (rng.uniform(*duration_s) - np.mean(LEAD_IN_S) - TAIL_S) / PERFORMED_STRETCH
    rough_bpm = score.tempi[0][1] if score.tempi else float(np.mean(family.tempo))
    first = start_bar(score, plan.excerpt, plan.excerpts, music_s * rough_bpm / 60, rng)
    bpm = score.tempo_at(float(score.bars[first])) or rng.uniform(*family.tempo)
    bpm = float(np.clip(bpm, 40, 180) * rng.uniform(0.92, 1.08))
    excerpt = cut_excerpt(score, first, music_s * bpm / 60)
    ensemble = choose_ensemble(family.ensembles, len(np.unique(excerpt.notes.part)), rng)
    players = arrange(excerpt, ENSEMBLES[ensemble])
    performance = perform(excerpt, players, bpm, rng)
    entry = {
        "id": plan.id,
        "split": plan.split,
        "piece": plan.piece,
        "family": plan.family,
        "ensemble": ensemble,
        "instruments": [p.instrument.name for p in players],
        "score_spans": [list(span) for span in excerpt.spans],
        "quarter_bpm": round(bpm, 1),
        "duration_s": round(performance.n_samples / SAMPLE_RATE, 3),
        "notes": len(performance.labels),
        **performance_summary(performance),
    }
    return performance, entry


def performance_summary(performance: Performance) -> dict:
    """What a recording's labels cannot tell: its key velocities (5th, 50th, 95th percentile) and the
    share of its length with a sustain pedal down."""
    velocities = np.concatenate([track.notes[:, 3] for track in performance.tracks])
    pedalled = sum(up - down for track in performance.tracks for down, up in track.pedal)
    return {
        "velocity": [int(v) for v in np.percentile(velocities, [5, 50, 95])] if len(velocities) else [],
        "pedal_share": round(min(1.0, pedalled / (performance.n_samples / SAMPLE_RATE)), 3),
    }


def recording_files(split: str, recording_id: str, audio_format: str = "wav") -> tuple[str, str, str]:
    """A recording's audio, label csv and performance MIDI (velocities and pedal too), relative to the
    recordings folder (MusicNet layout, with ``{split}_midi`` beside it)."""
    return (
        f"{split}_data/{recording_id}.{audio_format}",
        f"{split}_labels/{recording_id}.csv",
        f"{split}_midi/{recording_id}.mid",
    )


def plan_procedural(plan: RecordingPlan, seed: int, duration_s: tuple[float, float]) -> tuple[Performance, dict]:
    """Write and perform one recording of a procedural source; returns it and its corpus.json entry."""
    rng = np.random.default_rng([seed, int(plan.id)])
    source = PROCEDURAL[plan.family]
    performance, details = source.perform(plan.piece, float(rng.uniform(*duration_s)), rng, plan.split == "test")
    entry = {
        "id": plan.id,
        "split": plan.split,
        "piece": plan.piece,
        "family": plan.family,
        "ensemble": "solo_piano",
        "duration_s": round(performance.n_samples / SAMPLE_RATE, 3),
        "notes": len(performance.labels),
        **performance_summary(performance),
        **details,
    }
    return performance, entry


def make_recording(plan: RecordingPlan, job: PieceJob, performance: Performance, entry: dict) -> dict:
    """Render and write one performed recording (audio, then csv); returns its corpus.json entry.

    How it sounds (renderer, synthesiser settings, room and effects) is drawn from a generator of its
    own, so a recipe without voices or acoustics renders exactly what it did before they existed.
    """
    preset, rng = job.preset, np.random.default_rng([job.seed, int(plan.id), 1])
    choices = job.renderers[plan.split]
    weights = np.array([weight for _, weight in choices], dtype=np.float64)
    renderer = choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]
    settings = preset.synth.draw(rng) if preset.synth else SynthSettings()
    acoustics = (preset.acoustics or {}).get(plan.split)
    chain = acoustics.draw(rng) if acoustics else None
    room = job.room or performance.room
    if chain is not None and chain.room is not None:
        room = replace(room, level=0.0)  # the simulated room replaces FluidSynth's reverb
    tracks = played_early(performance.tracks, renderer) if preset.correct_latency else performance.tracks
    audio = renderer.render(tracks, performance.n_samples, room, settings, rng)
    if chain is not None:
        audio = chain.apply(audio)
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak) or peak == 0:
        raise AmtError(f"{plan.piece}: {renderer.name} rendered recording {plan.id} silent or non-finite")
    audio_file, csv, midi = recording_files(plan.split, plan.id, preset.audio_format)
    save_audio(job.folder / audio_file, audio * (performance.peak / peak))
    write_musicnet_csv(job.folder / csv, performance.labels)
    write_atomically(job.folder / midi, ".mid", performance_midi(performance.tracks).write)
    if preset.voices is None and chain is None and preset.synth is None:
        return entry
    sounds = {"renderer": renderer.name, "sounds": renderer.soundfont.name if renderer.soundfont else None}
    tuning = {key: round(value, 2) for key, value in asdict(settings).items() if value}
    return {**entry, **sounds, **({"synth": tuning} if tuning else {}), **(chain.describe() if chain else {})}


def run_job(job: PieceJob) -> list[dict]:
    """Worker entry point: parse the piece once (or write it), make each of its recordings."""
    name = job.plans[0].family
    duration_s = job.preset.duration_s
    if name in PROCEDURAL:
        return [make_recording(p, job, *plan_procedural(p, job.seed, duration_s)) for p in job.plans]
    score = load_score(job.plans[0].piece, FAMILIES[name].voices)
    return [make_recording(p, job, *plan_performance(p, score, job.seed, duration_s)) for p in job.plans]


def piece_jobs(plans: Sequence[RecordingPlan], **common) -> list[PieceJob]:
    """One job per piece, the costliest first (big scores parse slowly) so the pool ends together;
    a procedural piece costs no parsing."""
    by_piece: dict[str, list[RecordingPlan]] = {}
    for plan in plans:
        by_piece.setdefault(plan.piece, []).append(plan)
    root = corpus_folder()

    def cost(piece: str) -> int:
        size = 0 if by_piece[piece][0].family in PROCEDURAL else (root / piece).stat().st_size
        return size * len(by_piece[piece])

    order = sorted(by_piece, key=lambda piece: -cost(piece))
    return [PieceJob(plans=tuple(by_piece[piece]), **common) for piece in order]


def completed_jobs(jobs: Sequence[PieceJob], workers: int):
    """Yield each job's entries as it finishes: here when ``workers`` is 1, else in a process pool."""
    if workers <= 1:
        for job in jobs:
            yield run_job(job)
        return
    # spawn, not fork: the caller may hold threads (torch, Lightning) that fork would copy broken
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_job, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def corpus_statistics(entries: Sequence[dict]) -> dict:
    """Recordings, pieces and hours per split; counts of ensembles and families."""
    statistics: dict = {}
    for split in SPLITS:
        mine = [e for e in entries if e["split"] == split]
        statistics[split] = {
            "recordings": len(mine),
            "pieces": len({e["piece"] for e in mine}),
            "duration_s": round(sum(e["duration_s"] for e in mine), 1),
            "notes": sum(e["notes"] for e in mine),
        }
    for key, total in (("ensemble", "ensembles"), ("family", "families")):
        statistics[total] = {name: sum(e[key] == name for e in entries) for name in sorted({e[key] for e in entries})}
    return statistics


# --- the corpus ---------------------------------------------------------------------------------


class SynthCorpus:
    """Windows source: the offline MusicNet-like corpus.

    ``ROOT/recordings`` holds the recordings in MusicNet layout and ``ROOT/corpus.json`` (written
    when they are complete) their parameters and one entry per recording; ``ROOT/windows`` holds
    mini-MusicNet-format windows cut from them.
    """

    def __init__(
        self,
        root: str | Path,
        preset: str = "mini",
        seed: int = 0,
        soundfont: str | Path | None = None,
        workers: int | None = None,
        progress: bool = True,
    ):
        self.root = Path(root)
        self.preset_name, self.preset = preset, load_preset(preset)
        self.seed = seed
        self.soundfont = soundfont
        self.workers = workers if workers is not None else min(self.preset.workers, os.cpu_count() or 1)
        self.progress = progress

    @property
    def recordings_dir(self) -> Path:
        return self.root / "recordings"

    @property
    def windows_dir(self) -> Path:
        return self.root / "windows"

    @property
    def splits(self) -> list[str]:
        """The splits the recipe makes recordings for (a training-only corpus has no others)."""
        return [split for split, count in zip(SPLITS, self.preset.recordings, strict=True) if count]

    def params(self, renderers: Mapping[str, list[tuple[Renderer, float]]]) -> dict:
        """The cache key: everything that changes the recordings (not the worker count)."""
        import music21

        settings = {k: v for k, v in asdict(self.preset).items() if k != "workers"}
        return as_json(
            {
                "version": CORPUS_VERSION,
                "preset": self.preset_name,
                "preset_settings": settings,
                "seed": self.seed,
                "music21": music21.__version__,
                "renderers": {split: [[r.params(), w] for r, w in choices] for split, choices in renderers.items()},
            }
        )

    def prepare(self) -> Path:
        """Build what is missing or stale (recordings, then windows) and return the windows folder."""
        renderers = self.preset.renderers(self.soundfont)
        params = self.params(renderers)
        if not self.recordings_complete(params):
            self.build_recordings(renderers, params)
        window_params = {
            "corpus": params,
            "windows_per_recording": self.preset.windows_per_recording,
            "margin_s": self.preset.margin_s,
        }
        if not windows_complete(self.windows_dir, window_params):
            splits = {split: find_recordings(self.recordings_dir, split) for split in self.splits}
            write_windows(
                splits,
                self.windows_dir,
                self.preset.windows_per_recording,
                self.preset.margin_s,
                params=window_params,
                progress=self.progress,
            )
        return self.windows_dir

    def recordings_complete(self, params: dict) -> bool:
        """Whether corpus.json records a finished build with ``params`` whose files are all present."""
        try:
            record = json.loads((self.root / CORPUS_JSON).read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(record, dict) or record.get("params") != params:
            return False
        folder, audio_format = self.recordings_dir, self.preset.audio_format
        return all(
            (folder / name).is_file()
            for e in record.get("recordings", [])
            for name in recording_files(e["split"], e["id"], audio_format)
        )

    def _built_files(self) -> list[str]:
        """The recordings an earlier build's corpus.json lists (amt's own manifest)."""
        try:
            record = json.loads((self.root / CORPUS_JSON).read_text())
            audio_format = record["params"]["preset_settings"].get("audio_format", "wav")
            entries = record["recordings"]
            return [name for e in entries for name in recording_files(e["split"], e["id"], audio_format)]
        except (OSError, ValueError, TypeError, KeyError):
            return []

    def build_recordings(self, renderers: Mapping[str, list[tuple[Renderer, float]]], params: dict) -> None:
        """Render every recording afresh, then write corpus.json (so an interrupted build has none).

        Only files an earlier build wrote are replaced; a recordings folder holding anything else is
        refused before anything is written (:func:`amt.files.take_folder`).
        """
        plans = plan_recordings(self.preset, self.seed)
        planned = [name for plan in plans for name in recording_files(plan.split, plan.id, self.preset.audio_format)]
        take_folder(self.recordings_dir, planned, "a synth corpus", known=self._built_files(), keep=FEATURE_CACHES)
        (self.root / CORPUS_JSON).unlink(missing_ok=True)
        jobs = piece_jobs(plans, preset=self.preset, renderers=renderers, seed=self.seed, folder=self.recordings_dir)
        names = sorted({renderer.name for choices in renderers.values() for renderer, _ in choices})
        entries = []
        with Progress(disable=not self.progress) as bar:
            task = bar.add_task(f"synth corpus ({', '.join(names)})", total=len(plans))
            for done in completed_jobs(jobs, self.workers):
                entries += done
                bar.advance(task, len(done))
        entries.sort(key=lambda entry: int(entry["id"]))
        write_json(
            {"params": params, "statistics": corpus_statistics(entries), "recordings": entries}, self.root / CORPUS_JSON
        )


UNSEEN_ROOM = Room(size=0.95, damping=0.05, width=1.0, level=0.95)
"""A large, bright, wet hall: every reverb setting outside the ranges the corpus draws its rooms from."""


def rerender_split(
    preset: str,
    seed: int,
    split: str,
    soundfont: str | Path,
    out: str | Path,
    room: Room | None = UNSEEN_ROOM,
    workers: int | None = None,
) -> Path:
    """The same performances as one split of a corpus (same notes and labels), rendered with another
    soundfont and room, in MusicNet layout under ``out``: a test set of timbres and a hall that
    training never heard. FluidSynth and the soundfont are required (no harmonic fallback here).
    """
    recipe = replace(load_preset(preset), voices=None, synth=None, acoustics=None, correct_latency=False)
    if split not in SPLITS:
        raise AmtError(f"unknown split {split!r} (choose from: {', '.join(SPLITS)})")
    renderer = choose_renderer(soundfont, evaluation=split == "test")
    if renderer.soundfont is None:
        raise AmtError(f"cannot render with {soundfont}: FluidSynth or the soundfont is missing")
    out = Path(out)
    plans = [plan for plan in plan_recordings(recipe, seed) if plan.split == split]
    files = [name for plan in plans for name in recording_files(plan.split, plan.id, recipe.audio_format)]
    take_folder(out, files, f"a re-rendered {split} split", keep=FEATURE_CACHES)
    jobs = piece_jobs(plans, preset=recipe, renderers={split: [(renderer, 1.0)]}, seed=seed, folder=out, room=room)
    with Progress() as bar:
        task = bar.add_task(f"{split} split with {Path(soundfont).name}", total=len(plans))
        for done in completed_jobs(jobs, workers or min(recipe.workers, os.cpu_count() or 1)):
            bar.advance(task, len(done))
    return out
