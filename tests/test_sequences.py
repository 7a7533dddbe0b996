"""The context models' data path: log-frequency features, per-frame targets, crops, augmentation, models."""

import json
import math
import os
from types import SimpleNamespace

import hydra
import numpy as np
import pretty_midi
import pytest
import torch
from omegaconf import OmegaConf

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, save_audio
from amt.data.augment import SpectrogramAugment
from amt.data.recordings import Recording, find_recordings
from amt.data.sequences import (
    RandomCrops,
    SequenceDataModule,
    Tiles,
    cache_folder,
    cached_features,
    frame_targets,
    load_recording,
)
from amt.data.synth import SynthCorpus, load_preset
from amt.errors import AmtError
from amt.features import BANDS, LogFrequency, band_windows, filterbank, log_frequency_spectrogram
from amt.grid import CONTEXT_GRID, FrameGrid
from amt.labels import PIANO_KEYS, REPORT_NOTES, MusicNetLabels, write_musicnet_csv
from amt.models.context import ContextTranscriber, HarmonicStack
from amt.module import TranscriptionModule

GRID = CONTEXT_GRID
HOP = GRID.hop


def tone(midi: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t)).astype(np.float32)


@pytest.mark.parametrize(("bands", "window", "count"), [(LogFrequency(), 4096, 176), (LogFrequency(3, 24), 2048, 336)])
def test_filterbank_bands_are_weighted_means(bands, window, count):
    weights = filterbank(bands, window, SAMPLE_RATE)
    assert weights.shape == (window // 2 + 1, count) and bands.bands == count and BANDS == 176
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-5)
    assert (weights > 0).sum(axis=0).min() >= 1
    assert bands.centres_midi()[bands.bands_per_semitone * 39 : bands.bands_per_semitone * 40].mean() == 60


VARIABLE_Q = LogFrequency(shortest_window=1024)
FRONT_ENDS = [(LogFrequency(), 4096), (LogFrequency(3), 4096), (LogFrequency(), 2048), (VARIABLE_Q, 4096)]


@pytest.mark.parametrize(
    ("midi", "bands", "window"),
    # a 46 ms window's bins are 21.5 Hz apart, more than three semitones at A1: its lowest notes blur
    [
        (midi, *front_end)
        for midi in (33, 45, 60, 81, 100, 108)
        for front_end in FRONT_ENDS
        if midi >= 45 or front_end[1] == 4096
    ],
)
def test_a_tone_peaks_in_the_bands_of_its_key(midi, bands, window):
    grid = FrameGrid(HOP, window)
    features = log_frequency_spectrogram(tone(midi, 1.0), grid, bands)
    assert features.shape == (len(grid.recording_centres(SAMPLE_RATE)), bands.bands)
    peak = int(np.median(features.argmax(axis=1)))
    assert peak // bands.bands_per_semitone == midi - 21


def test_variable_q_reads_each_band_from_the_shortest_window_that_resolves_it():
    assert (band_windows(LogFrequency(), 4096, SAMPLE_RATE) == 4096).all()
    lengths = band_windows(VARIABLE_Q, 4096, SAMPLE_RATE)
    assert lengths[0] == 4096 and lengths[-1] == 1024 and set(lengths) == {4096, 2048, 1024}
    assert (np.diff(lengths) <= 0).all()  # shorter windows only ever higher up
    shorter = lengths < 4096
    assert (SAMPLE_RATE / lengths[shorter] <= VARIABLE_Q.half_widths_hz()[shorter]).all()
    assert (band_windows(LogFrequency(shortest_window=2048), 4096, SAMPLE_RATE) >= 2048).all()
    for wrong in (1000, 128, 1024.0):
        with pytest.raises(AmtError, match="shortest_window"):
            LogFrequency(shortest_window=wrong)


