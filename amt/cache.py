"""The one keyed array cache: ``NAME.npy`` with its key in ``NAME.json``, recomputed when the key changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from amt.files import write_atomically


def cached_array(path: Path, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``path``'s array when its sidecar json holds ``key``, else ``compute()``, saved with its key.

    Both files are written atomically, the array first, so a killed run leaves at worst an array
    without its key, which the next run recomputes.
    """
    key_path = path.with_suffix(".json")
    if path.is_file() and key_path.is_file() and json.loads(key_path.read_text()) == key:
        return np.load(path)
    values = compute()
    write_atomically(path, ".npy", lambda tmp: np.save(tmp, values))
    write_atomically(key_path, ".json", lambda tmp: Path(tmp).write_text(json.dumps(key)))
    return values
