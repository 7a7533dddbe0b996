"""Config helpers: command-line checks that Hydra would answer with a stack of messages, and resolvers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from amt.errors import AmtError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

MOVED_CHOICES = {"experiment": {"seed/": ("report/", "the report's experiments")}}
"""Config folders that moved: group → old prefix → (new prefix, what is there now), for one clear line."""


def check_moved_choices(overrides: Sequence[str]) -> None:
    """Refuse a choice from a moved config folder, naming where it went.

    ``experiment=seed/cnn_multi`` → ``experiment=seed/cnn_multi: the report's experiments moved to
    experiment=report/cnn_multi``; plain sweeps (``experiment=seed/lstm,seed/cnn_multi``) and
    appends (``+experiment=...``) too.
    """
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+")
        if not sep or group not in MOVED_CHOICES:
            continue
        for old, (new, what) in MOVED_CHOICES[group].items():
            names = [name.strip() for name in value.split(",")]
            if any(name.startswith(old) for name in names):
                moved = ",".join(new + name.removeprefix(old) if name.startswith(old) else name for name in names)
                raise AmtError(f"{override}: {what} moved to {group}={moved}")


def check_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse ``group=name`` overrides whose yaml does not exist, listing the valid names.

    Only plain choices are checked (``model=lstm``, ``experiment=report/cnn_multi``); sweeps
    (``model=a,b``), appends and deletions are left to Hydra, except a choice from a moved folder
    (:func:`check_moved_choices`), refused in any form.
    """
    check_moved_choices(overrides)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or key.startswith(("+", "~", "hydra")) or any(c in value for c in ",()[]*"):
            continue
        group = conf_dir / key
        if not group.is_dir() or value == "null" or (group / f"{value}.yaml").is_file():
            continue
        options = sorted(str(p.relative_to(group).with_suffix("")) for p in group.rglob("*.yaml"))
        raise AmtError(f"unknown {key} '{value}' (choose from: {', '.join(options)})")


def stage_epochs(total: int, stages: int) -> list[int]:
    """``total`` epochs split into ``stages`` nearly equal stages, the first ones longest: 10, 3 → [4, 3, 3].

    Registered as the resolver ``${amt.stages:TOTAL,STAGES}`` so the staged schedule fills any run
    length. Every stage gets at least one epoch, so a run shorter than ``stages`` epochs ends early in it.
    """
    if stages < 1:
        raise AmtError(f"a staged schedule needs at least one stage, got {stages}")
    return [max(1, total // stages + (1 if stage < total % stages else 0)) for stage in range(stages)]


OmegaConf.register_new_resolver("amt.stages", stage_epochs, replace=True)
