"""The one LightningDataModule: windows from any source → cached FFT spectra → batches.

A *windows source* is any object with ``prepare() -> Path`` that makes sure a folder of
mini-MusicNet-format windows exists (``audio-{split}.npy``, ``labels-{split}.npy``) and returns it:
:class:`amt.data.synth.SynthCorpus` (the offline default), :class:`amt.data.minimusicnet.MiniMusicNet`
and :class:`amt.data.musicnet.MusicNetWindows`. Hydra picks one with ``data=synth|minimusicnet|musicnet``.

Spectra are cached beside the windows, one file per split and bin count, keyed by the windows
file they were computed from, and loaded whole into memory (62,500 × 512 float32 = 128 MB).

A *spectra folder* (:func:`export_spectra`, ``amt data spectra``) holds only the cached spectra
and labels, a few percent of the windows' size, to train on a machine that cannot build the
corpus (no FluidSynth, no internet): ``data=spectra data.path=DIR``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from amt.audio import spectra
from amt.cache import cached_array
from amt.data.minimusicnet import load_labels, load_split, split_files
from amt.data.recordings import SPLITS
from amt.errors import AmtError
from amt.files import staging_folder, write_atomically
from amt.labels import REPORT_NOTES

log = logging.getLogger(__name__)


class WindowsSource(Protocol):
    def prepare(self) -> Path:
        """Build, download or check the windows and return their folder."""


def check_bins(bins: int | None) -> None:
    if bins is None:
        raise AmtError("data.bins is not set: is the model a context model? Those train on data=sequences")
    if not 1 <= bins <= 2049:
        raise AmtError(f"data.bins must be in 1..2049 (rfft of 4,096 samples), got {bins}")


def spectra_path(windows_dir: Path, split: str, bins: int) -> Path:
    return windows_dir / f"spectra-{split}-{bins}.npy"


def _windows_key(windows_dir: Path, split: str) -> dict:
    """Identifies the windows a spectra file was computed from (rebuilt when they change)."""
    stat = (windows_dir / f"audio-{split}.npy").stat()
    return {"windows_file": f"audio-{split}.npy", "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_spectra(windows_dir: Path, split: str, bins: int) -> np.ndarray:
    """Spectra of one split, computed once and cached as ``spectra-{split}-{bins}.npy``.

    The cache's sidecar json records which windows file it came from; a stale or half-written
    cache is recomputed. Writes go to a temporary file renamed into place, so a killed run never
    leaves a cache that looks complete.
    """
    path = spectra_path(windows_dir, split, bins)
    if not (windows_dir / split_files(split)[0]).is_file():
        return _exported_spectra(path)

    def compute() -> np.ndarray:
        windows, _ = load_split(windows_dir, split)
        log.info("computing %d-bin spectra of %d %s windows", bins, len(windows), split)
        return spectra(windows, bins)

    return cached_array(path, _windows_key(windows_dir, split), compute)


def _exported_spectra(path: Path) -> np.ndarray:
    """The spectra of a folder without windows (a spectra folder): nothing to recompute them from."""
    if not path.is_file():
        raise AmtError(
            f"{path}: missing, and there are no windows ({path.parent / 'audio-SPLIT.npy'}) to compute it from"
        )
    values = np.load(path, allow_pickle=False)
    if values.ndim != 2 or values.dtype.kind != "f":
        raise AmtError(f"{path}: spectra must be a float [N, bins] array, got {values.dtype} {list(values.shape)}")
    return values


def export_spectra(windows_dir: Path, out: Path, bins: int) -> Path:
    """Write a spectra folder: each split's ``bins``-bin spectra and its labels (as uint8), no audio.

    For the LSTMs' 128 bins the mini corpus shrinks from 1.4 GB of windows to 53 MB. The files are
    built in a staging folder beside ``out`` and moved in together, so a failed export (a full disk)
    leaves ``out`` as it was.
    """
    check_bins(bins)
    if out.resolve() == windows_dir.resolve():
        raise AmtError(f"{out}: the spectra folder must not be the windows folder")
    with staging_folder(out.parent, f".{out.name}.building-") as staging:
        names = []
        for split in SPLITS:
            values = cached_spectra(windows_dir, split, bins)
            labels = np.asarray(load_labels(windows_dir, split), dtype=np.uint8)
            files = {split_files(split)[1]: labels, spectra_path(out, split, bins).name: values}
            for name, array in files.items():
                write_atomically(staging / name, ".npy", lambda tmp, array=array: np.save(tmp, array))
            names += files
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in names:
                os.replace(staging / name, out / name)
        except OSError as error:
            raise AmtError(f"{out}: cannot write here ({error.strerror or error})") from None
    return out


class SpectraFolder:
    """Windows source for a spectra folder written by :func:`export_spectra`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def prepare(self) -> Path:
        for split in SPLITS:
            load_labels(self.path, split)
        return self.path


