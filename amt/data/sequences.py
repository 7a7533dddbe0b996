"""Sequences for the context models: whole-recording spectrograms, cropped, with per-frame targets.

This branches off the data path at the recordings (MusicNet layout: ``ROOT/{split}_data/ID.wav``,
``ROOT/{split}_labels/ID.csv``; the default corpus, MusicNet itself or any such folder). Each
recording's :func:`amt.features.log_frequency_spectrogram` on the model's frame grid
(:mod:`amt.grid`) with the model's bands is cached once as ``ROOT/features-h{hop}/ID.npy`` (float16;
another window or bands add to the folder's name, so front ends never share a cache) with a json key
(the wav's size and time, hop, window, bands), so a changed recording or front end is recomputed. Targets ``[T, notes]``
in the model's label space (:mod:`amt.labels`) are made from the csv on loading:

* ``frame``: the note sounds at the frame's centre (the windows' label rule),
* ``onset``: the note starts inside the frame's interval ``[c - hop/2, c + hop/2)``,
* ``offset``: the note ends inside it (not for notes still sounding at the recording's end),
* ``velocity``: at a note's onset frame, its MIDI velocity / 127, from the recording's performance
  MIDI (:meth:`amt.data.recordings.Recording.velocities`); 0 elsewhere and for recordings without
  one, which the velocity loss leaves out.

They are kept as uint8 (velocities 0..127) and made float per crop, so a 20-hour corpus's targets take
a quarter of the memory.

Training draws random crops of ``crop_frames`` frames (recordings chosen in proportion to their
length, so an epoch is about one pass over the training frames); validation and test cover every
frame of every recording with fixed tiles (the last one aligned to the recording's end), so their
numbers are deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import DataLoader, Dataset

from amt.audio import load_audio
from amt.cache import cached_array
from amt.data.augment import SpectrogramAugment
from amt.data.recordings import SPLITS, Recording, find_recordings
from amt.errors import AmtError
from amt.features import DEFAULT_BANDS, LogFrequency, log_frequency_spectrogram
from amt.grid import CONTEXT_GRID, FrameGrid
from amt.labels import REPORT_NOTES, LabelSpace, read_musicnet_csv, sounding_at

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
"""Part of the cache key: bump when :mod:`amt.features` changes what it computes."""


TARGETS = ("frame", "onset", "offset", "velocity")
VELOCITY_SCALE = 127
"""uint8 velocity targets are MIDI velocities; the model's are these / 127."""


def frame_targets(recording: Recording, frames: int, grid: FrameGrid, labels: LabelSpace) -> dict[str, np.ndarray]:
    """The targets (module docstring) of one recording on ``grid``: name → ``[frames, notes]`` uint8."""
    notes = read_musicnet_csv(recording.csv)
    frame, _ = labels.cut(sounding_at(notes, grid.centres(frames)))
    targets = {name: np.zeros(frame.shape, dtype=np.uint8) for name in TARGETS}
    targets["frame"][:] = frame
    inside = (notes.note >= labels.lowest) & (notes.note <= labels.highest)
    rows = notes.note[inside] - labels.lowest
    onsets = grid.frame_of(notes.start[inside], frames)
    targets["onset"][onsets, rows] = 1
    ended = notes.end[inside] < grid.centres(frames)[-1] + grid.hop // 2 if frames else np.zeros(0, dtype=bool)
    targets["offset"][grid.frame_of(notes.end[inside][ended], frames), rows[ended]] = 1
    velocities = recording.velocities(notes)
    if velocities is not None:
        targets["velocity"][onsets, rows] = velocities[inside]
    return targets


def _key(wav: Path, grid: FrameGrid, bands: LogFrequency) -> dict:
    stat = wav.stat()
    return {
        "wav": wav.name,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "hop": grid.hop,
        "window": grid.window,
        "bands": bands.bands,
        "bands_per_semitone": bands.bands_per_semitone,
        "version": FEATURE_VERSION,
    } | ({"shortest_window": bands.shortest_window} if bands.shortest_window else {})  # one-window caches stay valid


def cache_folder(root: Path, grid: FrameGrid, bands: LogFrequency) -> Path:
    """``ROOT/features-h{hop}``, with ``-w{window}``, ``-k{bands per semitone}+{above}`` and ``-q{shortest
    window}`` when not the defaults."""
    name = f"features-h{grid.hop}"
    if grid.window != CONTEXT_GRID.window:
        name += f"-w{grid.window}"
    if replace(bands, shortest_window=None) != DEFAULT_BANDS:
        name += f"-k{bands.bands_per_semitone}+{bands.bands_above}"
    if bands.shortest_window:
        name += f"-q{bands.shortest_window}"
    return root / name


