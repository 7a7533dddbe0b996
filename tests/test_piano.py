"""amt/data/piano.py: procedural piano music (harmony, textures, the whole keyboard) and its performance."""

import json

import numpy as np
import pytest

from amt.data.piano import (
    HARMONIC_MINOR,
    HIGHEST_KEY,
    LOWEST_KEY,
    MAJOR,
    compose,
    procedural_performance,
    progression,
)
from amt.data.render import choose_renderer
from amt.data.synth import SynthCorpus, load_preset, plan_recordings
from amt.grid import SAMPLE_RATE
from amt.labels import read_musicnet_csv


@pytest.fixture(scope="module")
def performances():
    return [procedural_performance(30.0, np.random.default_rng(seed)) for seed in range(24)]


def test_chords_come_from_the_key_and_phrases_close_on_a_cadence():
    rng = np.random.default_rng(0)
    for tonic, minor in ((0, False), (9, True), (6, False)):
        phrases = [(0.0, 8.0), (8.0, 16.0)]
        chords = progression(tonic, minor, phrases, 1.0, rng)
        scale = {(tonic + step) % 12 for step in (HARMONIC_MINOR if minor else MAJOR)}
        assert all(set(chord.tones) <= scale and chord.bass in chord.tones for chord in chords)
        for _, end in phrases:
            last, before = [c for c in chords if c.start < end][-1], [c for c in chords if c.start < end][-2]
            assert last.tones[0] == tonic and before.tones[0] == (tonic + 7) % 12  # V–I
            assert last.bass == tonic  # the cadence lands in root position


def test_the_music_spans_the_keyboard_and_the_repertoire_s_range_of_speeds(performances):
    notes = np.concatenate([p.labels.note for p, _ in performances])
    assert notes.min() >= LOWEST_KEY and notes.max() <= HIGHEST_KEY
    assert notes.min() <= 24 and notes.max() >= 102  # the lowest and the highest octaves are played
    rates = [len(p.labels) / (p.n_samples / SAMPLE_RATE) for p, _ in performances]
    assert min(rates) < 6 and max(rates) > 15  # from chorale-like to virtuosic
    assert {entry["character"] for _, entry in performances} == {"chorale", "song", "classical", "virtuosic"}
    polyphony = max(int(((p.labels.start <= s) & (p.labels.end > s)).sum()) for p, _ in performances
                    for s in p.labels.start)  # fmt: skip
    assert polyphony >= 7
    velocities = np.concatenate([p.tracks[0].notes[:, 3] for p, _ in performances])
    assert velocities.min() <= 20 and velocities.max() >= 120


def test_labels_are_the_keys_held_and_the_pedal_only_extends_the_sound(performances):
    for performance, entry in performances:
        track, labels = performance.tracks[0], performance.labels
        played = sorted(
            (round(on * SAMPLE_RATE), round(off * SAMPLE_RATE), int(key)) for on, off, key, _ in track.notes
        )
        assert played == sorted(zip(labels.start.tolist(), labels.end.tolist(), labels.note.tolist(), strict=True))
        assert np.all(labels.end > labels.start)
        for key in np.unique(labels.note):  # one key is never held twice at once
            mine = np.sort(labels.start[labels.note == key])
            ends = labels.end[labels.note == key][np.argsort(labels.start[labels.note == key])]
            assert np.all(ends[:-1] <= mine[1:])
        assert entry["pedal"] == bool(track.pedal)
        assert all(down < up for down, up in track.pedal)
        assert performance.n_samples / SAMPLE_RATE > max(labels.end) / SAMPLE_RATE  # the tail is kept
    assert sum(bool(p.tracks[0].pedal) for p, _ in performances) >= len(performances) // 2


def test_the_melody_sounds_louder_and_a_little_ahead():
    from amt.data.piano import play

    piece = compose(20.0, np.random.default_rng(3))
    performance = play(piece, np.random.default_rng(4))
    role = {(round(n[0], 6), n[2]): n[3] for n in piece.notes}
    labels = performance.labels
    beats = {
        (onset, key): i for i, (onset, key) in enumerate(zip(labels.start_beat.round(6), labels.note, strict=True))
    }
    velocity = {}
    for (onset, key), i in beats.items():
        velocity.setdefault(role[onset, key], []).append(performance.tracks[0].notes[:, 3][i])
    assert np.mean(velocity["melody"]) > np.mean(velocity["inner"]) + 8
    leads = []  # melody key-down minus the accompaniment's, on the same beat
    for onset in np.unique(performance.labels.start_beat):
        same = performance.labels.start_beat == onset
        kinds = np.array([role[round(onset, 6), key] for key in performance.labels.note[same]])
        if "melody" in kinds and (kinds != "melody").any():
            starts = performance.labels.start[same] / SAMPLE_RATE
            leads.append(starts[kinds == "melody"].mean() - starts[kinds != "melody"].mean())
    assert len(leads) > 5 and np.mean(leads) < -0.004


def test_a_seed_gives_the_same_recording_and_another_seed_another(performances):
    again, _ = procedural_performance(30.0, np.random.default_rng(0))
    first = performances[0][0]
    assert np.array_equal(again.labels.start, first.labels.start)
    assert np.array_equal(again.labels.note, first.labels.note)
    assert not np.array_equal(performances[1][0].labels.note[:20], first.labels.note[:20])


def test_procedural_recordings_render_with_fluidsynth_into_a_corpus(tmp_path):
    plans = plan_recordings(load_preset("tiny-varied"), seed=0)
    assert sum(plan.family == "piano" for plan in plans) == 4 and len({plan.piece for plan in plans}) == len(plans)
    corpus = SynthCorpus(tmp_path / "corpus", preset="tiny-varied", progress=False)
    corpus.prepare()
    record = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    entries = [entry for entry in record["recordings"] if entry["family"] == "piano"]
    assert len(entries) == 4 and all(e["character"] and e["textures"] for e in entries)
    first = entries[0]
    labels = read_musicnet_csv(tmp_path / "corpus" / "recordings" / f"{first['split']}_labels" / f"{first['id']}.csv")
    assert len(labels) == first["notes"] and choose_renderer().name in ("fluidsynth", "harmonic")


def test_a_folk_tune_is_harmonised_in_its_key_and_accompanied_under_its_melody():
    from amt.data.folk import folk_performance, folk_tunes, harmonise, load_tune

    tunes = folk_tunes()
    assert len(tunes) > 10_000 and len(set(tunes)) == len(tunes)
    melody, bar, tonic, minor = load_tune("oneills1850/0001-0050.abc#7")  # The Little Fair Child, D major, 6/8
    assert (tonic, minor, bar) == (2, False, 3.0) and len(melody) > 40
    end = max(o + d for o, d, _ in melody)
    chords = harmonise(melody, end, bar, tonic, minor)
    assert chords[-1].tones[0] == tonic and chords[-2].tones[0] == (tonic + 7) % 12
    held = sum(d for o, d, p in melody if p % 12 in next(c for c in chords if c.start <= o < c.start + c.length).tones)
    assert held > 0.6 * sum(d for _, d, _ in melody)  # the chords hold most of the melody
    performance, details = folk_performance("oneills1850/0001-0050.abc#7", 30.0, np.random.default_rng(0))
    melody_keys = {p for _, _, p in melody}
    assert len(performance.labels) > len(melody) and any("folk melody" in t for t in details["textures"])
    assert performance.labels.note.min() < min(melody_keys)  # an accompaniment below the tune
