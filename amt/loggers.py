"""Experiment loggers: Weights & Biases, offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
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
    return WandbLogger(offline=wandb_offline(offline), **kwargs)
