"""Spectra cache and batches of the one DataModule, on mini-MusicNet-format files the tests write."""

import os

import numpy as np
import pytest
import torch

from amt.data.datamodule import SpectraDataModule, SpectraFolder, cached_spectra, export_spectra, spectra_path
from amt.data.minimusicnet import MiniMusicNet
from amt.errors import AmtError

SIZES = {"train": 96, "valid": 40, "test": 40}


def write_windows(folder, seed=0):
    """Windows holding one sine each, labelled with that note (plus A0..F7 edges and one outside)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    t = np.arange(4096) / 44_100
    for split, n in SIZES.items():
        pitches = rng.integers(40, 90, size=n)
        audio = np.sin(2 * np.pi * 440 * 2 ** ((pitches[:, None] - 69) / 12) * t).astype(np.float32)
        labels = np.zeros((n, 128), dtype=np.float64)
        labels[np.arange(n), pitches] = 1
        labels[0, 110] = 1  # outside A0..F7: dropped and reported
        np.save(folder / f"audio-{split}.npy", audio)
        np.save(folder / f"labels-{split}.npy", labels)
    return folder


def test_batches_have_spectra_and_81_note_labels(tmp_path):
    data = SpectraDataModule(MiniMusicNet(write_windows(tmp_path / "w")), bins=512, batch_size=32)
    data.prepare_data()
    data.setup("fit")
    features, labels = next(iter(data.train_dataloader()))
    assert features.shape == (32, 512) and features.dtype == torch.float32
    assert labels.shape == (32, 81) and set(labels.unique().tolist()) <= {0.0, 1.0}
    assert sum(len(b[0]) for b in data.val_dataloader()) == SIZES["valid"]
    assert [len(b[0]) for b in data.test_dataloader()] == [32, 8]
    # the sine of each window peaks in the bin of its labelled note
    valid = data.datasets["valid"]
    pitch = valid.labels.argmax(dim=1) + 21
    peak_hz = valid.features.argmax(dim=1) * 44_100 / 4096
    expected_hz = 440 * 2 ** ((pitch - 69) / 12)
    assert torch.all((peak_hz - expected_hz).abs() <= 44_100 / 4096)


def test_shuffling_is_seeded(tmp_path):
    folder = write_windows(tmp_path / "w")

    def first_batch(seed):
        data = SpectraDataModule(MiniMusicNet(folder), bins=128, batch_size=8, seed=seed)
        data.setup("fit")
        return next(iter(data.train_dataloader()))[0]

    assert torch.equal(first_batch(1), first_batch(1))
    assert not torch.equal(first_batch(1), first_batch(2))


def test_spectra_cache_is_reused_and_rebuilt_when_windows_change(tmp_path):
    folder = write_windows(tmp_path / "w")
    first = cached_spectra(folder, "valid", 128)
    cache = spectra_path(folder, "valid", 128)
    stamp = cache.stat().st_mtime_ns
    np.testing.assert_array_equal(cached_spectra(folder, "valid", 128), first)
    assert cache.stat().st_mtime_ns == stamp
    write_windows(folder, seed=1)
    os.utime(folder / "audio-valid.npy", ns=(stamp + 10**9, stamp + 10**9))
    assert not np.array_equal(cached_spectra(folder, "valid", 128), first)
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("spectra")) == [
        "spectra-valid-128.json",
        "spectra-valid-128.npy",
    ]


def test_cache_without_its_key_is_recomputed(tmp_path):
    """A spectra file whose sidecar never got written (a killed run) is not trusted."""
    folder = write_windows(tmp_path / "w")
    np.save(spectra_path(folder, "test", 128), np.zeros((SIZES["test"], 128), dtype=np.float32))
    assert cached_spectra(folder, "test", 128).any()


def test_log_compression_and_standardisation(tmp_path):
    folder = write_windows(tmp_path / "w")
    raw = SpectraDataModule(MiniMusicNet(folder), bins=128)
    raw.setup()
    logged = SpectraDataModule(MiniMusicNet(folder), bins=128, log_compress=True)
    logged.setup()
    torch.testing.assert_close(logged.datasets["valid"].features, torch.log1p(raw.datasets["valid"].features))
    standard = SpectraDataModule(MiniMusicNet(folder), bins=128, log_compress=True, standardise=True)
    standard.setup()
    train = standard.datasets["train"].features
    torch.testing.assert_close(train.mean(0), torch.zeros(128), atol=1e-4, rtol=0)
    assert train.std(0).mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(("kwargs", "message"), [({"batch_size": 0}, "batch_size"), ({"bins": 4096}, "bins")])
def test_bad_settings_fail_early(tmp_path, kwargs, message):
    with pytest.raises(AmtError, match=message):
        SpectraDataModule(MiniMusicNet(tmp_path), **kwargs)


def test_bad_windows_fail_with_the_file_name(tmp_path):
    folder = write_windows(tmp_path / "w")
    np.save(folder / "audio-test.npy", np.zeros((SIZES["test"], 100), dtype=np.float32))
    with pytest.raises(AmtError, match="audio-test.npy"):
        SpectraDataModule(MiniMusicNet(folder), bins=128).prepare_data()


def test_spectra_folder_trains_like_its_windows(tmp_path):
    windows = write_windows(tmp_path / "w")
    folder = export_spectra(windows, tmp_path / "spectra", bins=128)
    assert sorted(f.name for f in folder.iterdir()) == sorted(
        [f"labels-{s}.npy" for s in SIZES] + [f"spectra-{s}-128.npy" for s in SIZES]
    )
    assert np.load(folder / "labels-train.npy").dtype == np.uint8
    from_windows = SpectraDataModule(MiniMusicNet(windows), bins=128)
    from_spectra = SpectraDataModule(SpectraFolder(folder), bins=128)
    for data in (from_windows, from_spectra):
        data.prepare_data()
        data.setup("fit")
    for split in SIZES:
        assert torch.equal(from_windows.datasets[split].features, from_spectra.datasets[split].features)
        assert torch.equal(from_windows.datasets[split].labels, from_spectra.datasets[split].labels)


def test_spectra_folder_without_the_models_bins_says_so(tmp_path):
    folder = export_spectra(write_windows(tmp_path / "w"), tmp_path / "spectra", bins=128)
    data = SpectraDataModule(SpectraFolder(folder), bins=512)
    with pytest.raises(AmtError, match=r"spectra-train-512\.npy: missing, and there are no windows"):
        data.setup("fit")


def test_spectra_folder_with_mismatched_rows_is_refused(tmp_path):
    folder = export_spectra(write_windows(tmp_path / "w"), tmp_path / "spectra", bins=128)
    np.save(folder / "spectra-valid-128.npy", np.zeros((3, 128), dtype=np.float32))
    with pytest.raises(AmtError, match="valid has 3 spectra for 40 label rows"):
        SpectraDataModule(SpectraFolder(folder), bins=128).setup("fit")
