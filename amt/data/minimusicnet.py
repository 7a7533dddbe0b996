"""The published mini-MusicNet files: reading, validating and downloading them.

mini-MusicNet (github.com/jthickstun/mini-musicnet) is six numpy files, ``audio-{split}.npy``
``[N, 4096]`` (peak-normalised windows) and ``labels-{split}.npy`` ``[N, 128]`` (multi-hot MIDI
pitches sounding at each window's centre), for the splits train, valid and test with 62,500,
10,000 and 10,000 windows. Folders built by :mod:`amt.data.musicnet` and the synthetic corpus use
the same layout with other sizes, so the structure is checked strictly and the size only
compared with :data:`EXPECTED_SIZES` in a logged warning.

The files are published only as a Google Drive folder (the README's link; no checksums or file
sizes are published). :func:`download` lists that folder through Drive's public embedded folder
view and fetches each file by its id; any other URL is taken as a plain mirror serving the six
files by name under it.
"""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path

import numpy as np
from rich.progress import Progress

from amt.data.download import NETWORK_ERRORS, fetch, open_url, reason
from amt.data.recordings import SPLITS
from amt.errors import AmtError
from amt.files import staging_folder
from amt.grid import WINDOW_SIZE
from amt.labels import MIDI_WIDTH

log = logging.getLogger(__name__)

EXPECTED_SIZES = {"train": 62_500, "valid": 10_000, "test": 10_000}

MINIMUSICNET_URL = "https://drive.google.com/drive/folders/10Cz6As5hiFkRZKA3hrv9qBH5tn0OC3H1"
"""Where mini-MusicNet is published (github.com/jthickstun/mini-musicnet, README)."""

DRIVE_FOLDER = re.compile(r"^https://drive\.google\.com/drive/folders/([\w-]+)")
DRIVE_LISTING = "https://drive.google.com/embeddedfolderview?id={id}"
DRIVE_DOWNLOAD = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
"""``confirm=t`` skips the "cannot scan this large file for viruses" page Drive shows before big files."""
DRIVE_ENTRY = re.compile(r'id="entry-([\w-]+)".*?href="([^"]*)".*?class="flip-entry-title"[^>]*>([^<]*)<', re.DOTALL)
"""One item of an embedded folder view: its id, its link (``/folders/`` for a sub-folder) and its name."""

AUDIO_TOLERANCE = 1e-3
"""How far past [-1, 1] a peak-normalised sample may stray (rounding) before the file is refused."""

CHECK_ROWS = 8_192
"""Rows validated at a time, so checking a memory-mapped 1 GB split needs little memory."""

PURPOSE = "mini-MusicNet download"


def split_files(split: str) -> tuple[str, str]:
    """The audio and label file names of one split."""
    return f"audio-{split}.npy", f"labels-{split}.npy"


ALL_FILES = tuple(name for split in SPLITS for name in split_files(split))


