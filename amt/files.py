"""Files amt writes and the csvs it reads: the one atomic write, JSON in a comparable form, checked csv rows.

Every file amt writes goes through :func:`write_atomically`: a reader (or a run killed half-way)
sees the old file or the whole new one, never a half-written file under the final name.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from amt.errors import AmtError


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); mkstemp's files are 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
        raise AmtError(f"{path}: cannot write here ({error.strerror or error})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def as_json(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists, paths strings), for comparing params."""
    return json.loads(json.dumps(value, default=str))


def write_json(record: object, path: str | os.PathLike) -> None:
    """Write ``record`` as indented JSON, atomically."""
    write_atomically(path, ".json", lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))


def csv_rows(path: Path, columns: Sequence[str], kind: str) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row)`` of a csv that must have ``columns``; one clear error line otherwise."""
    if not path.is_file():
        raise AmtError(f"{path}: no such {kind}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise AmtError(f"{path}: not a {kind}, missing columns: {', '.join(missing)}")
        yield from enumerate(reader, start=2)