def test_variable_q_keeps_fast_repeated_notes_apart_in_the_upper_bands():
    """C7 struck every 70 ms (a 30 ms tone, then 40 ms of silence): a 93 ms window always holds a
    strike, a 23 ms window falls between them, so only the variable-Q bands rise and fall with each."""
    period, t = round(0.07 * SAMPLE_RATE), np.arange(round(0.03 * SAMPLE_RATE)) / SAMPLE_RATE
    burst = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((96 - 69) / 12) * t)
    audio = np.zeros(SAMPLE_RATE, dtype=np.float32)
    for start in range(0, SAMPLE_RATE - period, period):
        audio[start : start + len(burst)] = burst
    band = 2 * (96 - 21)
    steady = slice(10, -10)
    one_window = log_frequency_spectrogram(audio, GRID)[steady, band]
    variable_q = log_frequency_spectrogram(audio, GRID, VARIABLE_Q)[steady, band]
    assert variable_q.min() < 0.5 * variable_q.max()
    assert one_window.min() > 0.8 * one_window.max()


def test_each_front_end_caches_its_features_in_a_folder_of_its_own(tmp_path):
    names = {
        cache_folder(tmp_path, grid, bands).name
        for grid, bands in [
            (GRID, LogFrequency()),
            (GRID, VARIABLE_Q),
            (FrameGrid(HOP, 2048), LogFrequency()),
            (GRID, LogFrequency(3, 24)),
        ]
    }
    assert names == {"features-h1024", "features-h1024-q1024", "features-h1024-w2048", "features-h1024-k3+24"}


def test_bands_past_nyquist_are_refused():
    with pytest.raises(AmtError, match="Nyquist"):
        filterbank(LogFrequency(2, 36), 4096, 22_050)


def test_features_do_not_depend_on_the_recordings_level_and_silence_is_zero():
    np.testing.assert_allclose(
        log_frequency_spectrogram(tone(60, 0.5), GRID), log_frequency_spectrogram(tone(60, 0.5, 0.05), GRID), atol=1e-4
    )
    assert not log_frequency_spectrogram(np.zeros(SAMPLE_RATE, dtype=np.float32), GRID).any()


def write_recording(root, split, rid, notes, seconds=3.0, velocities=None):
    """A MusicNet-layout recording of sine tones: ``notes`` rows (start s, end s, MIDI pitch); with
    ``velocities``, a performance MIDI beside it (``{split}_midi/ID.mid``, as amt's corpora write)."""
    samples = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    for start, end, pitch in notes:
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        samples[a:b] += tone(pitch, (b - a) / SAMPLE_RATE, 0.3)
    save_audio(root / f"{split}_data" / f"{rid}.wav", samples)
    rows = np.array([(round(s * SAMPLE_RATE), round(e * SAMPLE_RATE), p) for s, e, p in notes], dtype=np.int64)
    labels = MusicNetLabels(
        start=rows[:, 0],
        end=rows[:, 1],
        instrument=np.ones(len(rows), dtype=np.int64),
        note=rows[:, 2],
        start_beat=np.zeros(len(rows)),
        end_beat=np.zeros(len(rows)),
        note_value=[""] * len(rows),
    )
    csv = root / f"{split}_labels" / f"{rid}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    write_musicnet_csv(csv, labels)
    if velocities is not None:
        performance = pretty_midi.PrettyMIDI()
        piano = pretty_midi.Instrument(0)
        piano.notes = [pretty_midi.Note(v, p, s, e) for (s, e, p), v in zip(notes, velocities, strict=True)]
        performance.instruments.append(piano)
        (root / f"{split}_midi").mkdir(exist_ok=True)
        performance.write(str(root / f"{split}_midi" / f"{rid}.mid"))
    return Recording(rid, root / f"{split}_data" / f"{rid}.wav", csv)


