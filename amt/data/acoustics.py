"""Rooms and microphones for rendered audio, drawn per recording from a corpus recipe's ranges.

A synthesiser's output is a close, dry, clean signal; recordings are not. Here the rendered audio is
placed in a room simulated by ``pyroomacoustics`` (a shoebox of drawn size and reverberation time,
source and microphone at drawn positions; image-source impulse response) and passed through a chain
of ``pedalboard`` effects (EQ, compression, saturation, band limits of cheap microphones and
phones, MP3 coding) and noise, each with its recipe's probability and ranges. The impulse response
is cut to start at the direct sound, so the labels stay on the notes' onsets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from amt.errors import AmtError
from amt.grid import SAMPLE_RATE

MAX_ORDER = 20
"""Image-source reflection order: beyond it the tail is a few percent of the energy and the cost grows
as its cube (20 keeps a room's simulation near 10 ms)."""
SABINE = 0.161
"""Sabine's constant (s/m): RT60 = 0.161 V / (S a); a large room cannot be drier than a = 1 allows."""
DIRECT_LEAD = 16
"""Samples of the impulse response kept before its direct-sound peak (the fractional-delay filter's
onset), so a note's sound starts where its label does."""


@dataclass(frozen=True)
class RoomRanges:
    """Which rooms a recipe draws from: ``probability`` of a room at all, its length in metres (width
    and height follow in drawn proportions), reverberation time, source–microphone distance."""

    probability: float = 0.0
    length_m: tuple[float, float] = (3.0, 25.0)
    rt60_s: tuple[float, float] = (0.15, 1.6)
    distance_m: tuple[float, float] = (0.5, 6.0)


@dataclass(frozen=True)
class ShoeboxRoom:
    dimensions: tuple[float, float, float]
    rt60_s: float
    source: tuple[float, float, float]
    microphone: tuple[float, float, float]

    @classmethod
    def draw(cls, ranges: RoomRanges, rng: np.random.Generator) -> ShoeboxRoom:
        length = math.exp(rng.uniform(*np.log(ranges.length_m)))
        width = length * rng.uniform(0.5, 0.9)
        height = min(length, max(2.4, length * rng.uniform(0.25, 0.5)))
        dimensions = (length, width, height)
        source = (
            length * rng.uniform(0.2, 0.5),
            width * rng.uniform(0.3, 0.7),
            rng.uniform(0.8, min(1.6, height - 0.3)),
        )
        distance = rng.uniform(ranges.distance_m[0], min(ranges.distance_m[1], 0.9 * (length - source[0])))
        angle = rng.uniform(-0.6, 0.6)
        microphone = tuple(
            float(np.clip(value, 0.2, limit - 0.2))
            for value, limit in zip(
                (source[0] + distance * math.cos(angle), source[1] + distance * math.sin(angle), rng.uniform(1.0, 2.5)),
                dimensions,
                strict=True,
            )
        )
        volume, surface = length * width * height, 2 * (length * width + length * height + width * height)
        shortest = 1.2 * SABINE * volume / surface  # walls that absorb nearly everything
        return cls(dimensions, max(float(rng.uniform(*ranges.rt60_s)), shortest), source, microphone)

    def impulse_response(self) -> np.ndarray:
        """The room's impulse response from source to microphone, starting at the direct sound."""
        import pyroomacoustics as pra

        absorption, order = pra.inverse_sabine(self.rt60_s, list(self.dimensions))
        room = pra.ShoeBox(
            list(self.dimensions), fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(order, MAX_ORDER)
        )
        room.add_source(list(self.source))
        room.add_microphone(list(self.microphone))
        room.compute_rir()
        response = np.asarray(room.rir[0][0], dtype=np.float64)
        direct = int(np.argmax(np.abs(response)))
        return response[max(0, direct - DIRECT_LEAD) :] / np.abs(response[direct])


@dataclass(frozen=True)
class Effect:
    """One ``pedalboard`` effect (its class name) applied with ``probability``; each parameter is a value
    or a ``[low, high]`` range drawn per recording (log-uniform for ``*_hz``)."""

    name: str
    probability: float
    parameters: Mapping[str, float | Sequence[float]] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        drawn = {}
        for key, value in self.parameters.items():
            if isinstance(value, (int, float)):
                drawn[key] = float(value)
            elif key.endswith("_hz"):
                drawn[key] = float(math.exp(rng.uniform(math.log(value[0]), math.log(value[1]))))
            else:
                drawn[key] = float(rng.uniform(value[0], value[1]))
        return drawn


@dataclass(frozen=True)
class Acoustics:
    """A recipe's rooms, effects (applied in their order) and noise (``noise_probability``, signal-to-noise
    ratio in dB drawn from ``snr_db``)."""

    rooms: RoomRanges = RoomRanges()
    effects: tuple[Effect, ...] = ()
    noise_probability: float = 0.0
    snr_db: tuple[float, float] = (20.0, 50.0)

    def __post_init__(self) -> None:
        import pedalboard

        for effect in self.effects:
            if not isinstance(getattr(pedalboard, effect.name, None), type):
                raise AmtError(f"corpus effect {effect.name!r}: pedalboard has no such effect")

    def draw(self, rng: np.random.Generator) -> Chain:
        """What one recording goes through (drawn before rendering, so it does not depend on the audio)."""
        room = ShoeboxRoom.draw(self.rooms, rng) if rng.random() < self.rooms.probability else None
        effects = [(e.name, e.draw(rng)) for e in self.effects if rng.random() < e.probability]
        snr = float(rng.uniform(*self.snr_db)) if rng.random() < self.noise_probability else None
        return Chain(room, tuple(effects), snr, int(rng.integers(2**31)))


@dataclass(frozen=True)
class Chain:
    """One recording's room, effects and noise."""

    room: ShoeboxRoom | None
    effects: tuple[tuple[str, dict[str, float]], ...]
    snr_db: float | None
    noise_seed: int

    def describe(self) -> dict:
        """For corpus.json: what was applied, rounded."""
        described: dict = {"effects": [name for name, _ in self.effects]}
        if self.room is not None:
            described["room"] = {
                "dimensions_m": [round(d, 1) for d in self.room.dimensions],
                "rt60_s": round(self.room.rt60_s, 2),
                "distance_m": round(math.dist(self.room.source, self.room.microphone), 2),
            }
        if self.snr_db is not None:
            described["snr_db"] = round(self.snr_db, 1)
        return described

    def apply(self, audio: np.ndarray) -> np.ndarray:
        """The audio in the room, through the effects, with noise; as long as it was."""
        import pedalboard
        from scipy.signal import fftconvolve

        out = audio.astype(np.float32)
        if self.room is not None:
            out = fftconvolve(out, self.room.impulse_response())[: len(audio)].astype(np.float32)
        if self.effects:
            board = pedalboard.Pedalboard([getattr(pedalboard, name)(**params) for name, params in self.effects])
            out = board(out[None, :], SAMPLE_RATE)[0, : len(audio)]
            out = np.pad(out, (0, len(audio) - len(out)))
        if self.snr_db is not None:
            power = float(np.mean(out.astype(np.float64) ** 2))
            noise = np.random.default_rng(self.noise_seed).normal(0, 1, len(out))
            out = out + (math.sqrt(power / 10 ** (self.snr_db / 10)) * noise).astype(np.float32)
        return out
