"""mini-MusicNet files: validation of real npy files, and downloads over real (local) HTTP."""

import functools
import http.server
import logging
import threading

import numpy as np
import pytest

from amt.audio import WINDOW_SIZE
from amt.data import minimusicnet
from amt.data.minimusicnet import ALL_FILES, MiniMusicNet, download, load_split
from amt.data.recordings import SPLITS
from amt.errors import AmtError

SIZES = {"train": 12, "valid": 4, "test": 5}


def write_split(folder, split, n, audio=None, labels=None):
    """Tiny valid mini-MusicNet files for one split, or the given arrays."""
    rng = np.random.default_rng(len(split))
    if audio is None:
        audio = rng.uniform(-1, 1, (n, WINDOW_SIZE)).astype(np.float32)
        audio /= np.abs(audio).max(axis=1, keepdims=True)
    if labels is None:
        labels = (rng.random((n, 128)) < 0.05).astype(np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"audio-{split}.npy", audio)
    np.save(folder / f"labels-{split}.npy", labels)


def write_folder(folder):
    for split in SPLITS:
        write_split(folder, split, SIZES[split])
    return folder


def test_load_split_reads_valid_files_mapped_or_in_memory(tmp_path):
    write_split(tmp_path, "train", 7)
    audio, labels = load_split(tmp_path, "train")
    assert isinstance(audio, np.memmap) and audio.shape == (7, WINDOW_SIZE) and labels.shape == (7, 128)
    in_memory, _ = load_split(tmp_path, "train", mmap=False)
    assert not isinstance(in_memory, np.memmap)
    np.testing.assert_array_equal(audio, in_memory)


def test_load_split_accepts_other_label_dtypes(tmp_path):
    write_split(tmp_path, "valid", 3, labels=np.eye(3, 128, dtype=np.uint8))
    assert load_split(tmp_path, "valid")[1].dtype == np.uint8


GOOD_AUDIO = np.zeros((4, WINDOW_SIZE), dtype=np.float32)
GOOD_LABELS = np.zeros((4, 128))


def with_value(array, value):
    array = array.copy()
    array[2, 5] = value
    return array


@pytest.mark.parametrize(
    ("audio", "labels", "file", "message"),
    [
        (
            np.zeros((4, 4000), np.float32),
            GOOD_LABELS,
            "audio-train.npy",
            r"must be \[N, 4096\], got shape \[4, 4000\]",
        ),
        (GOOD_AUDIO, np.zeros((4, 81)), "labels-train.npy", r"must be \[N, 128\], got shape \[4, 81\]"),
        (GOOD_AUDIO[0], GOOD_LABELS, "audio-train.npy", r"got shape \[4096\]"),
        (GOOD_AUDIO, np.zeros((3, 128)), "labels-train.npy", "3 label rows for 4 audio windows"),
        (GOOD_AUDIO.astype(np.int16), GOOD_LABELS, "audio-train.npy", "dtype int16"),
        (GOOD_AUDIO[:0], GOOD_LABELS[:0], "audio-train.npy", "holds no windows"),
        (with_value(GOOD_AUDIO, np.nan), GOOD_LABELS, "audio-train.npy", "window 2 holds NaN"),
        (with_value(GOOD_AUDIO, 1.5), GOOD_LABELS, "audio-train.npy", r"window 2 reaches 1\.5, outside \[-1, 1\]"),
        (GOOD_AUDIO, with_value(GOOD_LABELS, 0.5), "labels-train.npy", "multi-hot 0/1, window 2 pitch 5 holds 0.5"),
        (GOOD_AUDIO, with_value(GOOD_LABELS, np.nan), "labels-train.npy", "multi-hot 0/1"),
    ],
)
def test_load_split_refuses_bad_files_naming_them(tmp_path, audio, labels, file, message):
    write_split(tmp_path, "train", 4, audio=audio, labels=labels)
    with pytest.raises(AmtError, match=message) as error:
        load_split(tmp_path, "train")
    assert str(error.value).startswith(str(tmp_path / file))


def test_load_split_refuses_missing_and_unreadable_files(tmp_path):
    with pytest.raises(AmtError, match=r"audio-test\.npy: missing"):
        load_split(tmp_path, "test")
    write_split(tmp_path, "test", 2)
    (tmp_path / "labels-test.npy").write_text("start_time,end_time\n")
    with pytest.raises(AmtError, match=r"labels-test\.npy: not a readable \.npy array"):
        load_split(tmp_path, "test")
    np.save(tmp_path / "labels-test.npy", np.zeros((2, 128)))
    (tmp_path / "audio-test.npy").write_bytes((tmp_path / "audio-test.npy").read_bytes()[:-100])
    with pytest.raises(AmtError, match=r"audio-test\.npy: not a readable"):
        load_split(tmp_path, "test")


