"""amt/data/render.py: every synthesiser a corpus recipe may draw (real FluidSynth with Debian's soundfonts,
real TiMidity++ with freepats, the additive synthesiser), tuning, onset latency, and the evaluation-only rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from amt.data.piano import procedural_performance
from amt.data.render import (
    SOUNDS,
    Renderer,
    Room,
    SynthSettings,
    Track,
    Voice,
    evaluation_only,
    fluidsynth_problem,
    onset_latency,
    played_early,
)
from amt.errors import AmtError
from amt.grid import SAMPLE_RATE


def installed(name: str) -> bool:
    return Path(SOUNDS[name]).is_file() and (
        fluidsynth_problem() is None if name != "freepats" else bool(shutil.which("timidity"))
    )


VOICES = {
    "fluidr3": Voice("fluidsynth", "fluidr3"),
    "opl3": Voice("fluidsynth", "opl3"),
    "sf-gmbank": Voice("fluidsynth", "sf-gmbank"),
    "freepats": Voice("timidity", "freepats"),
    "additive": Voice("additive"),
}


def voice_params():
    for name, voice in VOICES.items():
        marks = (
            [] if voice.sounds is None or installed(voice.sounds) else [pytest.mark.skip(f"{name} is not installed")]
        )
        yield pytest.param(voice, id=name, marks=marks)


def sound_onset(audio: np.ndarray, after: float, threshold: float = 0.1) -> float:
    """Seconds at which the 1 ms mean envelope first reaches ``threshold`` of its peak after ``after``."""
    start = round(after * SAMPLE_RATE)
    envelope = np.convolve(np.abs(audio[start:]), np.ones(44) / 44, mode="same")
    return after + np.argmax(envelope >= threshold * envelope.max()) / SAMPLE_RATE


@pytest.mark.parametrize("voice", voice_params())
def test_every_synthesiser_sounds_where_the_notes_are_and_is_silent_before(voice):
    renderer = voice.renderer()
    notes = np.array([[0.5, 1.0, 60, 90], [1.5, 2.0, 67, 90], [2.5, 3.0, 72, 90]])
    audio = renderer.render([Track(0, "piano", notes)], 4 * SAMPLE_RATE, Room(level=0.0), rng=np.random.default_rng(0))
    assert audio.shape == (4 * SAMPLE_RATE,) and np.isfinite(audio).all()
    rms = [
        np.sqrt(np.mean(audio[round(t * SAMPLE_RATE) : round((t + 0.3) * SAMPLE_RATE)] ** 2))
        for t in (0.55, 1.55, 2.55)
    ]
    assert min(rms) > 1e-3 and np.abs(audio[: round(0.45 * SAMPLE_RATE)]).max() < 0.01 * np.abs(audio).max()


@pytest.mark.parametrize("voice", voice_params())
def test_after_latency_correction_a_performance_sounds_from_its_first_label(voice):
    renderer = voice.renderer()
    for seed in range(3):
        performance, _ = procedural_performance(8.0, np.random.default_rng(seed))
        first = performance.labels.start.min() / SAMPLE_RATE
        tracks = played_early(performance.tracks, renderer)
        audio = renderer.render(tracks, performance.n_samples, Room(level=0.0), rng=np.random.default_rng(0))
        assert abs(sound_onset(audio[: round((first + 0.1) * SAMPLE_RATE)], 0.0) - first) < 0.005


@pytest.mark.skipif(not installed("fluidr3"), reason="FluidSynth or FluidR3 is missing")
def test_a_slow_attack_is_played_early_by_its_measured_latency():
    renderer = VOICES["fluidr3"].renderer()
    latency = onset_latency(renderer, 42)  # FluidR3's cello: a slow bow stroke
    assert 0.01 < latency < 0.06 and onset_latency(renderer, 0) < 0.01
    track = Track(42, "bowed", np.array([[0.5, 1.5, 48, 80]]))
    late = renderer.render([track], 2 * SAMPLE_RATE, Room(level=0.0))
    early = renderer.render(played_early([track], renderer), 2 * SAMPLE_RATE, Room(level=0.0))
    assert sound_onset(late, 0.0) - 0.5 == pytest.approx(latency, abs=0.002)
    assert sound_onset(early, 0.0) == pytest.approx(0.5, abs=0.002)


def peak_frequency(audio: np.ndarray, low: float, high: float) -> float:
    segment = audio[round(0.6 * SAMPLE_RATE) : round(1.6 * SAMPLE_RATE)] * np.hanning(SAMPLE_RATE)
    spectrum = np.abs(np.fft.rfft(segment, 8 * SAMPLE_RATE))
    frequencies = np.fft.rfftfreq(8 * SAMPLE_RATE, 1 / SAMPLE_RATE)
    band = (frequencies > low) & (frequencies < high)
    return float(frequencies[band][np.argmax(spectrum[band])])


@pytest.mark.parametrize("voice", [v for v in voice_params() if v.values[0].synth != "timidity"])
def test_detune_and_stretch_move_the_pitch_and_keep_the_key(voice):
    renderer = voice.renderer()
    track = Track(0, "piano", np.array([[0.5, 2.0, 81, 90]]))  # A5, 880 Hz
    tuned = SynthSettings(detune_cents=30.0, stretch_cents=12.0)  # A5 is one octave above A4: +42 cents
    plain = peak_frequency(
        renderer.render([track], 2 * SAMPLE_RATE, Room(level=0.0), rng=np.random.default_rng(0)), 800, 960
    )
    moved = peak_frequency(
        renderer.render([track], 2 * SAMPLE_RATE, Room(level=0.0), tuned, np.random.default_rng(0)), 800, 960
    )
    assert 1200 * np.log2(moved / plain) == pytest.approx(42, abs=4)


def test_the_additive_synthesiser_draws_a_timbre_per_recording():
    renderer = Renderer(None, "additive")
    track = Track(0, "piano", np.array([[0.1, 1.0, 57, 90]]))
    first, again, other = (
        renderer.render([track], SAMPLE_RATE, Room(), rng=np.random.default_rng(seed)) for seed in (1, 1, 2)
    )
    assert np.array_equal(first, again)
    spectra = [np.abs(np.fft.rfft(audio[4410:30000])) for audio in (first, other)]
    assert np.corrcoef(*spectra)[0, 1] < 0.99


def test_evaluation_only_soundfonts_are_recognised_in_every_edition_and_refused_for_training(tmp_path):
    full = tmp_path / "MuseScore_General_Full.sf3"
    full.write_bytes(b"x")
    link = tmp_path / "MuseScore_General.sf3"
    link.symlink_to(full)
    assert evaluation_only(full) and evaluation_only(link) and evaluation_only(Path("/x/TimGM6mb.sf2"))
    assert not evaluation_only(Path("/x/FluidR3_GM.sf2")) and not evaluation_only(Path("/x/sf_GMbank.sf2"))
    if installed("musescore"):
        with pytest.raises(AmtError, match="evaluation-only soundfont"):
            Voice("fluidsynth", "musescore").renderer()
        assert Voice("fluidsynth", "musescore").renderer(evaluation=True).soundfont is not None


def test_a_voice_that_cannot_render_says_why():
    with pytest.raises(AmtError, match="unknown synthesiser 'moog'"):
        Voice("moog").renderer()
    with pytest.raises(AmtError, match="no such TiMidity"):
        Voice("timidity", "/nowhere/patches.cfg").renderer()
