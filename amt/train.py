"""Train one model: ``amt train model=cnn_multi``, or ``python train.py model=cnn_multi`` in the repository
(see conf/train.yaml for every option).

Composes data, model, optimiser, schedule, trainer, loggers and callbacks from conf/, fits,
tests the best checkpoint, and leaves in the run directory: ``checkpoints/`` (best by val/ap and
last), ``metrics.json``, ``curves.png``, a CSV log and (by default) an offline W&B run.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from amt.callbacks import TrainingCurves
from amt.checkpoint import check_resumable, initialise_from, remove_damaged_checkpoints
from amt.config import CONF_DIR, check_group_choices, check_output_folder, check_run_config
from amt.errors import AmtError
from amt.files import write_json
from amt.grow import grow_from
from amt.loggers import previous_run_id, run_name, run_tags
from amt.module import TranscriptionModule

log = logging.getLogger("amt.train")
# Lightning 2.6 on torch 2.13 warns about its own use of a deprecated torch API: nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


class _NoAdverts(logging.Filter):
    """Lightning 2.6 prints a tip to install its cloud logger at every fit."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdverts())
REPORTED = ("train/ap", "val/ap", "test/ap", "train/loss", "val/loss", "test/loss")


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, TranscriptionModule, L.Trainer]:
    """Instantiate everything a run needs from its composed config, checking that the parts fit."""
    model = instantiate(cfg.model)
    if cfg.get("init_from") and cfg.get("grow_from"):
        raise AmtError("init_from and grow_from both set: start from one checkpoint")
    if cfg.get("init_from"):
        initialise_from(model, cfg.init_from)
    if cfg.get("grow_from"):
        grow_from(model, cfg.grow_from)
    datamodule = instantiate(cfg.data.datamodule)
    if datamodule.bins != model.bins:
        raise AmtError(f"data.bins={datamodule.bins} does not match the model, which takes {model.bins} bins")
    optimizer = instantiate(cfg.optimizer)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    check_factories(model, optimizer, scheduler)
    module = TranscriptionModule(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        model_config=OmegaConf.to_container(cfg.model, resolve=True),
        pos_weight=OmegaConf.to_container(cfg.loss.pos_weight, resolve=True),
        lr_scale=dotted(OmegaConf.to_container(cfg.lr_scale, resolve=True)) if cfg.get("lr_scale") else {},
    )
    loggers = [instantiate(node, **logger_options(node, cfg)) for node in (cfg.get("logger") or {}).values()]
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values()]
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    return datamodule, module, trainer


def dotted(tree: dict, prefix: str = "") -> dict:
    """A nested config mapping as one level of dotted names: ``+lr_scale.encoder.convs.0=10`` on the
    command line nests ``{encoder: {convs: {"0": 10}}}``, which names the parameters under ``encoder.convs.0``."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat |= dotted(value, name + ".") if isinstance(value, dict) else {name: value}
    return flat


def logger_options(node: DictConfig, cfg: DictConfig) -> dict:
    """For the W&B logger: a run name and tags from the run's config, and a resumed run's W&B id."""
    if node.get("_target_") != "amt.loggers.wandb_logger":
        return {}
    preset = OmegaConf.select(cfg, "data.preset", default=None)
    name = config_name(cfg)
    options = {"tags": run_tags(name, preset, cfg.seed, node.get("tags") or [])}
    if node.get("name") is None:
        options["name"] = run_name(name, preset, cfg.seed)
    if cfg.get("ckpt_path") and (run_id := previous_run_id(cfg.ckpt_path)):
        options |= {"id": run_id, "resume": "allow"}
    return options


def check_factories(model: torch.nn.Module, optimizer, scheduler) -> None:
    """Build the optimiser and schedule once now, so a bad setting (``optimizer.lr=-1``) fails before
    training, in one line, instead of deep inside ``fit``."""
    try:
        trial = optimizer(model.parameters())
        if scheduler is not None:
            scheduler(trial)
    except (ValueError, TypeError) as error:
        raise AmtError(f"optimizer or scheduler settings: {error}") from None


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


RUN_FILES = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "metrics.json", "curves.png")
"""What a W&B run carries of its run folder, beside the metrics it logged."""


def finish_wandb_run(logger: WandbLogger, metrics: dict, run_dir: Path) -> None:
    """Final metrics into the run summary, the run's configs, metrics.json and curves.png into its files,
    the best checkpoint as a model artifact, then close the run.

    Done here rather than with ``WandbLogger(log_model=True)``, which Lightning refuses offline;
    an offline run keeps everything inside its own folder (the artifact is staged there too) and
    uploads it with ``wandb sync``.
    """
    import wandb  # here, so that runs with logger=csv start without loading wandb

    run = logger.experiment
    final = {name: value for name, value in metrics.items() if name != "history"}  # the curves are logged already
    run.summary.update(final)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            target = Path(run.dir) / name.replace(".hydra/", "hydra/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(run_dir / name, target)
    os.environ["WANDB_DATA_DIR"] = str(Path(logger.save_dir or run_dir) / "wandb")  # artifact staging
    if metrics.get("best_checkpoint"):
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=final)
        artifact.add_file(metrics["best_checkpoint"])
        run.log_artifact(artifact, aliases=["best"])
    run.finish()


def train(cfg: DictConfig) -> dict:
    """Fit and test one configuration; returns (and writes) its metrics. Every job of a sweep is one."""
    check_run_config(cfg)
    if cfg.ckpt_path:
        check_resumable(cfg.ckpt_path, OmegaConf.to_container(cfg.model, resolve=True), cfg.trainer.max_epochs)
    torch.set_float32_matmul_precision("high")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module, trainer = build(cfg)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    start = time.perf_counter()
    run_dir = Path(cfg.paths.run_dir)
    log.info("%s: run folder %s", config_name(cfg), run_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except SIGTERMException:
        history = epoch_history(trainer)
        if trainer.is_global_zero:
            write_json(
                {"config": config_name(cfg), "interrupted": "SIGTERM", "history": history}, run_dir / "metrics.json"
            )
        raise Interrupted(run_dir, len(history)) from None
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
    if trainer.is_global_zero:
        write_json(metrics, run_dir / "metrics.json")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                finish_wandb_run(logger, metrics, run_dir)
        log.info("%s", summary(metrics, run_dir))
    return metrics


def summary(metrics: dict, run_dir: Path) -> str:
    """The run's numbers as a short table for the log and the terminal (metrics.json has them all)."""
    rows = [f"{metrics['config']} finished: {metrics['epochs']} epoch(s) in {metrics['wall_time_s']:.0f} s, {run_dir}"]
    rows.append(f"{'':>6}{'train':>9}{'val':>9}{'test':>9}")
    for quantity, fmt in (("loss", ".4f"), ("ap", ".3f")):
        cells = [f"{metrics[key]:>9{fmt}}" if (key := f"{split}/{quantity}") in metrics else f"{'-':>9}"
                 for split in ("train", "val", "test")]  # fmt: skip
        rows.append(f"{'AP' if quantity == 'ap' else quantity:>6}" + "".join(cells))
    if "best/val_ap" in metrics:
        rows.append(f"best val AP {metrics['best/val_ap']:.3f}: {metrics.get('best_checkpoint', '')}")
    return "\n".join(rows)