def test_frame_targets_follow_the_window_rule_and_onsets_and_offsets_fall_in_their_frame(tmp_path):
    notes = [(0.5, 1.0, 60), (2.0, 2.5, 100), (1.0, 2.9, 108), (2.5, 3.5, 40)]
    recording = write_recording(tmp_path, "train", "1", notes, seconds=4.0)
    targets = frame_targets(recording, frames=127, grid=GRID, labels=PIANO_KEYS)
    assert set(targets) == {"frame", "onset", "offset", "velocity"}
    assert all(t.shape == (127, 88) and t.dtype == np.uint8 for t in targets.values())
    centres = np.arange(127) * HOP + WINDOW_SIZE // 2
    start, end = round(0.5 * SAMPLE_RATE), round(1.0 * SAMPLE_RATE)
    np.testing.assert_array_equal(targets["frame"][:, 60 - 21], (centres >= start) & (centres < end))
    for name, time in (("onset", start), ("offset", end)):
        frame = int(np.flatnonzero(targets[name][:, 60 - 21])[0])
        assert centres[frame] - HOP // 2 <= time < centres[frame] + HOP // 2
    assert targets["onset"].sum() == 4 and targets["onset"][:, 108 - 21].sum() == 1  # C8, the top key
    assert targets["frame"][:, 108 - 21].any()
    # the note still sounding at the end has no offset; without a performance MIDI, no velocities
    assert targets["offset"].sum() == 3 and not targets["offset"][:, 40 - 21].any()
    assert not targets["velocity"].any()
    report = frame_targets(recording, frames=127, grid=GRID, labels=REPORT_NOTES)
    assert report["frame"].shape == (127, 81) and report["onset"].sum() == 3


def test_velocity_targets_come_from_the_performance_midi_at_onset_frames(tmp_path):
    notes = [(0.5, 1.0, 60), (2.0, 2.5, 72)]
    recording = write_recording(tmp_path, "train", "1", notes, velocities=[30, 110])
    targets = frame_targets(recording, frames=127, grid=GRID, labels=PIANO_KEYS)
    np.testing.assert_array_equal(targets["velocity"][targets["onset"] == 1], [30, 110])
    assert targets["velocity"].sum() == 140
    data = load_recording(recording, tmp_path / "cache", GRID, PIANO_KEYS)
    _, crop = data.crop(0, 127)
    assert crop["velocity"].max() == pytest.approx(110 / 127) and crop["onset"].dtype == torch.float32


def test_features_are_cached_and_recomputed_when_the_recording_changes(tmp_path):
    recording = write_recording(tmp_path, "train", "1", [(0.2, 1.0, 60)])
    first = cached_features(recording, tmp_path / "cache", GRID)
    assert first.dtype == np.float16 and json.loads((tmp_path / "cache" / "1.json").read_text())["hop"] == HOP
    os.utime(tmp_path / "cache" / "1.npy", (0, 0))
    assert np.array_equal(cached_features(recording, tmp_path / "cache", GRID), first)
    write_recording(tmp_path, "train", "1", [(0.2, 1.0, 72)])
    second = cached_features(recording, tmp_path / "cache", GRID)
    assert not np.array_equal(second, first)


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("valid", 1), ("test", 1)):
        for index in range(count):
            notes = [
                (s, s + 0.4, int(p)) for s, p in zip(np.arange(0.1, 2.5, 0.5), rng.integers(48, 80, 5), strict=True)
            ]
            write_recording(tmp_path, split, f"{split}{index}", notes)
    return tmp_path


def test_the_datamodule_gives_crops_with_frame_and_onset_targets(corpus):
    data = SequenceDataModule(corpus, hop=HOP, crop_frames=64, batch_size=4)
    data.prepare_data()
    data.setup("fit")
    features, targets = next(iter(data.train_dataloader()))
    assert features.shape == (4, 64, BANDS) and data.bins == BANDS
    assert {name: tuple(t.shape) for name, t in targets.items()} == dict.fromkeys(
        ("frame", "onset", "offset", "velocity"), (4, 64, 81)
    )
    assert SequenceDataModule(corpus, notes=88).labels == PIANO_KEYS
    frames = sum(len(r.features) for r in data.splits["valid"])
    covered = torch.zeros(frames, dtype=torch.bool)
    for _, start in Tiles(data.splits["valid"], 64).tiles:
        covered[start : start + 64] = True
    assert covered.all()
    assert len(data.train_dataloader().dataset) == sum(len(r.features) for r in data.splits["train"]) // 64