class SpectraDataset(Dataset):
    """Spectra and 81-note labels held as tensors, indexed a whole batch at a time.

    Used with a :class:`BatchSampler` and ``batch_size=None`` so that one batch is one tensor
    gather instead of 32 item lookups and a collate (which costs milliseconds per step on CPU).
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], self.labels[index]


@dataclass(frozen=True)
class SpectrumStatistics:
    """Per-bin mean and standard deviation of the training split's spectra (``standardise=true``)."""

    mean: torch.Tensor
    std: torch.Tensor


class SpectraDataModule(L.LightningDataModule):
    """FFT-magnitude spectra ``[batch, bins]`` with multi-hot labels ``[batch, 81]``.

    ``log_compress`` (``log1p``) and ``standardise`` (per-bin mean/std of the training split)
    are off by default, as in the report, which trained on raw magnitudes. Both, and the statistics,
    are saved in every checkpoint (:meth:`state_dict`), so a model transcribes raw spectra as it saw them.
    """

    def __init__(
        self,
        source: WindowsSource,
        bins: int = 512,
        batch_size: int = 32,
        log_compress: bool = False,
        standardise: bool = False,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if batch_size < 1:
            raise AmtError(f"data.batch_size must be positive, got {batch_size}")
        check_bins(bins)
        self.source, self.bins, self.batch_size = source, bins, batch_size
        self.log_compress, self.standardise = log_compress, standardise
        self.num_workers, self.seed = num_workers, seed
        self.windows_dir: Path | None = None
        self.datasets: dict[str, SpectraDataset] = {}
        self.statistics: SpectrumStatistics | None = None

    def prepare_data(self) -> None:
        windows_dir = self.source.prepare()
        for split in SPLITS:
            cached_spectra(windows_dir, split, self.bins)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.windows_dir = self.source.prepare()
        features = {split: self._features(split) for split in SPLITS}
        if self.standardise:
            mean = features["train"].mean(axis=0)
            std = features["train"].std(axis=0) + 1e-6
            features = {split: (values - mean) / std for split, values in features.items()}
            self.statistics = SpectrumStatistics(torch.from_numpy(mean), torch.from_numpy(std))
        for split in SPLITS:
            labels, dropped = REPORT_NOTES.cut(np.asarray(load_labels(self.windows_dir, split)))
            if len(labels) != len(features[split]):
                raise AmtError(
                    f"{self.windows_dir}: {split} has {len(features[split]):,} spectra for {len(labels):,} label rows"
                )
            if dropped:
                log.warning("%s: %d active labels outside A0..F7 dropped", split, dropped)
            self.datasets[split] = SpectraDataset(torch.from_numpy(features[split]), torch.from_numpy(labels))

    def state_dict(self) -> dict:
        """How the spectra were transformed, saved in checkpoints for :func:`amt.checkpoint.load`."""
        state = {"log_compress": self.log_compress, "standardise": self.standardise}
        if self.statistics is not None:
            state |= {"mean": self.statistics.mean, "std": self.statistics.std}
        return state

    def _features(self, split: str) -> np.ndarray:
        values = cached_spectra(self.windows_dir, split, self.bins)
        return np.log1p(values) if self.log_compress else values

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        if shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(self.seed))
        else:
            sampler = SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=BatchSampler(sampler, self.batch_size, drop_last=False),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
