"""Run a study as a Hydra multirun: ``amt sweep -m [study=NAME] [scale=NAME] [train overrides]``, or
``python sweep.py -m ...`` in the repository.

Every job is one :func:`amt.train.train` run (same function, same configs). Studies (``conf/study/``)
choose what is swept, scales (``conf/scale/``) the epochs, corpus and seeds; any other override
applies to every job. Jobs run in parallel through a Hydra launcher (joblib on one machine by
default, ``hydra/launcher=slurm`` on a cluster); a failed job is recorded and the others go on, a
job killed from outside (the OOM killer) included, since each job trains in a process of its own. Run
again, a sweep skips the jobs that finished in its folder and resumes the ones that did not from their
``last.ckpt``. When the multirun ends,
:class:`amt.results.AggregateResults` writes results.csv, results.md and results.png.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from amt.checkpoint import check_resumable
from amt.config import CONF_DIR
from amt.errors import AmtError
from amt.jobs import (
    METRICS_FILE,
    apply_pinning,
    clear_previous_outcome,
    finished_metrics,
    pin_job,
    record_failure,
    seed_of,
    setting_of,
    visible_gpus,
)
from amt.threads import usable_cores
from amt.train import check_command_line, train

log = logging.getLogger("amt.sweep")
OBJECTIVE = "best/val_ap"
"""What a job returns to the sweeper (the Optuna study maximises it)."""


def parallel_jobs(launcher: DictConfig) -> int:
    """How many jobs the launcher runs at once on this machine (joblib's ``n_jobs``; 1 otherwise)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return 1
    return usable_cores() if n_jobs < 0 else int(n_jobs)


def tag_wandb_run(cfg: DictConfig, overrides: list[str], swept_keys: list[str]) -> None:
    """Put the job's W&B run in the sweep's group, tagged with study, setting (its swept values) and seed."""
    if "wandb" not in (cfg.get("logger") or {}):
        return
    with open_dict(cfg):
        cfg.logger.wandb.group = cfg.sweep.name
        cfg.logger.wandb.tags = [
            f"study:{cfg.sweep.study}",
            f"setting:{setting_of(overrides, swept_keys)}"[:64],  # W&B's limit on a tag
            f"seed:{seed_of(overrides, cfg.seed)}",
        ]


class JobKilled(Exception):
    """A job's training process was killed from outside (the OOM killer, ``kill -9``)."""


def _train_and_record(cfg: DictConfig, run_dir: Path, description: str) -> None:
    """The job's own process: train, or record why not and exit 1."""
    try:
        train(cfg)
    except Exception as error:
        log.exception("job %s failed", description)
        record_failure(run_dir, error)
        sys.exit(1)


def run_job(cfg: DictConfig, run_dir: Path, description: str) -> dict | None:
    """:func:`amt.train.train` in a forked process of its own, so that a job killed from outside is recorded
    as failed like a job that raised, and the study goes on; the job's metrics, or None when it failed."""
    job = multiprocessing.get_context("fork").Process(target=_train_and_record, args=(cfg, run_dir, description))
    job.start()
    job.join()
    if job.exitcode == 0:
        return json.loads((run_dir / METRICS_FILE).read_text())
    if job.exitcode is not None and job.exitcode < 0:
        killer = signal.Signals(-job.exitcode).name
        log.error("job %s was killed by %s", description, killer)
        record_failure(run_dir, JobKilled(f"the job's process was killed by {killer} (out of memory?)"))
    return None


def resume_unfinished(cfg: DictConfig, run_dir: Path, job: int) -> None:
    """A job an earlier run of this sweep started but did not finish goes on from its ``last.ckpt``,
    when that checkpoint fits the job (same model, epochs left); otherwise it starts afresh."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if cfg.get("ckpt_path") or not last.is_file():
        return
    try:
        check_resumable(last, OmegaConf.to_container(cfg.model, resolve=True), cfg.trainer.max_epochs)
    except AmtError as error:
        log.info("job %s starts afresh: %s", job, error)
        return
    log.info("job %s was interrupted in an earlier run of this sweep: resuming from %s", job, last)
    with open_dict(cfg):
        cfg.ckpt_path = str(last)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="sweep")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    run_dir = Path(cfg.paths.run_dir)
    earlier = finished_metrics(run_dir, overrides)
    if earlier is not None:
        log.info(
            "job %s (%s) finished in an earlier run of this sweep: skipped", hydra_cfg.job.num, " ".join(overrides)
        )
        return float(earlier.get(OBJECTIVE, math.nan))
    clear_previous_outcome(run_dir)
    resume_unfinished(cfg, run_dir, hydra_cfg.job.num)
    cpus = usable_cores()
    apply_pinning(pin_job(hydra_cfg.job.num, parallel_jobs(hydra_cfg.launcher), visible_gpus(), cpus), cfg)
    tag_wandb_run(cfg, overrides, list(hydra_cfg.sweeper.get("params") or {}))
    metrics = run_job(cfg, run_dir, f"{hydra_cfg.job.num} ({' '.join(overrides)})")
    return math.nan if metrics is None else float(metrics.get(OBJECTIVE, math.nan))


def command() -> None:
    """``amt sweep`` and ``python sweep.py``: Hydra reads the overrides from ``sys.argv``."""
    check_command_line("sweep")
    main()
