"""Command-line checks that Hydra itself would answer with a multi-line stack of messages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from amt.errors import AmtError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def check_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse ``group=name`` overrides whose yaml does not exist, listing the valid names.

    Only plain choices are checked (``model=lstm``, ``experiment=seed/cnn_multi``); sweeps
    (``model=a,b``), appends and deletions are left to Hydra.
    """
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or any(c in value for c in ",()[]*"):
            continue
        group = conf_dir / key
        if not group.is_dir() or value == "null" or (group / f"{value}.yaml").is_file():
            continue
        options = sorted(str(p.relative_to(group).with_suffix("")) for p in group.rglob("*.yaml"))
        raise AmtError(f"unknown {key} '{value}' (choose from: {', '.join(options)})")