class Interrupted(Exception):
    """Training was stopped by SIGTERM (a scheduler's time limit, ``kill``)."""

    def __init__(self, run_dir: Path, epochs: int):
        super().__init__(
            f"training stopped by SIGTERM after {epochs} epoch(s); resume with "
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"
        )


INTERRUPTED_STATUS = 128 + signal.SIGTERM
"""A run stopped by SIGTERM exits as a process killed by it would, so a scheduler never reads success."""


STARTED_RUN = {".hydra", "train.log"}
"""What a run folder holds before training begins: Hydra's record of the run and the log."""


def discard_unstarted_run(run_dir: Path) -> None:
    """Remove a run folder that holds only what Hydra wrote at start (a run refused before training)."""
    if run_dir.is_dir() and all(path.name in STARTED_RUN for path in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def run(cfg: DictConfig) -> dict:
    """:func:`train`, with a user error reported as one line and exit status 2 (143 when stopped by SIGTERM);
    a run refused before it trained leaves no run folder behind."""
    try:
        return train(cfg)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, AmtError):
            refuse(cfg, cause)
        if isinstance(cause, (ValueError, TypeError)):
            refuse(cfg, AmtError(f"{str(error).splitlines()[0].rstrip(':')}: {cause}"))
        raise
    except AmtError as error:
        refuse(cfg, error)
    except OSError as error:  # a full disk or a folder that went away while the run was writing
        run_dir = Path(cfg.paths.run_dir)
        removed = remove_damaged_checkpoints(run_dir / "checkpoints")
        where = error.filename2 or error.filename or run_dir
        cleaned = f"; {len(removed)} incomplete checkpoint(s) removed" if removed else ""
        refuse(cfg, AmtError(f"{where}: cannot write here ({error.strerror or error}){cleaned}"))
    except Interrupted as error:
        print(f"amt: error: {error}", file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


def refuse(cfg: DictConfig, error: AmtError) -> None:
    discard_unstarted_run(Path(cfg.paths.run_dir))
    fail(error)


def fail(error: AmtError) -> None:
    print(f"amt: error: {error}", file=sys.stderr)
    sys.exit(2)


def check_command_line(command: str) -> None:
    """Refuse unknown config-group choices in one line, before Hydra composes anything."""
    try:
        check_group_choices(sys.argv[1:], command=command)
        check_output_folder(sys.argv[1:], default="outputs")
    except AmtError as error:
        fail(error)


def command() -> None:
    """``amt train`` and ``python train.py``: Hydra reads the overrides from ``sys.argv``."""
    check_command_line("train")
    main()
