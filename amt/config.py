"""Config helpers: command-line checks that Hydra would answer with a stack of messages, and resolvers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from amt.errors import AmtError

CONF_DIR = Path(__file__).resolve().parent / "conf"
"""The Hydra configs: the repository's top-level ``conf/`` (``amt/conf`` links to it), copied into the wheel."""

SWEEP_GROUPS = ("study", "scale")
"""Config groups only a sweep reads: what a study varies, and at what size."""
NOT_GROUPS = ("hydra", "corpus")
"""Folders of conf/ that are not groups of a run's config: Hydra's own, and the corpus recipes
(``data.preset=NAME`` and ``amt data synth --preset NAME`` read ``conf/corpus/NAME.yaml``)."""

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


def check_group_choices(overrides: Sequence[str], conf_dir: Path = CONF_DIR, command: str = "sweep") -> None:
    """Refuse ``group=name`` overrides whose yaml does not exist, listing the valid names, and (for
    ``command="train"``) the groups only a sweep reads.

    Only plain choices are checked (``model=lstm``, ``experiment=report/cnn_multi``); sweeps
    (``model=a,b``), appends and deletions are left to Hydra, except a choice from a moved folder
    (:func:`check_moved_choices`), refused in any form.
    """
    check_moved_choices(overrides)
    check_appended_keys(overrides, conf_dir)
    for override in overrides:
        key, sep, value = override.partition("=")
        if command == "train" and key.lstrip("+~") in SWEEP_GROUPS:
            raise AmtError(f"{override}: only a sweep reads {key.lstrip('+~')} (amt sweep -m {override})")
        if not sep or key.startswith(("+", "~", "hydra")) or any(c in value for c in ",()[]*"):
            continue
        group = conf_dir / key
        if not group.is_dir() or value == "null" or (group / f"{value}.yaml").is_file():
            continue
        options = sorted(str(p.relative_to(group).with_suffix("")) for p in group.rglob("*.yaml"))
        raise AmtError(f"unknown {key} '{value}' (choose from: {', '.join(options)})")


def _top_level_keys(conf_dir: Path) -> set[str]:
    """Settings and groups amt's configs define at the top level (train.yaml and sweep.yaml)."""
    keys = {path.name for path in conf_dir.iterdir() if path.is_dir()}
    for name in ("train.yaml", "sweep.yaml"):
        if (conf_dir / name).is_file():
            keys |= set(OmegaConf.load(conf_dir / name).keys())
    return keys - {"defaults"}


def check_appended_keys(overrides: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse ``+key=value`` for a key no amt config has: Hydra would add it, and nothing would read it."""
    known = None
    for override in overrides:
        key, sep, _ = override.partition("=")
        if not sep or not key.startswith("+") or key.startswith("++"):
            continue
        top = key[1:].split(".")[0].split("@")[0].split("/")[0]
        known = known if known is not None else _top_level_keys(conf_dir)
        if top not in known:
            raise AmtError(f"{override}: amt has no setting {top!r}, so it would be ignored (see conf/train.yaml)")


RUN_START_BYTES = 1 << 16
"""Free space a run needs before it starts: Hydra's record of the run and the first log lines."""


def check_output_folder(overrides: Sequence[str], default: str) -> None:
    """Refuse, before Hydra makes its run folder, an output folder amt could not write in (a read-only
    or full disk, no permission): Hydra would answer with a traceback, or leave a 0-byte config.yaml.
    The folder is the one the overrides name (``hydra.run.dir``, ``hydra.sweep.dir``,
    ``paths.output_dir``), else ``$AMT_OUTPUT_DIR``, else ``default``."""
    named = dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith(("+", "~")))
    folder = next(
        (named[key] for key in ("hydra.run.dir", "hydra.sweep.dir", "paths.output_dir") if key in named),
        os.environ.get("AMT_OUTPUT_DIR") or default,
    )
    if "${" in folder:
        return  # an interpolation: Hydra resolves it
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise AmtError(f"{folder}: cannot write runs here ({existing} is not a writable folder)")
    if shutil.disk_usage(existing).free < RUN_START_BYTES:
        raise AmtError(f"{folder}: cannot write runs here (No space left on device)")


def _positive_int(value: object, minimum: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_run_config(cfg) -> None:
    """Refuse settings Hydra accepts but a run cannot use, each with one line naming the setting."""
    if not _positive_int(cfg.get("seed"), 0):
        raise AmtError(f"seed={cfg.get('seed')!r}: must be a whole number from 0")
    if not isinstance(cfg.get("test"), bool):
        raise AmtError(f"test={cfg.get('test')!r}: must be true or false")
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    if not _positive_int(max_epochs):
        raise AmtError(f"trainer.max_epochs={max_epochs!r}: must be a whole number from 1")
    for key, minimum in (("data.batch_size", 1), ("data.datamodule.batch_size", 1), ("data.datamodule.num_workers", 0)):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not _positive_int(value, minimum):
            raise AmtError(f"{key}={value!r}: must be a whole number from {minimum}")
    for key in ("ckpt_path", "init_from", "grow_from"):
        value = cfg.get(key)
        if value is not None and not isinstance(value, str):
            raise AmtError(f"{key}={value!r}: must be the path of a checkpoint")


def stage_epochs(total: int, stages: int) -> list[int]:
    """``total`` epochs split into ``stages`` nearly equal stages, the first ones longest: 10, 3 → [4, 3, 3].

    Registered as the resolver ``${amt.stages:TOTAL,STAGES}`` so the staged schedule fills any run
    length. Every stage gets at least one epoch, so a run shorter than ``stages`` epochs ends early in it.
    """
    if stages < 1:
        raise AmtError(f"a staged schedule needs at least one stage, got {stages}")
    return [max(1, total // stages + (1 if stage < total % stages else 0)) for stage in range(stages)]


def group_options(command: str, conf_dir: Path = CONF_DIR) -> str:
    """The config groups ``command`` reads and their choices, one group per line, for its ``--help``.

    Registered as the resolver ``${amt.groups:COMMAND}``, used by ``hydra.help.template``: Hydra's own
    list shows every group under conf/, the sweep-only ones in ``amt train --help`` too.
    """
    lines = []
    for group in sorted(path for path in conf_dir.iterdir() if path.is_dir() and path.name not in NOT_GROUPS):
        if command == "train" and group.name in SWEEP_GROUPS:
            continue
        options = sorted(str(p.relative_to(group).with_suffix("")) for p in group.rglob("*.yaml"))
        lines.append(f"{group.name}: {', '.join(options)}")
    return "\n".join(lines)


OmegaConf.register_new_resolver("amt.stages", stage_epochs, replace=True)
OmegaConf.register_new_resolver("amt.groups", group_options, replace=True)
