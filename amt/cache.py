"""The one keyed array cache: ``NAME.npy`` with its key in ``NAME.json``, recomputed when the key
changes or either file is damaged (truncated, empty)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from amt.files import write_atomically

log = logging.getLogger(__name__)


def cached_array(path: Path, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``path``'s array when its sidecar json holds ``key``, else ``compute()``, saved with its key.

    Both files are written atomically, the array first, so a killed run leaves at worst an array
    without its key, which the next run recomputes.
    """
    key_path = path.with_suffix(".json")
    if path.is_file() and key_path.is_file():
        try:
            if json.loads(key_path.read_text()) == key:
                return np.load(path)
        except (OSError, ValueError, EOFError) as error:
            log.warning("%s: damaged cache (%s); computing it again", path, error)
    values = compute()
    write_atomically(path, ".npy", lambda tmp: np.save(tmp, values))
    write_atomically(key_path, ".json", lambda tmp: Path(tmp).write_text(json.dumps(key)))
    return values