def test_each_data_parallel_process_draws_its_own_crops(corpus):
    """Every process is seeded alike; the datamodule offsets each one's generator by its rank."""

    def first_batch(trainer):
        torch.manual_seed(0)
        data = SequenceDataModule(corpus, hop=HOP, crop_frames=64, batch_size=4)
        data.trainer = trainer
        data.prepare_data()
        data.setup("fit")
        return next(iter(data.train_dataloader()))[0]

    alone = first_batch(None)
    rank0, rank1 = (first_batch(SimpleNamespace(world_size=2, global_rank=rank)) for rank in (0, 1))
    assert torch.equal(rank0, alone) and not torch.equal(rank1, alone)
    assert torch.equal(rank1, first_batch(SimpleNamespace(world_size=2, global_rank=1)))


def test_extra_corpora_are_built_and_join_training_only(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("extra") / "tiny"
    # As the configs give them: a mapping by name, so an experiment adds to its parent's (Hydra merges mappings).
    extra_train = {"tiny": {"_target_": "amt.data.synth.SynthCorpus", "root": str(root), "preset": "tiny", "seed": 1}}
    data = hydra.utils.instantiate(
        {"_target_": "amt.data.sequences.SequenceDataModule", "recordings": str(corpus), "hop": HOP, "crop_frames": 64},
        extra_train=OmegaConf.create(extra_train),
    )
    (extra,) = data.extra_train
    assert isinstance(extra, SynthCorpus) and extra.recordings_dir == root / "recordings"
    data.prepare_data()
    data.setup("fit")
    extra_train = find_recordings(extra.recordings_dir, "train")
    assert len(extra_train) == load_preset("tiny").recordings[0]
    assert [r.id for r in data.splits["train"]] == ["train0", "train1", "train2"] + [r.id for r in extra_train]
    assert [r.id for r in data.splits["valid"]] == ["valid0"]
    assert len(list(cache_folder(extra.recordings_dir, data.grid, data.bands).glob("*.npy"))) >= len(extra_train)


def test_spectrograms_can_be_cached_outside_the_recordings_folder(corpus, tmp_path_factory):
    """For read-only recordings (checked by what is written, since tests may run as root)."""
    before = sorted(corpus.rglob("*"))
    cache = tmp_path_factory.mktemp("cache")
    data = SequenceDataModule(corpus, hop=HOP, crop_frames=64, cache_dir=cache)
    data.prepare_data()
    data.setup("fit")
    assert sorted(corpus.rglob("*")) == before
    assert len(list(cache.glob("*.npy"))) == sum(len(split) for split in data.splits.values()) > 0


def test_recordings_shorter_than_a_crop_are_padded(corpus):
    recording = load_recording(
        Recording("train0", corpus / "train_data/train0.wav", corpus / "train_labels/train0.csv"),
        corpus / "cache",
        GRID,
        REPORT_NOTES,
    )
    features, targets = RandomCrops([recording], crop_frames=500, crops=1)._random_crop()
    assert features.shape == (500, BANDS) and not features[len(recording.features) :].any()
    assert not targets["frame"][len(recording.features) :].any()


NO_AUGMENTATION = dict(gain_db=0, eq_db=0, reverb=0, noise=0, pitch_shift=0, mix=0)


def test_augmentation_switched_off_changes_nothing():
    features = torch.rand(32, BANDS) * 3
    targets = {"frame": (torch.rand(32, 81) < 0.1).float(), "onset": (torch.rand(32, 81) < 0.02).float()}
    out, out_targets = SpectrogramAugment(**NO_AUGMENTATION)(features, dict(targets))
    torch.testing.assert_close(out, features, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(out_targets[name], target) for name, target in targets.items())


def test_pitch_shift_moves_bands_and_targets_together():
    features = torch.from_numpy(log_frequency_spectrogram(tone(60, 0.5), GRID))
    frame = torch.zeros(len(features), 88)
    frame[:, 60 - 21] = 1
    augment = SpectrogramAugment(**{**NO_AUGMENTATION, "pitch_shift": 2})
    shifts = set()
    for seed in range(20):
        torch.manual_seed(seed)
        shifted, targets = augment(features, {"frame": frame, "velocity": frame * 0.5})
        semitones = int(targets["frame"][0].argmax()) - (60 - 21)
        assert torch.equal(targets["velocity"], targets["frame"] * 0.5)
        assert int(shifted[5].argmax()) - int(features[5].argmax()) == 2 * semitones
        shifts.add(semitones)
    assert shifts == {-2, -1, 0, 1, 2}


def test_mixing_unites_targets_and_reverb_extends_notes_in_time():
    features = torch.zeros(40, BANDS)
    features[5:10, 50] = 3.0
    targets = {"frame": torch.zeros(40, 81), "onset": torch.zeros(40, 81)}
    other = (torch.zeros(40, BANDS), {"frame": torch.ones(40, 81), "onset": torch.zeros(40, 81)})
    mixed = SpectrogramAugment(**{**NO_AUGMENTATION, "mix": 1.0})(features, targets, lambda: other)[1]
    assert mixed["frame"].all() and not mixed["onset"].any()
    reverberant = SpectrogramAugment(**{**NO_AUGMENTATION, "reverb": 1.0})(features, targets)[0]
    assert reverberant[12:20, 50].min() > 0 and not reverberant[:5].any()


def test_bad_augmentation_settings_are_refused():
    with pytest.raises(AmtError, match="augment.noise"):
        SpectrogramAugment(noise=1.5)


@pytest.mark.parametrize("temporal", ["gru", "tcn"])
def test_context_models_give_onset_and_frame_logits_per_frame(temporal):
    model = ContextTranscriber(temporal=temporal, channels=4, features=32, hidden=16, levels=3)
    out = model(torch.randn(2, 50, BANDS))
    assert set(out) == {"onset", "frame"} and out["frame"].shape == out["onset"].shape == (2, 50, 81)
    assert model.labels == REPORT_NOTES  # a config without notes: the report's label space


def test_a_transcriber_predicts_all_88_keys_with_offset_and_velocity_heads():
    model = ContextTranscriber(
        temporal="tcn", channels=4, features=32, levels=2, notes=88, offsets=True, velocities=True
    )
    out = model(torch.randn(2, 30, BANDS))
    assert {name: tuple(t.shape) for name, t in out.items()} == dict.fromkeys(
        ("onset", "offset", "velocity", "frame"), (2, 30, 88)
    )
    assert model.labels == PIANO_KEYS


def test_the_tcn_hears_exactly_its_receptive_field():
    torch.manual_seed(0)
    model = ContextTranscriber(temporal="tcn", channels=4, features=16, levels=3).eval()
    x = torch.randn(1, 60, BANDS)
    changed = x.clone()
    changed[0, 45] += 5.0
    difference = (model(x)["frame"] - model(changed)["frame"]).abs().sum(dim=-1)[0]
    # 3×3 encoder convolutions (±3 frames) and dilations 1, 2, 4 (±7): frames 35..55 move, none else
    assert difference[35:56].min() > 0 and difference[:35].max() == 0 and difference[56:].max() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"bins": 128}, "bins must be 176"), ({"temporal": "rnn"}, "gru or tcn")]
)
def test_bad_context_model_settings_are_refused(kwargs, message):
    with pytest.raises(AmtError, match=message):
        ContextTranscriber(**kwargs)


