"""Experiment loggers: Weights & Biases, offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger


def wandb_logged_in() -> bool:
    """True when an API key is at hand (``WANDB_API_KEY`` or the netrc entry ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_offline(offline: bool | None) -> bool:
    """``offline`` as configured; None (the default) means offline unless somebody is logged in."""
    return not wandb_logged_in() if offline is None else offline


def wandb_logger(offline: bool | None = None, **kwargs) -> WandbLogger:
    """A :class:`WandbLogger` that runs offline when ``offline`` is None and nobody is logged in.

    Offline runs land in ``<save_dir>/wandb/offline-run-*`` and can be uploaded later with
    ``wandb sync``; ``WANDB_MODE`` still overrides everything, as wandb itself defines.
    """
    logger = WandbLogger(offline=wandb_offline(offline), **kwargs)
    # Lightning always passes wandb.init an `anonymous` setting, which wandb now only warns about.
    logger._wandb_init.pop("anonymous", None)
    return logger


def previous_run_id(ckpt_path: str | Path) -> str | None:
    """The W&B run id of the training run a checkpoint came from (``RUN/checkpoints/X.ckpt`` →
    ``RUN/wandb/*-run-*-ID``), so a resumed run continues that W&B run instead of starting another."""
    runs = sorted((Path(ckpt_path).parent.parent / "wandb").glob("*run-*-*"))
    runs = [run for run in runs if run.is_dir() and not run.is_symlink()]
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def run_name(config: str, preset: str | None, seed: int) -> str:
    """A run's name on the dashboard: what was trained, on which corpus, with which seed."""
    return "-".join(part for part in (config.replace("/", "-"), preset, f"seed{seed}") if part)


def run_tags(model: str, preset: str | None, seed: int, extra: Sequence[str] = ()) -> list[str]:
    """Tags that let a dashboard filter runs: model, corpus preset, seed, then any given."""
    tags = [f"model:{model}", f"seed:{seed}"] + ([f"preset:{preset}"] if preset else [])
    return [*tags, *(tag for tag in extra if tag not in tags)]
