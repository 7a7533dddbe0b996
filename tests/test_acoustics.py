"""amt/data/acoustics.py: simulated rooms (real pyroomacoustics), pedalboard effects and noise, drawn from
a recipe's probabilities and ranges, that keep the notes where their labels are."""

from __future__ import annotations

import numpy as np
import pytest

from amt.data.acoustics import Acoustics, Effect, RoomRanges, ShoeboxRoom
from amt.errors import AmtError
from amt.grid import SAMPLE_RATE


def click(seconds: float = 3.0, at: float = 1.0) -> np.ndarray:
    audio = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    audio[round(at * SAMPLE_RATE)] = 1.0
    return audio


def first_sound(audio: np.ndarray) -> int:
    return int(np.argmax(np.abs(audio) > 0.1 * np.abs(audio).max()))


@pytest.mark.parametrize("seed", range(4))
def test_a_room_starts_at_the_direct_sound_and_reverberates_for_its_rt60(seed):
    rng = np.random.default_rng(seed)
    dry, wet = (
        ShoeboxRoom.draw(RoomRanges(rt60_s=(0.2, 0.3)), rng),
        ShoeboxRoom.draw(RoomRanges(rt60_s=(1.4, 1.6)), rng),
    )
    for room in (dry, wet):
        response = room.impulse_response()
        assert first_sound(response) < 0.001 * SAMPLE_RATE  # the direct sound, within a millisecond
    tail = [np.sum(room.impulse_response()[round(0.15 * SAMPLE_RATE) :] ** 2) for room in (dry, wet)]
    assert tail[1] > 5 * tail[0]
    for room in (dry, wet):
        assert all(0 < m < d for m, d in zip(room.microphone, room.dimensions, strict=True))


def test_the_chain_keeps_length_and_onsets():
    acoustics = Acoustics(
        RoomRanges(probability=1.0),
        (
            Effect("MP3Compressor", 1.0, {"vbr_quality": [2, 8]}),
            Effect("LowpassFilter", 1.0, {"cutoff_frequency_hz": [3000, 12000]}),
            Effect("Compressor", 1.0, {"threshold_db": [-30, -10], "ratio": [2, 6]}),
        ),
    )
    for seed in range(3):
        chain = acoustics.draw(np.random.default_rng(seed))
        out = chain.apply(click())
        assert len(out) == len(click()) and np.isfinite(out).all()
        assert abs(first_sound(out) - SAMPLE_RATE) < 0.002 * SAMPLE_RATE


def test_probabilities_and_ranges_are_honoured():
    effects = (
        Effect("PeakFilter", 1.0, {"cutoff_frequency_hz": [100, 10000], "gain_db": [-6, 6], "q": 1.0}),
        Effect("Distortion", 0.0, {"drive_db": [2, 10]}),
    )
    acoustics = Acoustics(RoomRanges(probability=0.0), effects)
    draws = [acoustics.draw(np.random.default_rng(seed)) for seed in range(200)]
    assert all(chain.room is None and [name for name, _ in chain.effects] == ["PeakFilter"] for chain in draws)
    cutoffs = np.array([chain.effects[0][1]["cutoff_frequency_hz"] for chain in draws])
    assert 100 <= cutoffs.min() and cutoffs.max() <= 10000 and np.median(cutoffs) < 2000  # log-uniform: median ≈ 1 kHz
    assert all(-6 <= chain.effects[0][1]["gain_db"] <= 6 and chain.effects[0][1]["q"] == 1.0 for chain in draws)


def test_noise_lands_at_the_drawn_signal_to_noise_ratio():
    acoustics = Acoustics(noise_probability=1.0, snr_db=(30.0, 30.0))
    chain = acoustics.draw(np.random.default_rng(0))
    signal = np.sin(2 * np.pi * 440 * np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    noise = chain.apply(signal) - signal
    assert 10 * np.log10(np.mean(signal**2) / np.mean(noise**2)) == pytest.approx(30.0, abs=0.5)
    assert chain.describe() == {"effects": [], "snr_db": 30.0}


def test_an_effect_pedalboard_does_not_have_is_one_line():
    with pytest.raises(AmtError, match="corpus effect 'Reverse': pedalboard has no such effect"):
        Acoustics(effects=(Effect("Reverse", 1.0),))