def test_the_module_sums_the_heads_losses_and_scores_the_frames():
    torch.manual_seed(0)
    model = ContextTranscriber(temporal="tcn", channels=4, features=16, levels=2)
    module = TranscriptionModule(model)
    features = torch.randn(2, 20, BANDS)
    targets = {"frame": (torch.rand(2, 20, 81) < 0.1).float(), "onset": (torch.rand(2, 20, 81) < 0.05).float()}
    loss = module._step((features, targets), module.val_ap, module.val_loss)
    model.eval()
    module.eval()
    out = model(features)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(out["frame"], targets["frame"]) + bce(out["onset"], targets["onset"])
    torch.testing.assert_close(module._step((features, targets), None, module.test_loss), expected)
    assert loss.ndim == 0 and module.val_ap.update_count == 1


def test_the_velocity_loss_counts_only_onsets_with_a_known_velocity():
    module = TranscriptionModule(ContextTranscriber(channels=4, features=16, hidden=8, velocities=True))
    logits = torch.zeros(1, 4, 81)  # sigmoid 0.5 everywhere
    target = torch.zeros(1, 4, 81)
    target[0, 1, 10], target[0, 2, 20] = 1.0, 0.25
    assert float(module.head_loss("velocity", logits, target)) == pytest.approx((0.5**2 + 0.25**2) / 2)
    assert float(module.head_loss("velocity", logits, torch.zeros(1, 4, 81))) == 0.0