def _load_npy(file: Path, mmap: bool) -> np.ndarray:
    if not file.is_file():
        raise AmtError(f"{file}: missing (mini-MusicNet layout: audio-SPLIT.npy and labels-SPLIT.npy)")
    try:
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise AmtError(f"{file}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise AmtError(f"{file}: an .npz archive, not an .npy array")
    return array


def _check_shape(file: Path, array: np.ndarray, width: int, kinds: str, what: str) -> None:
    if array.ndim != 2 or array.shape[1] != width:
        raise AmtError(f"{file}: {what} must be [N, {width}], got shape {list(array.shape)}")
    if array.dtype.kind not in kinds:
        raise AmtError(f"{file}: {what} must be numbers of kind {kinds!r}, got dtype {array.dtype}")
    if array.shape[0] == 0:
        raise AmtError(f"{file}: holds no windows")


def _check_audio_values(file: Path, audio: np.ndarray) -> None:
    for start in range(0, len(audio), CHECK_ROWS):
        chunk = np.asarray(audio[start : start + CHECK_ROWS])
        finite = np.isfinite(chunk).all(axis=1)
        if not finite.all():
            raise AmtError(f"{file}: window {start + int(np.argmin(finite))} holds NaN or infinite samples")
        peaks = np.abs(chunk).max(axis=1)
        if peaks.max() > 1 + AUDIO_TOLERANCE:
            row = int(np.argmax(peaks))
            raise AmtError(f"{file}: window {start + row} reaches {peaks[row]:.4g}, outside [-1, 1]")


def _check_label_values(file: Path, labels: np.ndarray) -> None:
    for start in range(0, len(labels), CHECK_ROWS):
        chunk = np.asarray(labels[start : start + CHECK_ROWS])
        wrong = (chunk != 0) & (chunk != 1)
        if wrong.any():
            row, column = np.argwhere(wrong)[0]
            raise AmtError(
                f"{file}: labels must be multi-hot 0/1, window {start + row} pitch {column} holds {chunk[row, column]}"
            )


def load_split(path: Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one split: audio ``[N, 4096]`` float, labels ``[N, 128]`` 0/1.

    Checks shapes, dtypes (audio floating point; labels bool, integer or float), equal N, finite
    audio within [-1, 1] and labels that are exactly 0 or 1, failing with one line naming the
    file. With ``mmap`` the arrays are read-only memory maps. The number of windows is not checked
    here (see :data:`EXPECTED_SIZES`).
    """
    audio_file, labels_file = (Path(path) / name for name in split_files(split))
    audio = _load_npy(audio_file, mmap)
    _check_shape(audio_file, audio, WINDOW_SIZE, "f", "audio")
    labels = load_labels(path, split, mmap)
    if len(audio) != len(labels):
        raise AmtError(f"{labels_file}: {len(labels):,} label rows for {len(audio):,} audio windows in {audio_file}")
    _check_audio_values(audio_file, audio)
    return audio, labels


def load_labels(path: Path, split: str, mmap: bool = True) -> np.ndarray:
    """Read and validate the labels ``[N, 128]`` of one split alone (see :func:`load_split`)."""
    labels_file = Path(path) / split_files(split)[1]
    labels = _load_npy(labels_file, mmap)
    _check_shape(labels_file, labels, MIDI_WIDTH, "biuf", "labels")
    _check_label_values(labels_file, labels)
    return labels


def _warn_about_size(source: str | Path, split: str, windows: int) -> None:
    if windows != EXPECTED_SIZES[split]:
        log.warning(
            "%s: %s split has %s windows; the published mini-MusicNet has %s",
            source,
            split,
            f"{windows:,}",
            f"{EXPECTED_SIZES[split]:,}",
        )


def _cannot_download(url: str, reason: object) -> AmtError:
    return AmtError(f"cannot download mini-MusicNet from {url}: {reason}; download it by hand and pass --path")


def _drive_files(folder_id: str, depth: int = 1) -> dict[str, str]:
    """Name → file id of the files in a public Drive folder and (``depth`` levels of) its sub-folders."""
    with open_url(DRIVE_LISTING.format(id=folder_id), PURPOSE) as response:
        page = response.read().decode("utf-8", errors="replace")
    files = {}
    for entry_id, link, title in DRIVE_ENTRY.findall(page):
        if "/folders/" in link:
            if depth > 0:
                files.update(_drive_files(entry_id, depth - 1))
        else:
            files[html.unescape(title).strip()] = entry_id
    return files


def _file_urls(url: str) -> dict[str, str]:
    """Where each of the six files is fetched from: by id inside a Drive folder, else by name under ``url``."""
    folder = DRIVE_FOLDER.match(url)
    if folder is None:
        base = url if url.endswith("/") else url + "/"
        return {name: base + name for name in ALL_FILES}
    ids = _drive_files(folder.group(1))
    missing = [name for name in ALL_FILES if name not in ids]
    if missing:
        raise _cannot_download(url, f"the folder does not list {', '.join(missing)}")
    return {name: DRIVE_DOWNLOAD.format(id=ids[name]) for name in ALL_FILES}


def _verify(staging: Path, url: str) -> None:
    for split in SPLITS:
        try:
            audio, _ = load_split(staging, split)
        except AmtError as error:
            raise AmtError(f"mini-MusicNet downloaded from {url} failed verification: {error}") from None
        _warn_about_size(url, split, len(audio))


def download(path: Path, url: str | None = None) -> Path:
    """Download the six mini-MusicNet files into ``path``; return ``path``.

    ``url`` defaults to :data:`MINIMUSICNET_URL` (a Drive folder) and may be any plain mirror.
    Files stream into a hidden staging folder inside ``path``; only when all six are complete
    (every byte the server announced) and every split passes :func:`load_split` are they renamed
    into place, so a failed or interrupted download never leaves files that look complete.
    Network failures raise one :class:`AmtError` line saying to download by hand.
    """
    url = url or MINIMUSICNET_URL
    path = Path(path)
    with staging_folder(path, ".download-") as staging:
        try:
            with Progress(transient=True) as progress:
                for name, file_url in _file_urls(url).items():
                    fetch(file_url, staging / name, progress, PURPOSE)
        except NETWORK_ERRORS as error:
            raise _cannot_download(url, reason(error)) from None
        _verify(staging, url)
        for name in ALL_FILES:
            os.replace(staging / name, path / name)
    return path


class MiniMusicNet:
    """Windows source for the published mini-MusicNet files."""

    def __init__(self, path: str | Path, download: bool = False, url: str | None = None):
        self.path = Path(path)
        self.download_if_missing = download
        self.url = url

    def prepare(self) -> Path:
        """Validate all three splits, downloading them first when asked and any file is missing."""
        if self.download_if_missing and not all((self.path / name).is_file() for name in ALL_FILES):
            download(self.path, self.url)
        for split in SPLITS:
            audio, _ = load_split(self.path, split)
            _warn_about_size(self.path, split, len(audio))
        return self.path
