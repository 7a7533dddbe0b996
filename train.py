"""Train one model: ``python train.py model=cnn_multi`` (see conf/train.yaml for every option).

Composes data, model, optimiser, schedule, trainer, loggers and callbacks from conf/, fits,
tests the best checkpoint, and leaves in the run directory: ``checkpoints/`` (best by val/ap and
last), ``metrics.json``, ``curves.png``, a CSV log and (by default) an offline W&B run.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from amt.callbacks import TrainingCurves
from amt.checkpoint import initialise_from
from amt.config import check_group_choices
from amt.errors import AmtError
from amt.module import TranscriptionModule

log = logging.getLogger("amt.train")
REPORTED = ("train/ap", "val/ap", "test/ap", "train/loss", "val/loss", "test/loss")


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, TranscriptionModule, L.Trainer]:
    """Instantiate everything a run needs from its composed config, checking that the parts fit."""
    datamodule = instantiate(cfg.data.datamodule)
    model = instantiate(cfg.model)
    if cfg.get("init_from"):
        initialise_from(model, cfg.init_from)
    if datamodule.bins != model.bins:
        raise AmtError(f"data.bins={datamodule.bins} does not match the model, which takes {model.bins} bins")
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    module = TranscriptionModule(
        model=model,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        model_config=OmegaConf.to_container(cfg.model, resolve=True),
    )
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    return datamodule, module, trainer


def config_name(cfg: DictConfig) -> str:
    """The experiment (or model) this run was composed from, for tables and dashboards."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    return choices.get("experiment") or choices.get("model") or cfg.model._target_.rsplit(".", 1)[-1]


def epoch_history(trainer: L.Trainer) -> list[dict]:
    """Train/val metrics of every epoch, as the curves callback recorded them.

    Read right after fitting: testing the best checkpoint restores callback states from it.
    """
    curves = next((c for c in trainer.callbacks if isinstance(c, TrainingCurves)), None)
    return [dict(row) for row in curves.history] if curves else []


def final_metrics(
    trainer: L.Trainer, module: TranscriptionModule, last: dict, test_results: dict, seconds: float
) -> dict:
    checkpoint = trainer.checkpoint_callback
    metrics = {name: last[name] for name in REPORTED if name in last}
    metrics.update({name: float(value) for name, value in test_results.items() if name in REPORTED})
    if checkpoint is not None and checkpoint.best_model_score is not None:
        metrics["best/val_ap"] = float(checkpoint.best_model_score)
        metrics["best_checkpoint"] = checkpoint.best_model_path
    metrics.update(
        epochs=trainer.current_epoch,
        wall_time_s=round(seconds, 1),
        parameters=sum(p.numel() for p in module.model.parameters()),
    )
    return metrics


def finish_wandb_run(logger: WandbLogger, metrics: dict) -> None:
    """Final metrics into the run summary, the best checkpoint as a model artifact, then close the run.

    Done here rather than with ``WandbLogger(log_model=True)``, which Lightning refuses offline;
    an offline run keeps the artifact and uploads it with ``wandb sync``.
    """
    import wandb  # here, so that runs with logger=csv start without loading wandb

    run = logger.experiment
    final = {name: value for name, value in metrics.items() if name != "history"}  # the curves are logged already
    run.summary.update(final)
    if metrics.get("best_checkpoint"):
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=final)
        artifact.add_file(metrics["best_checkpoint"])
        run.log_artifact(artifact, aliases=["best"])
    run.finish()


def train(cfg: DictConfig) -> dict:
    """Fit and test one configuration; returns (and writes) its metrics. Shared with sweep.py."""
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module, trainer = build(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    history = epoch_history(trainer)
    last = history[-1] if history else {}
    test_results = {}
    if cfg.test:
        ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
        test_results = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0]
    metrics = {
        "config": config_name(cfg),
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        **final_metrics(trainer, module, last, test_results, time.perf_counter() - start),
        "history": history,
    }
    run_dir = Path(cfg.paths.run_dir)
    if trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                finish_wandb_run(logger, metrics)
        log.info("metrics: %s", json.dumps(metrics))
    return metrics


def run(cfg: DictConfig) -> dict:
    """:func:`train`, with a user error reported as one line and exit status 2."""
    try:
        return train(cfg)
    except InstantiationException as error:
        if not isinstance(error.__cause__, AmtError):
            raise
        fail(error.__cause__)
    except AmtError as error:
        fail(error)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


def fail(error: AmtError) -> None:
    print(f"amt: error: {error}", file=sys.stderr)
    sys.exit(2)


def check_command_line() -> None:
    """Refuse unknown config-group choices in one line, before Hydra composes anything."""
    try:
        check_group_choices(sys.argv[1:])
    except AmtError as error:
        fail(error)


if __name__ == "__main__":
    check_command_line()
    main()