def test_prepare_validates_every_split_and_warns_about_unpublished_sizes(tmp_path, caplog):
    write_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert MiniMusicNet(tmp_path).prepare() == tmp_path
    assert "train split has 12 windows; the published mini-MusicNet has 62,500" in caplog.text
    (tmp_path / "labels-valid.npy").unlink()
    with pytest.raises(AmtError, match=r"labels-valid\.npy: missing"):
        MiniMusicNet(tmp_path).prepare()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve a folder over HTTP on 127.0.0.1; returns its base URL."""
    servers = []

    def start(folder):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_download_without_network_fails_with_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(minimusicnet, "MINIMUSICNET_URL", "http://127.0.0.1:9/")
    with pytest.raises(AmtError) as error:
        MiniMusicNet(tmp_path / "mini", download=True).prepare()
    message = str(error.value)
    assert message.startswith("cannot download mini-MusicNet from http://127.0.0.1:9/: ")
    assert "refused" in message and message.endswith("download it by hand and pass --path")
    assert "\n" not in message
    assert list((tmp_path / "mini").iterdir()) == []


def test_download_from_a_mirror_streams_verifies_and_renames(tmp_path, serve):
    mirror = write_folder(tmp_path / "mirror")
    url = serve(mirror)
    assert download(tmp_path / "mini", url=url) == tmp_path / "mini"
    assert sorted(p.name for p in (tmp_path / "mini").iterdir()) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert (tmp_path / "mini" / name).read_bytes() == (mirror / name).read_bytes()
    assert MiniMusicNet(tmp_path / "mini", download=True, url="http://127.0.0.1:9/").prepare() == tmp_path / "mini"


def test_download_of_bad_files_fails_verification_and_keeps_nothing(tmp_path, serve):
    mirror = write_folder(tmp_path / "mirror")
    write_split(mirror, "valid", 4, labels=np.full((4, 128), 0.5))
    with pytest.raises(AmtError, match=r"failed verification: .*labels-valid\.npy: labels must be multi-hot"):
        download(tmp_path / "mini", url=serve(mirror))
    assert list((tmp_path / "mini").iterdir()) == []


def test_download_of_a_missing_file_names_the_http_error(tmp_path, serve):
    mirror = write_folder(tmp_path / "mirror")
    (mirror / "labels-test.npy").unlink()
    with pytest.raises(AmtError, match=r"cannot download mini-MusicNet from http.*: HTTP Error 404"):
        download(tmp_path / "mini", url=serve(mirror))
    assert list((tmp_path / "mini").iterdir()) == []


def drive_listing(entries):
    """An embedded-folder-view page listing ``(id, name, is_folder)`` entries, as Drive serves it."""
    items = "".join(
        f'<div class="flip-entry" id="entry-{entry_id}" tabindex="0" role="link">'
        f'<div class="flip-entry-info"><a href="https://drive.google.com/'
        f'{"drive/folders" if is_folder else "file/d"}/{entry_id}{"" if is_folder else "/view?usp=drive_web"}" '
        f'target="_blank"><div class="flip-entry-visual"></div>'
        f'<div class="flip-entry-title">{name}</div></a></div></div>'
        for entry_id, name, is_folder in entries
    )
    return f'<html><body><div class="flip-entries">{items}</div></body></html>'


def test_download_from_a_drive_folder_finds_files_by_id(tmp_path, serve, monkeypatch):
    files = write_folder(tmp_path / "site" / "files")
    ids = {name: f"id-{i}" for i, name in enumerate(ALL_FILES)}
    for name, file_id in ids.items():
        (files / name).rename(files / file_id)
    (tmp_path / "site" / "listing-root.html").write_text(drive_listing([("sub", "minimusic", True)]))
    sub = [(file_id, name, False) for name, file_id in ids.items()] + [("x", "README.txt", False)]
    (tmp_path / "site" / "listing-sub.html").write_text(drive_listing(sub))
    site = serve(tmp_path / "site")
    monkeypatch.setattr(minimusicnet, "DRIVE_LISTING", site + "listing-{id}.html")
    monkeypatch.setattr(minimusicnet, "DRIVE_DOWNLOAD", site + "files/{id}")
    download(tmp_path / "mini", url="https://drive.google.com/drive/folders/root")
    assert MiniMusicNet(tmp_path / "mini").prepare() == tmp_path / "mini"
    (tmp_path / "site" / "listing-sub.html").write_text(drive_listing(sub[1:]))
    with pytest.raises(AmtError, match=r"the folder does not list audio-train\.npy; download it by hand"):
        download(tmp_path / "again", url="https://drive.google.com/drive/folders/root")
