"""Run a study as a Hydra multirun: ``python sweep.py -m [study=NAME] [scale=NAME] [train.py overrides]``.

Every job is one :func:`train.train` run (same function, same configs). Studies (``conf/study/``)
choose what is swept, scales (``conf/scale/``) the epochs, corpus and seeds; any other override
applies to every job. Jobs run in parallel through a Hydra launcher (joblib on one machine by
default, ``hydra/launcher=slurm`` on a cluster); a failed job is recorded and the others go on; a
job that already finished in this sweep's folder is skipped. When the multirun ends,
:class:`amt.results.AggregateResults` writes results.csv, results.md and results.png.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from amt.sweeps import (
    apply_pinning,
    clear_previous_outcome,
    finished_metrics,
    pin_job,
    record_failure,
    seed_of,
    setting_of,
    visible_gpus,
)
from train import check_command_line, train

log = logging.getLogger("amt.sweep")
OBJECTIVE = "best/val_ap"
"""What a job returns to the sweeper (the Optuna study maximises it)."""


def parallel_jobs(launcher: DictConfig) -> int:
    """How many jobs the launcher runs at once on this machine (joblib's ``n_jobs``; 1 otherwise)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return 1
    return (os.cpu_count() or 1) if n_jobs < 0 else int(n_jobs)


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


@hydra.main(version_base="1.3", config_path="conf", config_name="sweep")
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
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    apply_pinning(pin_job(hydra_cfg.job.num, parallel_jobs(hydra_cfg.launcher), visible_gpus(), cpus))
    tag_wandb_run(cfg, overrides, list(hydra_cfg.sweeper.get("params") or {}))
    try:
        metrics = train(cfg)
    except Exception as error:  # one failed job must not stop the study: recorded, shown as failed in results
        log.exception("job %s (%s) failed", hydra_cfg.job.num, " ".join(overrides))
        record_failure(run_dir, error)
        return math.nan
    return float(metrics.get(OBJECTIVE, math.nan))


if __name__ == "__main__":
    check_command_line()
    main()
