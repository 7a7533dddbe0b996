"""Checkpoints: read once, into the model and everything it carries.

A checkpoint is the one ``train.py`` writes (a :class:`amt.module.TranscriptionModule`), or that
file packed for sharing (:func:`pack`). It holds tensors and plain values only, so it loads with
``torch.load(weights_only=True)``. What it carries:

* the model's weights (``state_dict``, keys ``model.*``);
* the architecture: the ``model_config`` hyperparameter when the checkpoint saves one, else the
  model section of the run's composed Hydra config: ``NAME.yaml`` beside ``NAME.ckpt``, or the
  training run's ``.hydra/config.yaml`` (``RUN/checkpoints/NAME.ckpt`` → ``RUN/.hydra/config.yaml``).
  A context model's config holds its frame grid (``hop``);
* how a window model's spectra were transformed (log-compressed, standardised with the training
  split's statistics: :data:`SPECTRA_STATE_KEY`; older checkpoints: the train config);
* the decoder settings ``amt tune --save`` stored (:data:`DECODER_CONFIG_KEY`).
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from amt.bundled import DEFAULT_CHECKPOINT
from amt.decode import DecoderConfig
from amt.errors import AmtError
from amt.files import write_atomically
from amt.grid import WINDOW_SIZE, FrameGrid, own_grid
from amt.models.base import TranscriptionModel

log = logging.getLogger(__name__)

DECODER_CONFIG_KEY = "decoder_config"
"""Where a checkpoint's hyperparameters keep its tuned decoder settings."""
KEPT_WHEN_PACKED = ("model_config", DECODER_CONFIG_KEY)
"""The hyperparameters a packed checkpoint keeps: what :func:`load` reads."""
SPECTRA_STATE_KEY = "SpectraDataModule"
"""Where Lightning saves :meth:`amt.data.datamodule.SpectraDataModule.state_dict` (under the class's name):
whether the spectra were log-compressed and standardised, and the training split's statistics."""
AMT_MODELS = ("amt.models.", "amt.features.LogFrequency")
"""What a checkpoint's model config may name as a ``_target_``: amt's models and their front end."""
RESUME_KEYS = ("optimizer_states", "loops", "epoch")
"""What a checkpoint needs to resume training (``ckpt_path=``); a packed model lacks them."""


