"""Files and folders: the one atomic write, JSON in a comparable form, checked csv rows, and the
folders amt builds in (what it may delete there, staging for builds in progress).

Every file amt writes goes through :func:`write_atomically`: a reader (or a run killed half-way)
sees the old file or the whole new one, never a half-written file under the final name. amt deletes
only what it can prove it wrote: files its own manifests list (:func:`take_folder`) and staging
folders marked with their builder's process (:func:`staging_folder`).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from amt.errors import AmtError


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); mkstemp's files are 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def cache_root() -> Path:
    """Where amt keeps what it makes or fetches once per machine (exported graphs, piano samples):
    ``$AMT_CACHE_DIR``, default ``~/.cache/amt``."""
    return Path(os.environ.get("AMT_CACHE_DIR") or Path.home() / ".cache" / "amt")


FULL_DISK_BYTES = 1 << 20
"""A write that fails with less free space than this left is reported as a full disk."""


def cannot_write(path: Path, error: Exception) -> AmtError:
    """One line for a failed write, saying so when the disk is full (numpy and libsndfile do not)."""
    try:
        full = shutil.disk_usage(path.parent).free < FULL_DISK_BYTES
    except OSError:
        full = False
    if full or getattr(error, "errno", None) == errno.ENOSPC:
        return AmtError(f"{path}: cannot write here (No space left on device)")
    return AmtError(f"{path}: cannot write here ({getattr(error, 'strerror', None) or error})")


def write_atomically(path: str | os.PathLike, suffix: str, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a hidden file beside ``path``, then move it into place.

    A failed write never leaves a half-written file under the final name; an unwritable ``path``
    raises :class:`AmtError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    except OSError as error:
        raise AmtError(f"{path}: cannot write here ({error.strerror or error})") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except OSError as error:
        raise cannot_write(path, error) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def as_json(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists, paths strings), for comparing params."""
    return json.loads(json.dumps(value, default=str))


def write_json(record: object, path: str | os.PathLike) -> None:
    """Write ``record`` as indented JSON, atomically."""
    write_atomically(path, ".json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


def csv_rows(path: Path, columns: Sequence[str], kind: str) -> list[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a csv that must have ``columns``; one clear error line otherwise
    (a missing file, a binary or non-UTF-8 file, a malformed csv, missing columns)."""
    if not path.is_file():
        raise AmtError(f"{path}: no such {kind}")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise AmtError(f"{path}: not a {kind}, missing columns: {', '.join(missing)}")
            return list(enumerate(reader, start=2))
    except UnicodeDecodeError:
        raise AmtError(f"{path}: not a {kind} (not UTF-8 text; a binary file?)") from None
    except (csv.Error, OSError) as error:
        raise AmtError(f"{path}: not a readable {kind} ({error})") from None


# --- folders amt builds in ---------------------------------------------------------------------

OWNED_MARKER = ".amt-owned.json"
"""Lists the files amt wrote into a folder it builds in: the only files it will ever delete there."""
STAGING_MARKER = ".amt-staging"
"""Inside a staging folder: the id of the process building in it."""


def _listed(marker: Path) -> list[str]:
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return []
    files = record.get("files") if isinstance(record, dict) else None
    return [name for name in files if isinstance(name, str)] if isinstance(files, list) else []


def _remove_empty_folders(folder: Path) -> None:
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass


def take_folder(folder: Path, files: Sequence[str], what: str, known: Sequence[str] = (), keep: Sequence[str] = ()):
    """Make ``folder`` ready for amt to write ``files`` (paths relative to it) into, deleting only what
    amt provably wrote there before.

    Files listed by the folder's :data:`OWNED_MARKER` (an earlier build, finished or not) and in
    ``known`` (another manifest of amt's, e.g. a corpus.json) are deleted; folders matching a ``keep``
    pattern (amt's caches) are left alone. Anything else refuses the folder with one line, before
    anything is written: amt never deletes or overwrites a file it did not create. Then ``files`` are
    listed as amt's.
    """
    marker = folder / OWNED_MARKER
    if folder.exists() and not folder.is_dir():
        raise AmtError(f"{folder}: exists and is not a folder")
    if folder.exists():
        ours = {(folder / name).resolve() for name in {*_listed(marker), *known}}
        kept = [p for pattern in keep for p in folder.glob(pattern)]
        present = [p for p in sorted(folder.rglob("*")) if p.is_file() and p != marker]
        foreign = [p for p in present if p.resolve() not in ours and not any(k in p.parents for k in kept)]
        if foreign:
            raise AmtError(
                f"{folder}: holds {foreign[0].relative_to(folder)}, which amt did not write; amt builds {what} only "
                "in an empty folder or one it built before (choose another folder)"
            )
        for path in present:
            if path.resolve() in ours:
                path.unlink()
        _remove_empty_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AmtError(f"{folder}: cannot create this folder ({error.strerror or error})") from None
    write_atomically(
        marker, ".json", lambda tmp: Path(tmp).write_text(json.dumps({"what": what, "files": sorted(files)}))
    )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(parent: Path, prefix: str) -> None:
    """Remove staging folders ``prefix*`` in ``parent`` whose building process is gone (killed)."""
    for folder in parent.glob(f"{prefix}*"):
        try:
            pid = int((folder / STAGING_MARKER).read_text())
        except (OSError, ValueError):
            continue  # not provably amt's
        if pid != os.getpid() and not _process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staging_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A hidden folder in ``parent`` for a build in progress, removed when the build ends however it
    ends; one left by a killed build is removed by the next build in ``parent``."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(parent, prefix)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        (staging / STAGING_MARKER).write_text(str(os.getpid()))
    except OSError as error:
        raise AmtError(f"{parent}: cannot build here ({error.strerror or error})") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
