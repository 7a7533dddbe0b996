"""One job of a study (``python sweep.py -m``): its resources, its identity, and whether it already ran.

A study is a Hydra multirun whose jobs are plain ``train.py`` runs. What is specific to a job of
a sweep lives here: pinning it to a GPU or a share of the CPU threads, naming its setting (the
swept overrides without the seed) for tables and W&B, and skipping it when an earlier run of the
same sweep already finished it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf, open_dict

from amt.files import write_atomically

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
FAILURE_FILE = "failed.txt"
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def visible_gpus() -> list[str]:
    """The GPUs this process may use, found without starting CUDA (which would freeze the choice).

    ``CUDA_VISIBLE_DEVICES`` when the user set it, else one entry per GPU the NVIDIA driver lists.
    """
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [gpu for gpu in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if gpu.strip()]
    if NVIDIA_GPUS.is_dir():
        return [str(index) for index in range(len(list(NVIDIA_GPUS.iterdir())))]
    return []


def pin_job(job_number: int, parallel_jobs: int, gpus: Sequence[str], cpus: int) -> dict[str, str | int]:
    """The GPU (``job_number`` modulo the GPU count) or the CPU threads (``cpus // parallel_jobs``) of one job.

    Returned rather than applied so that it can be tested; :func:`apply_pinning` applies it.
    """
    if gpus:
        return {"CUDA_VISIBLE_DEVICES": gpus[job_number % len(gpus)]}
    return {"threads": max(1, cpus // max(1, parallel_jobs))}


def apply_pinning(pinning: dict[str, str | int], cfg: DictConfig) -> None:
    """Set the job's GPU before CUDA starts in this process, or its share of the CPU threads
    (``threads.intra_op``, which the run's :class:`amt.callbacks.CpuThreads` applies).

    A joblib worker runs several jobs one after another; once CUDA has started in it, the worker
    keeps the GPU of its first job (CUDA reads ``CUDA_VISIBLE_DEVICES`` once), which is logged.
    """
    import torch

    if "CUDA_VISIBLE_DEVICES" in pinning:
        gpu = str(pinning["CUDA_VISIBLE_DEVICES"])
        if torch.cuda.is_initialized():
            log.info(
                "CUDA already started in this worker; the job stays on GPU %s", os.environ.get("CUDA_VISIBLE_DEVICES")
            )
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            log.info("job pinned to GPU %s", gpu)
    elif OmegaConf.select(cfg, "threads.intra_op") == "auto":
        with open_dict(cfg):
            cfg.threads.intra_op = int(pinning["threads"])
        log.info("job pinned to %d CPU threads", pinning["threads"])


def _key(override: str) -> str:
    """The config key an override sets: ``+model.dropout=0.1`` → ``model.dropout``."""
    return override.partition("=")[0].lstrip("+~")


def setting_of(overrides: Sequence[str], keys: Collection[str] | None = None) -> str:
    """A job's setting: its overrides (only those of ``keys`` when given) without the seed, e.g. ``model.dropout=0.1``.

    ``default`` when nothing is left.
    """
    kept = [o for o in overrides if _key(o) != "seed" and (keys is None or _key(o) in keys)]
    return " ".join(sorted(kept)) or "default"


def seed_of(overrides: Sequence[str], default: int) -> int:
    return next((int(o.partition("=")[2]) for o in overrides if _key(o) == "seed"), default)


def finished_metrics(run_dir: Path, overrides: Sequence[str]) -> dict | None:
    """The metrics of an earlier run of this very job (same overrides) in ``run_dir``, if it finished."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if metrics.get("interrupted"):
        return None
    return metrics if sorted(metrics.get("overrides", [])) == sorted(overrides) else None


def record_failure(run_dir: Path, error: BaseException) -> None:
    """Leave ``failed.txt``, the error in one line, where the aggregation looks for it.

    Hydra wraps errors raised while building objects; the cause is the informative part.
    """
    cause = error.__cause__ if isinstance(error, InstantiationException) and error.__cause__ else error
    message = " ".join(str(cause).split())
    write_atomically(
        run_dir / FAILURE_FILE, ".txt", lambda tmp: Path(tmp).write_text(f"{type(cause).__name__}: {message}\n")
    )


def clear_previous_outcome(run_dir: Path) -> None:
    """Remove an earlier run's metrics or failure note before this job runs again in the same folder."""
    for name in (METRICS_FILE, FAILURE_FILE):
        (run_dir / name).unlink(missing_ok=True)