class Preprocessed(TranscriptionModel):
    """A window model trained on transformed spectra, fed raw magnitudes: ``log1p`` first
    (``data.datamodule.log_compress=true``), then standardised with the training split's per-bin
    ``mean`` and ``std`` (``data.datamodule.standardise=true``, ``statistics`` = ``(mean, std)``), as the
    data module did."""

    def __init__(self, model: TranscriptionModel, log_compress: bool, statistics: tuple | None = None):
        super().__init__(model.bins)
        self.model, self.log_compress, self.labels = model, log_compress, model.labels
        self.standardise = statistics is not None
        if statistics is not None:
            self.register_buffer("mean", torch.as_tensor(statistics[0], dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(statistics[1], dtype=torch.float32))

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        if self.log_compress:
            spectra = torch.log1p(spectra)
        if self.standardise:
            spectra = (spectra - self.mean) / self.std
        return self.model(spectra)


def _check_integrity(ckpt: Path) -> None:
    """Refuse a damaged file: every member of a checkpoint's zip archive must match its CRC-32."""
    try:
        if not zipfile.is_zipfile(ckpt):
            return  # torch's legacy format has no checksums; torch.load judges it
        with zipfile.ZipFile(ckpt) as archive:
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise AmtError(f"{ckpt}: damaged or truncated checkpoint ({error})") from None
    if damaged is not None:
        raise AmtError(f"{ckpt}: damaged checkpoint ({damaged} does not match its checksum)")


def remove_damaged_checkpoints(folder: Path) -> list[Path]:
    """Delete the checkpoints in a run's folder that a failed write left incomplete (they fail their
    checksums), so no half-written file passes for a checkpoint; returns the ones deleted."""
    removed = []
    for ckpt in folder.glob("*.ckpt"):
        try:
            _check_integrity(ckpt)
            if not zipfile.is_zipfile(ckpt):
                raise AmtError(f"{ckpt}: truncated")
        except AmtError:
            ckpt.unlink(missing_ok=True)
            removed.append(ckpt)
    return removed


def read(ckpt: Path) -> dict:
    """The checkpoint's contents (tensors and plain values), refusing what is not an amt checkpoint.

    Loaded with ``weights_only=True``: a checkpoint is data, and one that holds Python objects (code)
    is refused without running any of it.
    """
    _check_integrity(ckpt)
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises almost anything for a file that is not a checkpoint
        if "Unsupported global" in str(error):
            raise AmtError(
                f"{ckpt}: holds Python objects, and amt loads only plain data (tensors, numbers, text)"
            ) from None
        raise AmtError(f"{ckpt}: not a PyTorch checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise AmtError(f"{ckpt}: not a checkpoint of amt's TranscriptionModule (not a dictionary)")
    return checkpoint


def _weights(checkpoint: dict, ckpt: Path) -> dict[str, torch.Tensor]:
    """The model's weights, keys without ``model.``."""
    state = checkpoint.get("state_dict")
    weights = {k.removeprefix("model."): v for k, v in (state or {}).items() if k.startswith("model.")}
    if not weights:
        raise AmtError(f"{ckpt}: not a checkpoint of amt's TranscriptionModule (no model.* weights in its state_dict)")
    return weights


def _hyperparameters(checkpoint: dict) -> dict:
    return checkpoint.get("hyper_parameters") or {}


def _train_config(ckpt: Path):
    """The composed train config beside the checkpoint or in its run folder (None when there is none)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for candidate in (ckpt.with_suffix(".yaml"), ckpt.parent.parent / ".hydra" / "config.yaml"):
        if candidate.is_file():
            try:
                return OmegaConf.load(candidate), candidate
            except (OSError, OmegaConfBaseException, ValueError) as error:
                raise AmtError(f"{candidate}: not a readable train config ({error})") from None
    return None, None


def _preprocessing(contents: dict, config, source: Path | None) -> tuple[bool, tuple | None]:
    """How the model's spectra were transformed: the data module's state in the checkpoint, else the
    train config's options (a standardised model without saved statistics is refused)."""
    from omegaconf import OmegaConf

    state = contents.get(SPECTRA_STATE_KEY)
    if state:
        statistics = (state["mean"], state["std"]) if state.get("standardise") else None
        return bool(state.get("log_compress")), statistics
    options = (OmegaConf.select(config, "data.datamodule") if config is not None else None) or {}
    if options.get("standardise", False):
        raise AmtError(
            f"{source}: the model was trained on standardised spectra (data.datamodule.standardise=true), "
            "and this checkpoint does not carry the training split's statistics (train it again with amt)"
        )
    return bool(options.get("log_compress", False)), None


def _targets(node: object) -> list[object]:
    """Every ``_target_`` in a plain config (dicts and lists), nested ones included."""
    if isinstance(node, dict):
        own = [node["_target_"]] if "_target_" in node else []
        return own + [t for key, value in node.items() if key != "_target_" for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


def _build_model(node, source: Path) -> TranscriptionModel:
    """The model a config describes; only amt's own models are built (a checkpoint is data, never code)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(node, DictConfig):
        try:
            node = OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as error:
            raise AmtError(f"{source}: its model config does not resolve ({error})") from None
    if not node or "_target_" not in node:
        raise AmtError(f"{source}: has no model section with a _target_")
    foreign = [t for t in _targets(node) if not (isinstance(t, str) and t.startswith(AMT_MODELS))]
    if foreign:
        raise AmtError(
            f"{source}: its model config names {foreign[0]!r}; amt builds only its own models (amt.models.*)"
        )
    try:
        model = instantiate(node)
    except InstantiationException as error:
        raise AmtError(f"{source}: cannot build its model ({error.__cause__ or error})") from None
    if not isinstance(model, TranscriptionModel):
        raise AmtError(f"{source}: its model is not an amt TranscriptionModel")
    return model


def _fit_weights(model: nn.Module, weights: dict[str, torch.Tensor], ckpt: Path, target: str) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = str(error).splitlines()
        raise AmtError(f"{ckpt}: its weights do not fit {target} ({lines[-1].strip()})") from None


def _existing(ckpt: str | os.PathLike | None) -> Path:
    """``ckpt`` (default: :data:`DEFAULT_CHECKPOINT`), which must exist."""
    ckpt = Path(ckpt) if ckpt is not None else DEFAULT_CHECKPOINT
    if not ckpt.is_file():
        if ckpt == DEFAULT_CHECKPOINT:
            raise AmtError(f"no default model is installed ({ckpt} is missing); pass --ckpt PATH")
        raise AmtError(f"{ckpt}: no such checkpoint")
    return ckpt


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its model (eval mode, CPU) and what the file carries with it."""

    path: Path
    model: TranscriptionModel
    decoder_config: DecoderConfig
    contents: dict

    def grid(self, hop: int | None = None) -> FrameGrid:
        """The frame grid to transcribe on: a context model's own, else windows every ``hop`` samples
        (default: the report's back-to-back windows). A ``hop`` a context model cannot follow is ignored
        with a warning."""
        if self.model.grid is not None:
            return own_grid(self.model.grid, hop, self.path.name)
        return FrameGrid(hop if hop is not None else WINDOW_SIZE)

    @property
    def context(self) -> bool:
        """Whether the model is a context model (on its own grid, with an onset head)."""
        return self.model.context

    def save_decoder_config(self, config: DecoderConfig) -> None:
        """Store ``config`` in the checkpoint file (atomically), where :func:`load` finds it next time."""
        contents = dict(self.contents)
        contents["hyper_parameters"] = {**_hyperparameters(contents), DECODER_CONFIG_KEY: asdict(config)}
        write_atomically(self.path, ".ckpt", lambda tmp: torch.save(contents, tmp))


def _decoder_config(checkpoint: dict) -> DecoderConfig:
    """Saved decoder settings over :class:`DecoderConfig`'s defaults: thresholds belong to their model."""
    saved = _hyperparameters(checkpoint).get(DECODER_CONFIG_KEY) or {}
    known = {field.name for field in fields(DecoderConfig)}
    return DecoderConfig(**{name: value for name, value in saved.items() if name in known})


def load(ckpt: str | os.PathLike | None = None) -> Checkpoint:
    """The checkpoint ``ckpt`` (default: :data:`DEFAULT_CHECKPOINT`), read once.

    The model takes raw ``abs(rfft)`` spectra: one trained on log-compressed or standardised spectra
    (as the data module's state in the checkpoint, or the train config, says) comes wrapped in
    :class:`Preprocessed`.
    """
    ckpt = _existing(ckpt)
    contents = read(ckpt)
    weights = _weights(contents, ckpt)
    saved_model_config = _hyperparameters(contents).get("model_config")
    config, config_file = _train_config(ckpt)
    if saved_model_config is None and config is None:
        raise AmtError(
            f"{ckpt}: cannot tell which model this checkpoint holds: it saves no model_config, and neither "
            f"{ckpt.with_suffix('.yaml').name} beside it nor its run's .hydra/config.yaml exists"
        )
    log_compress, statistics = _preprocessing(contents, config, config_file)
    source = ckpt if saved_model_config is not None else config_file
    model = _build_model(saved_model_config if saved_model_config is not None else config.get("model"), source)
    _fit_weights(model, weights, ckpt, f"the model in {source}")
    if log_compress or statistics is not None:
        model = Preprocessed(model, log_compress, statistics)
    model = model.eval()
    return Checkpoint(ckpt, model, _decoder_config(contents), contents)


def initialise_from(model: nn.Module, ckpt: str | os.PathLike) -> None:
    """Start training ``model`` from the weights of a checkpoint (fine-tuning).

    Unlike resuming (``ckpt_path``), only the weights are taken: the optimiser, schedule and epoch
    count start afresh. float16 weights (the bundled models) are widened to the model's float32.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise AmtError(f"{ckpt}: no such checkpoint to initialise from")
    weights = _weights(read(ckpt), ckpt)
    _fit_weights(model, weights, ckpt, f"model={type(model).__name__} as configured (check the model overrides)")


def pack(source: str | os.PathLike, target: str | os.PathLike, half: bool = True) -> None:
    """A checkpoint → a model to bundle or share: its weights (float16 unless ``half=False``), the
    hyperparameters :func:`load` reads (:data:`KEPT_WHEN_PACKED`), the spectra's preprocessing and the
    epoch; the optimiser and scheduler states, callbacks and loops are dropped."""
    checkpoint = load(source)  # refuses what amt could not load, with its own error
    weights = {k: v for k, v in checkpoint.contents["state_dict"].items() if k.startswith("model.")}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    hyperparameters = _hyperparameters(checkpoint.contents)
    if "model_config" not in hyperparameters:
        raise AmtError(f"{source}: saves no model_config, so a packed copy could not be loaded on its own")
    packed = {
        "state_dict": weights,
        "hyper_parameters": {k: hyperparameters[k] for k in KEPT_WHEN_PACKED if k in hyperparameters},
        "epoch": checkpoint.contents.get("epoch"),
    }
    if SPECTRA_STATE_KEY in checkpoint.contents:
        packed[SPECTRA_STATE_KEY] = checkpoint.contents[SPECTRA_STATE_KEY]
    write_atomically(target, ".ckpt", lambda tmp: torch.save(packed, tmp))


def _epochs_done(contents: dict) -> int:
    """Epochs a training checkpoint has finished (its fit loop's count; saved at or after an epoch's end)."""
    try:
        return int(contents["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return int(contents["epoch"]) + 1


def check_resumable(ckpt: str | os.PathLike, model_config: dict, max_epochs: int) -> None:
    """Refuse, with one line, a checkpoint that training could not resume from (``ckpt_path=``): not a
    plain-data training checkpoint (missing, damaged, code inside, a packed model), a model other than
    the run's, or no epochs left under ``max_epochs``."""
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise AmtError(f"{ckpt}: no such checkpoint to resume from")
    contents = read(ckpt)
    _weights(contents, ckpt)
    missing = [key for key in RESUME_KEYS if key not in contents]
    if missing:
        raise AmtError(
            f"{ckpt}: a model without its training state ({', '.join(missing)}), so training cannot resume from it; "
            "fine-tune from it with init_from= instead"
        )
    saved = _hyperparameters(contents).get("model_config")
    if saved is not None:
        _build_model(saved, ckpt)  # refuses foreign targets before Lightning touches the file
        if saved != model_config:
            changed = sorted(k for k in {*saved, *model_config} if saved.get(k) != model_config.get(k))
            raise AmtError(
                f"{ckpt}: holds a different model ({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}, "
                f"this run: {', '.join(f'{k}={model_config.get(k)!r}' for k in changed)}); resume with the same model"
            )
    done = _epochs_done(contents)
    if done >= max_epochs:
        raise AmtError(f"{ckpt}: has trained {done} epochs already; set trainer.max_epochs above {done} to go on")
