"""The offline corpus: real scores → performances → FluidSynth (or the harmonic fallback) → MusicNet layout."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
from music21 import duration

from amt.audio import SAMPLE_RATE, load_audio
from amt.cli import main
from amt.data import perform, render, synth
from amt.data.perform import INSTRUMENTS
from amt.data.recordings import SPLITS
from amt.data.render import Renderer, find_soundfont, fluidsynth_problem
from amt.data.synth import SynthCorpus, load_preset
from amt.errors import AmtError
from amt.labels import REPORT_NOTES, read_musicnet_csv

requires_fluidsynth = pytest.mark.skipif(
    fluidsynth_problem() is not None or find_soundfont() is None, reason="FluidSynth or a GM soundfont is missing"
)
BY_MUSICNET_ID = {instrument.musicnet_id: instrument for instrument in INSTRUMENTS.values()}


def build(root: Path, **kwargs) -> SynthCorpus:
    corpus = SynthCorpus(root, "tiny", progress=False, **kwargs)
    corpus.prepare()
    return corpus


def corpus_record(corpus: SynthCorpus) -> dict:
    return json.loads((corpus.root / synth.CORPUS_JSON).read_text())


def recording_files(corpus: SynthCorpus) -> dict[str, bytes]:
    folder = corpus.recordings_dir
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*_*/*")) if p.is_file()}


def rms_at_note_centres(wav: Path, csv: Path) -> np.ndarray:
    samples, labels = load_audio(wav), read_musicnet_csv(csv)
    centres = (labels.start + labels.end) // 2
    return np.array([np.sqrt(np.mean(samples[max(0, c - 1024) : c + 1024] ** 2)) for c in centres])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SynthCorpus:
    return build(tmp_path_factory.mktemp("synth") / "tiny")


@requires_fluidsynth
def test_tiny_preset_renders_through_fluidsynth_in_musicnet_layout(tiny):
    record = corpus_record(tiny)
    for split in SPLITS:
        [[renderer, weight]] = record["params"]["renderers"][split]
        assert renderer["renderer"] == "fluidsynth" and renderer["soundfont"] == str(find_soundfont()) and weight == 1
    for split, count in zip(SPLITS, load_preset("tiny").recordings, strict=True):
        wavs = sorted((tiny.recordings_dir / f"{split}_data").glob("*.wav"))
        csvs = sorted((tiny.recordings_dir / f"{split}_labels").glob("*.csv"))
        assert len(wavs) == len(csvs) == count
        assert [w.stem for w in wavs] == [c.stem for c in csvs]
        info = soundfile.info(wavs[0])
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    windows = json.loads((tiny.windows_dir / "windows.json").read_text())
    per_recording = load_preset("tiny").windows_per_recording
    assert windows["window_statistics"]["train"]["windows"] == load_preset("tiny").recordings[0] * per_recording
    assert np.load(tiny.windows_dir / "audio-valid.npy").shape == (2 * per_recording, 4096)


@requires_fluidsynth
def test_labels_parse_sound_in_the_audio_and_stay_in_range(tiny):
    for csv in sorted(tiny.recordings_dir.glob("*_labels/*.csv")):
        wav = csv.parent.parent / csv.parent.name.replace("_labels", "_data") / f"{csv.stem}.wav"
        labels = read_musicnet_csv(csv)
        assert len(labels) > 0
        assert labels.start.min() > 0 and labels.end.max() < soundfile.info(wav).frames
        assert np.all(rms_at_note_centres(wav, csv) > 1e-3), f"{wav} is silent where {csv} has notes"
        for instrument, note in zip(labels.instrument, labels.note, strict=True):
            played = BY_MUSICNET_ID[int(instrument)]
            assert played.low <= note <= played.high and note in REPORT_NOTES
        assert np.all(labels.end_beat > 0) and np.all(labels.start_beat >= 0)
        assert all(isinstance(value, str) and value for value in labels.note_value)


def test_splits_share_no_piece(tiny):
    pieces = {split: {e["piece"] for e in corpus_record(tiny)["recordings"] if e["split"] == split} for split in SPLITS}
    assert all(pieces.values())
    assert not pieces["train"] & pieces["valid"] and not pieces["train"] & pieces["test"]
    assert not pieces["valid"] & pieces["test"]


def test_a_second_prepare_reuses_the_cache(tiny, monkeypatch):
    files = [p for p in tiny.root.rglob("*") if p.is_file()]
    mtimes = {p: p.stat().st_mtime_ns for p in files}

    def no_render(*args, **kwargs):
        raise AssertionError("a cached corpus was rendered again")

    monkeypatch.setattr(Renderer, "render", no_render)
    assert tiny.prepare() == tiny.windows_dir
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_same_seed_gives_identical_files_and_a_changed_seed_rebuilds(tiny, tmp_path):
    again = build(tmp_path / "again")
    assert recording_files(again) == recording_files(tiny)
    other = build(tmp_path / "again", seed=1)
    assert corpus_record(other)["params"]["seed"] == 1
    assert recording_files(other) != recording_files(tiny)
    assert json.loads((other.windows_dir / "windows.json").read_text())["params"]["corpus"]["seed"] == 1


def test_a_soundfont_the_user_named_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_SOUNDFONT", raising=False)
    with pytest.raises(AmtError, match=r"missing.sf2: cannot render with this soundfont \(no such file\)"):
        build(tmp_path / "named", soundfont=tmp_path / "missing.sf2")
    assert not (tmp_path / "named").exists()
    monkeypatch.setenv("AMT_SOUNDFONT", str(tmp_path / "also-missing.sf2"))
    with pytest.raises(AmtError, match="also-missing.sf2: cannot render"):
        build(tmp_path / "named")


def test_no_system_soundfont_falls_back_to_the_harmonic_synthesiser_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "SYSTEM_SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = build(tmp_path / "harmonic")
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "harmonic" in str(caught[0].message) and "none.sf2" in str(caught[0].message)
    assert {r["renderer"] for [[r, _]] in corpus_record(corpus)["params"]["renderers"].values()} == {"harmonic"}
    csv = next(corpus.recordings_dir.glob("train_labels/*.csv"))
    assert np.all(rms_at_note_centres(corpus.recordings_dir / "train_data" / f"{csv.stem}.wav", csv) > 1e-3)


def test_an_interrupted_build_leaves_no_corpus_json(tmp_path, monkeypatch):
    real_render, calls = Renderer.render, []

    def failing_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real_render(self, *args, **kwargs)

    monkeypatch.setattr(Renderer, "render", failing_third)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(tmp_path / "broken")
    assert not (tmp_path / "broken" / synth.CORPUS_JSON).exists()
    assert not (tmp_path / "broken" / "windows").exists()


def test_unknown_preset_is_one_clear_error(tmp_path):
    with pytest.raises(
        AmtError,
        match="unknown synth corpus preset 'huge'; presets: halls, mini, piano-uiowa, tiny, tiny-varied, varied",
    ):
        SynthCorpus(tmp_path, "huge")


def test_a_training_only_corpus_builds_without_the_other_splits(tmp_path, monkeypatch, capsys):
    recipes = tmp_path / "corpus"
    recipes.mkdir()
    (recipes / "tiny.yaml").write_text((synth.CORPUS_RECIPES / "tiny.yaml").read_text())
    (recipes / "tiny-train.yaml").write_text("extends: tiny\nrecordings: [2, 0, 0]\n")
    monkeypatch.setattr(synth, "CORPUS_RECIPES", recipes)
    main(["data", "synth", "--preset", "tiny-train", "--out", str(tmp_path / "built")])
    assert "corpus ready" in capsys.readouterr().out
    corpus = SynthCorpus(tmp_path / "built", "tiny-train", progress=False)
    assert corpus.splits == ["train"]
    entries = json.loads((corpus.root / synth.CORPUS_JSON).read_text())["recordings"]
    assert [entry["split"] for entry in entries] == ["train"] * 2
    assert sorted(p.name for p in corpus.recordings_dir.iterdir() if not p.name.startswith(".")) == [
        "train_data", "train_labels", "train_midi"
    ]  # fmt: skip


def test_a_recipe_extends_another_by_replacing_its_top_level_keys():
    extra, varied = load_preset("piano-uiowa"), load_preset("varied")
    assert extra.acoustics == varied.acoustics and extra.synth == varied.synth
    assert extra.duration_s == varied.duration_s and extra.audio_format == varied.audio_format
    assert extra.recordings == (300, 0, 0) and extra.families == (("piano", 1.0),)
    assert extra.voices == {"train": (render.Voice("sampler", "uiowa"),)}


def test_the_halls_recipe_is_varied_in_large_wet_rooms_with_a_validation_split_of_its_own():
    halls, varied = load_preset("halls"), load_preset("varied")
    assert halls.voices == varied.voices and halls.families == varied.families and halls.recordings == (300, 30, 0)
    for split in ("train", "valid"):
        rooms = halls.acoustics[split].rooms
        assert (
            rooms.probability == 1.0 and rooms.rt60_s[0] < varied.acoustics["train"].rooms.rt60_s[1] < rooms.rt60_s[1]
        )
        assert halls.acoustics[split].effects == ()


def test_mini_plan_matches_mini_musicnet_and_splits_by_piece():
    plans = synth.plan_recordings(load_preset("mini"), seed=0)
    assert [sum(p.split == s for p in plans) for s in SPLITS] == [250, 40, 40]
    assert len({p.id for p in plans}) == 330
    split_of: dict[str, str] = {}
    for plan in plans:
        assert split_of.setdefault(synth._piece_key(plan.piece), plan.split) == plan.split
    assert synth.plan_recordings(load_preset("mini"), seed=0) == plans


def test_note_values_use_musicnet_names():
    def value(kind: str, dots: int = 0, triplet: bool = False) -> str:
        d = duration.Duration(kind, dots=dots)
        if triplet:
            d.appendTuplet(duration.Tuplet(3, 2))
        return perform.note_value(d)

    assert value("quarter") == "Quarter" and value("half", dots=1) == "Dotted Half"
    assert value("16th") == "Sixteenth" and value("32nd") == "Thirty Second"
    assert value("eighth", triplet=True) == "Triplet" and value("quarter", triplet=True) == "Triplet Quarter"


def test_parts_are_arranged_for_the_ensemble_and_fitted_to_ranges():
    ranked = [3, 0, 2, 1]
    assert perform.assign_parts(ranked, perform.ENSEMBLES["piano_trio"]) == [
        ("violin", [3]),
        ("cello", [1]),
        ("piano", [0, 2]),
    ]
    assert perform.assign_parts([0, 1, 2], perform.ENSEMBLES["string_quartet"]) == [
        ("violin", [0]),
        ("violin", [1]),
        ("cello", [2]),
    ]
    winds = perform.assign_parts([0, 1, 2, 3], perform.ENSEMBLES["wind_quintet"])
    assert [name for name, _ in winds] == ["flute", "oboe", "clarinet", "bassoon"]
    assert perform.assign_parts(list(range(5)), perform.ENSEMBLES["string_quartet"])[0] == ("violin", [0, 1])
    flute = perform.fit_range(np.array([48, 52, 55, 60]), INSTRUMENTS["flute"])
    assert flute.tolist() == [60, 64, 67, 72]
    cello = perform.fit_range(np.array([40, 60, 95]), INSTRUMENTS["cello"])
    assert cello.tolist() == [40, 60, 71]


def test_one_player_never_sounds_one_key_twice():
    pitch = np.array([60, 60, 60, 64])
    start = np.array([0.0, 0.01, 0.5, 0.0])
    end = np.array([0.6, 0.4, 1.0, 1.0])
    keep = perform.separate_repeats(pitch, start, end)
    assert keep.tolist() == [True, False, True, True]
    assert end[0] == pytest.approx(0.49) and end[2] == 1.0


def test_soundfont_lookup_prefers_the_argument_then_the_environment(tmp_path, monkeypatch):
    named, env = tmp_path / "named.sf2", tmp_path / "env.sf2"
    named.write_bytes(b"sf2")
    env.write_bytes(b"sf2")
    monkeypatch.setenv("AMT_SOUNDFONT", str(env))
    assert find_soundfont(named) == named.resolve()
    assert find_soundfont() == env.resolve()
    assert find_soundfont(tmp_path / "missing.sf2") is None


@pytest.mark.slow
def test_a_process_pool_builds_the_same_corpus(tiny, tmp_path):
    pooled = build(tmp_path / "pooled", workers=2)
    assert recording_files(pooled) == recording_files(tiny)


@requires_fluidsynth
def test_a_split_rerendered_in_an_unseen_hall_keeps_the_notes_and_changes_the_sound(tiny, tmp_path):
    out = synth.rerender_split("tiny", tiny.seed, "test", find_soundfont(), tmp_path / "unseen", workers=1)
    originals = sorted((tiny.recordings_dir / "test_labels").glob("*.csv"))
    assert [p.name for p in sorted((out / "test_labels").glob("*.csv"))] == [p.name for p in originals]
    for original in originals:
        assert (out / "test_labels" / original.name).read_bytes() == original.read_bytes()
        before = load_audio(tiny.recordings_dir / "test_data" / f"{original.stem}.wav")
        after = load_audio(out / "test_data" / f"{original.stem}.wav")
        assert len(after) == len(before) and not np.allclose(after, before, atol=1e-3)
    with pytest.raises(AmtError, match="unknown split"):
        synth.rerender_split("tiny", 0, "dev", find_soundfont(), tmp_path / "x")


@pytest.mark.skipif(fluidsynth_problem() is not None, reason="needs FluidSynth to reach the soundfont check")
def test_evaluation_only_soundfonts_never_render_training_or_validation_recordings(tmp_path, monkeypatch):
    monkeypatch.delenv("AMT_SOUNDFONT", raising=False)
    timgm, musescore = tmp_path / "TimGM6mb.sf2", tmp_path / "MuseScore_General.sf3"
    for path in (timgm, musescore):
        path.write_bytes(b"a soundfont amt must not train on")
    (tmp_path / "default-GM.sf2").symlink_to(timgm)  # Debian's default link may point at one
    for soundfont in (timgm, musescore, tmp_path / "default-GM.sf2"):
        with pytest.raises(AmtError, match="an evaluation-only soundfont; it renders test sets only"):
            build(tmp_path / "corpus", soundfont=soundfont)
    for split in ("train", "valid"):
        with pytest.raises(AmtError, match="evaluation-only"):
            synth.rerender_split("tiny", 0, split, musescore, tmp_path / f"rerendered-{split}")
        assert not (tmp_path / f"rerendered-{split}").exists()
    monkeypatch.setattr(render, "SYSTEM_SOUNDFONTS", (str(tmp_path / "default-GM.sf2"),))
    assert render.find_soundfont() is None  # passed over as a default: the harmonic fallback says so


@pytest.fixture(scope="module")
def varied(tmp_path_factory) -> SynthCorpus:
    corpus = SynthCorpus(tmp_path_factory.mktemp("varied") / "corpus", "tiny-varied", progress=False)
    corpus.prepare()
    return corpus


@requires_fluidsynth
def test_a_varied_recipe_draws_its_sounds_per_split_and_records_them(varied):
    entries = corpus_record(varied)["recordings"]
    assert all((varied.recordings_dir / f"{e['split']}_data" / f"{e['id']}.flac").is_file() for e in entries)
    by_split = {split: {e["sounds"] for e in entries if e["split"] == split} for split in SPLITS}
    assert by_split["valid"] == {"sf_GMbank.sf2"}
    assert by_split["test"] <= {"MuseScore_General_Full.sf3", "TimGM6mb.sf2"}
    assert {e["family"] for e in entries} == {"piano", "folk", "chorale"}
    assert all("effects" in e and "renderer" in e for e in entries)
    assert all(e["room"]["rt60_s"] >= 1.8 for e in entries if e["split"] == "test")  # halls training never had
    labels = read_musicnet_csv(next(varied.recordings_dir.glob("train_labels/*.csv")))
    assert len(labels) > 0


def test_no_recipe_trains_or_validates_on_an_evaluation_only_soundfont():
    """Fails as soon as a corpus recipe lets TimGM6mb or MuseScore General render a training or validation
    recording, whatever name or path it uses for them."""
    for recipe in synth.preset_names():
        preset = load_preset(recipe)
        for split, voices in (preset.voices or {}).items():
            for voice in voices:
                if voice.sounds is None:
                    continue
                path = Path(render.SOUNDS.get(voice.sounds, voice.sounds))
                assert split == "test" or not render.evaluation_only(path), (recipe, split, voice)


@requires_fluidsynth
def test_built_training_and_validation_recordings_never_used_an_evaluation_only_soundfont(varied):
    for entry in corpus_record(varied)["recordings"]:
        if entry["split"] != "test" and entry["sounds"]:
            assert not render.evaluation_only(Path(entry["sounds"])), entry


@pytest.mark.slow
@requires_fluidsynth
def test_a_varied_recipe_builds_the_same_files_for_a_seed(varied, tmp_path):
    again = SynthCorpus(tmp_path / "again", "tiny-varied", progress=False)
    again.prepare()
    assert recording_files(again) == recording_files(varied)


def test_a_recipe_with_a_family_that_does_not_exist_is_one_line():
    with pytest.raises(AmtError, match=r"corpus families \['sonatas'\] do not exist"):
        synth.Preset((1, 1, 1), (5.0, 6.0), {"sonatas": 1.0})
    with pytest.raises(AmtError, match=r"corpus voices for unknown splits \['training'\]"):
        synth.Preset((1, 1, 1), (5.0, 6.0), {"piano": 1.0}, voices={"training": [{"synth": "additive"}]})