def cached_features(
    recording: Recording, cache_dir: Path, grid: FrameGrid, bands: LogFrequency = DEFAULT_BANDS
) -> np.ndarray:
    """The recording's spectrogram ``[T, bands]`` float16 on ``grid``, computed once and cached (atomically)."""
    return cached_array(
        cache_dir / f"{recording.id}.npy",
        _key(recording.wav, grid, bands),
        lambda: log_frequency_spectrogram(load_audio(recording.wav), grid, bands).astype(np.float16),
    )


Item = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class SequenceRecording:
    """One recording's features ``[T, bands]`` float16 and targets name → ``[T, notes]`` uint8, as tensors."""

    id: str
    features: torch.Tensor
    targets: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.features)

    def crop(self, start: int, length: int) -> Item:
        """Frames ``start .. start+length`` as float32 (velocities / 127), zero-padded past the end
        (recordings shorter than a crop)."""

        def cut(part: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            piece = part[start : start + length].float()
            if scale != 1.0:
                piece = piece / scale
            missing = length - len(piece)
            return torch.cat([piece, piece.new_zeros(missing, piece.shape[1])]) if missing > 0 else piece

        targets = {name: cut(t, VELOCITY_SCALE if name == "velocity" else 1.0) for name, t in self.targets.items()}
        return cut(self.features), targets


def load_recording(
    recording: Recording, cache_dir: Path, grid: FrameGrid, labels: LabelSpace, bands: LogFrequency = DEFAULT_BANDS
) -> SequenceRecording:
    features = cached_features(recording, cache_dir, grid, bands)
    targets = frame_targets(recording, len(features), grid, labels)
    return SequenceRecording(
        recording.id, torch.from_numpy(features), {name: torch.from_numpy(t) for name, t in targets.items()}
    )


class RandomCrops(Dataset):
    """``crops`` random crops a pass; recordings drawn in proportion to their length.

    Positions come from torch's global generator (seeded by ``L.seed_everything``, per worker when
    loading in workers, per process when training data-parallel: :meth:`SequenceDataModule.setup`).
    The index is ignored, so a distributed sampler's shards alone would not tell processes apart.
    With an :class:`SpectrogramAugment`, each crop is augmented; mixing draws a second crop.
    """

    def __init__(
        self,
        recordings: Sequence[SequenceRecording],
        crop_frames: int,
        crops: int,
        augment: SpectrogramAugment | None = None,
    ):
        self.recordings, self.crop_frames, self.crops, self.augment = list(recordings), crop_frames, crops, augment
        self.weights = torch.tensor([float(len(r.features)) for r in self.recordings])

    def __len__(self) -> int:
        return self.crops

    def _random_crop(self) -> Item:
        recording = self.recordings[int(torch.multinomial(self.weights, 1))]
        start = int(torch.randint(0, max(1, len(recording.features) - self.crop_frames + 1), ()))
        return recording.crop(start, self.crop_frames)

    def __getitem__(self, index: int) -> Item:
        features, targets = self._random_crop()
        if self.augment is not None:
            features, targets = self.augment(features, targets, self._random_crop)
        return features, targets


class Tiles(Dataset):
    """Every frame of every recording, in tiles of ``crop_frames`` (the last aligned to the end)."""

    def __init__(self, recordings: Sequence[SequenceRecording], crop_frames: int):
        self.recordings, self.crop_frames = list(recordings), crop_frames
        self.tiles = []
        for index, recording in enumerate(self.recordings):
            length = len(recording.features)
            starts = list(range(0, max(1, length - crop_frames + 1), crop_frames))
            if length > crop_frames and starts[-1] + crop_frames < length:
                starts.append(length - crop_frames)
            self.tiles += [(index, start) for start in starts]

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> Item:
        recording, start = self.tiles[index]
        return self.recordings[recording].crop(start, self.crop_frames)


class SequenceDataModule(L.LightningDataModule):
    """Crops ``[batch, crop_frames, bands]`` with targets name → ``[batch, crop_frames, notes]`` (:data:`TARGETS`).

    ``recordings`` is a MusicNet-layout folder with ``train``, ``valid`` and ``test`` splits;
    ``corpus`` (optional) is built first (the offline corpus, ``data=sequences``). ``hop``,
    ``window``, ``bands`` (the front end) and ``notes`` (the label space's width) are the model's (the
    data configs take ``${model.hop}``, ``${model.window}``, ``${model.bands}`` and ``${model.notes}``).
    Spectrograms are cached in ``cache_dir``, by default :func:`cache_folder` inside ``recordings``;
    give one folder per corpus elsewhere when the recordings are read-only (MusicNet on a shared drive).
    ``extra_train`` names more corpora (:class:`~amt.data.synth.SynthCorpus`, built first) whose train
    splits join training, each cached inside its own recordings; validation and test stay ``recordings``'.
    The configs give them as a mapping by name, so that an experiment adds one to those of the experiment
    it extends (Hydra merges mappings and replaces lists); a sequence works too.
    """

    def __init__(
        self,
        recordings: str | Path,
        corpus=None,
        hop: int = CONTEXT_GRID.hop,
        window: int = CONTEXT_GRID.window,
        bands: LogFrequency = DEFAULT_BANDS,
        notes: int = REPORT_NOTES.notes,
        crop_frames: int = 256,
        batch_size: int = 8,
        crops_per_epoch: int | None = None,
        augment: SpectrogramAugment | None = None,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
        extra_train: Mapping | Sequence = (),
    ):
        super().__init__()
        if crop_frames < 1 or batch_size < 1:
            raise AmtError(f"crop_frames and batch_size must be positive, got {crop_frames}, {batch_size}")
        self.root, self.corpus, self.grid, self.bands = Path(recordings), corpus, FrameGrid(hop, window), bands
        self.labels = LabelSpace(notes)
        self.crop_frames, self.batch_size, self.crops_per_epoch = crop_frames, batch_size, crops_per_epoch
        self.augment, self.num_workers = augment, num_workers
        self.cache_dir = Path(cache_dir) if cache_dir else cache_folder(self.root, self.grid, bands)
        self.bins = bands.bands
        self.extra_train = list(extra_train.values() if isinstance(extra_train, Mapping) else extra_train)
        self.splits: dict[str, list[SequenceRecording]] = {}

    def _extra_recordings(self) -> list[tuple[Recording, Path]]:
        """The extra corpora's training recordings, each with its cache folder."""
        return [
            (recording, cache_folder(corpus.recordings_dir, self.grid, self.bands))
            for corpus in self.extra_train
            for recording in find_recordings(corpus.recordings_dir, "train")
        ]

    def prepare_data(self) -> None:
        """Build the corpora (when given) and cache every recording's spectrogram, with a progress bar."""
        for corpus in [self.corpus, *self.extra_train]:
            if corpus is not None:
                corpus.prepare()
        recordings = [(r, self.cache_dir) for split in SPLITS for r in find_recordings(self.root, split)]
        with Progress(transient=True) as progress:
            for recording, cache in progress.track(
                recordings + self._extra_recordings(), description=f"spectrograms (hop {self.grid.hop})"
            ):
                cached_features(recording, cache, self.grid, self.bands)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            if self.trainer is not None and self.trainer.world_size > 1:
                # seed_everything seeded every process alike; without this, each would draw the same crops.
                torch.manual_seed(torch.initial_seed() + self.trainer.global_rank)
            self.splits = {
                split: [
                    load_recording(r, self.cache_dir, self.grid, self.labels, self.bands)
                    for r in find_recordings(self.root, split)
                ]
                for split in SPLITS
            }
            self.splits["train"] += [
                load_recording(r, cache, self.grid, self.labels, self.bands) for r, cache in self._extra_recordings()
            ]
            frames = {split: sum(len(r.features) for r in recs) for split, recs in self.splits.items()}
            log.info("sequence frames (hop %d): %s", self.grid.hop, frames)

    def train_dataloader(self) -> DataLoader:
        recordings = self.splits["train"]
        crops = self.crops_per_epoch or max(1, sum(len(r.features) for r in recordings) // self.crop_frames)
        dataset = RandomCrops(recordings, self.crop_frames, crops, self.augment)
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers)

    def _tiles(self, split: str) -> DataLoader:
        return DataLoader(Tiles(self.splits[split], self.crop_frames), batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._tiles("valid")

    def test_dataloader(self) -> DataLoader:
        return self._tiles("test")