def test_pos_weight_weighs_a_heads_positive_targets_and_leaves_the_others_alone():
    model = ContextTranscriber(channels=4, features=16, hidden=8)
    module = TranscriptionModule(model, pos_weight={"onset": 4.0, "frame": 1.0})
    logits = torch.zeros(1, 4, 81)  # BCE log 2 per cell, positive or negative
    target = torch.zeros(1, 4, 81)
    target[0, 1, 10] = target[0, 2, 20] = 1.0
    cells, positives = target.numel(), 2
    weighted = math.log(2) * (cells - positives + 4.0 * positives) / cells
    assert float(module.head_loss("onset", logits, target)) == pytest.approx(weighted)
    assert float(module.head_loss("frame", logits, target)) == pytest.approx(math.log(2))
    assert float(module.head_loss("offset", logits, target)) == pytest.approx(math.log(2))
    assert float(TranscriptionModule(model).head_loss("onset", logits, target)) == pytest.approx(math.log(2))
    for bad in ({"onset": 0.0}, {"onset": True}, {"onset": "4"}, {"velocity": 2.0}):
        with pytest.raises(AmtError, match="pos_weight"):
            TranscriptionModule(model, pos_weight=bad)


def test_harmonic_stacking_lines_up_each_keys_partials():
    bands = LogFrequency(2, 24)
    stack = HarmonicStack([0.5, 1, 2, 3], bands)
    assert stack.shifts == [-24, 0, 24, 38]
    spectrogram = torch.zeros(1, 3, bands.bands)
    key = 2 * (48 - 21)  # C3's first band
    for semitones in (0, 12, 19):  # its 1st, 2nd and 3rd partials
        spectrogram[0, :, key + 2 * semitones] = 1.0
    stacked = stack(spectrogram)
    assert stacked.shape == (1, 4, 3, bands.key_bands)
    assert stacked[0, 1:, 0, key].tolist() == [1.0, 1.0, 1.0]  # C3's partials, aligned at C3
    assert stacked[0, 0, 0, key + 24] == 1.0  # harmonic 0.5 of C4 is C3
    top = bands.key_bands - 1
    assert stacked[0, 3, 0, top] == 0.0  # nothing above the computed bands: zeros
    with pytest.raises(AmtError, match="harmonics"):
        HarmonicStack([0], bands)


def test_a_context_model_carries_its_front_end_and_trains_on_it(corpus):
    bands = LogFrequency(3, 24)
    model = ContextTranscriber(
        window=2048, bands=bands, harmonics=[0.5, 1, 2], channels=4, features=16, hidden=8, notes=88
    )
    assert model.bins == 336 and model.grid == FrameGrid(HOP, 2048)
    data = SequenceDataModule(corpus, hop=HOP, window=2048, bands=bands, notes=88, crop_frames=32, batch_size=2)
    data.prepare_data()
    data.setup("fit")
    assert data.bins == model.bins and data.cache_dir.name == "features-h1024-w2048-k3+24"
    features, targets = next(iter(data.train_dataloader()))
    out = model(features)
    assert out["frame"].shape == targets["frame"].shape == (2, 32, 88)
    with pytest.raises(AmtError, match="model.bins must be 336"):
        ContextTranscriber(bins=176, bands=bands)
