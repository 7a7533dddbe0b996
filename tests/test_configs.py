"""Every yaml under conf/ composes with Hydra, resolves, and names importable ``_target_``s.

One test id per yaml: conf/train.yaml and conf/sweep.yaml as they are, and every other file as the
choice of its group on top of the config that has that group (conf/study/, conf/scale/ and
conf/hydra/launcher/ on sweep.yaml, everything else on train.yaml), one choice at a time. A study
is checked job by job (every choice of every swept config group), since its jobs, not its base,
are what runs. In-process with Hydra's compose API, as train.py and sweep.py compose; nothing is
instantiated (a datamodule would build its corpus).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import amt.config  # noqa: F401  (registers the ${amt.stages:...} resolver, as train.py's import does)

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
SWEEP_GROUPS = ("study", "scale", "hydra/launcher")
"""Groups of conf/sweep.yaml (a multirun's); every other group is conf/train.yaml's."""
COMPANIONS = {
    "model=context_gru": ["data=sequences"],
    "model=context_tcn": ["data=sequences"],
    "data=sequences": ["model=context_tcn"],
    "data=sequences_augmented": ["model=context_tcn"],
    "data=spectra": ["data.path=SPECTRA"],
}
"""What a choice needs beside it to make a run: sequences go with a context model (``${model.hop}``)
and the other way round; data=spectra has no default folder (``path: ???``)."""


def group_and_choice(yaml: Path) -> tuple[str, str]:
    """conf/experiment/report/cnn_multi.yaml → ("experiment", "report/cnn_multi"); under hydra/, two levels."""
    parts = yaml.relative_to(CONF).with_suffix("").parts
    depth = 2 if parts[0] == "hydra" else 1
    return "/".join(parts[:depth]), "/".join(parts[depth:])


def cases() -> Iterator:
    for yaml in sorted(CONF.rglob("*.yaml")):
        name = str(yaml.relative_to(CONF))
        if yaml.parent == CONF / "corpus":
            continue  # recipes, not a group of a run's config: test_every_corpus_recipe_loads
        if yaml.parent == CONF:
            yield pytest.param(yaml.stem, [], id=name)
            continue
        group, choice = group_and_choice(yaml)
        override = f"{group}={choice}"
        primary = "sweep" if group in SWEEP_GROUPS else "train"
        yield pytest.param(primary, [override, *COMPANIONS.get(override, [])], id=name)


@pytest.fixture
def compose_job(tmp_path, monkeypatch):
    """Compose ``config_name`` with overrides as Hydra does for a job: the hydra node filled in as at run time."""
    monkeypatch.setenv("AMT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AMT_OUTPUT_DIR", str(tmp_path / "outputs"))
    GlobalHydra.instance().clear()

    def compose_job(config_name: str, overrides: list[str]) -> DictConfig:
        overrides = [o.replace("SPECTRA", str(tmp_path / "spectra")) for o in overrides]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):  # what hydra's run_job sets before the job starts
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)  # for ${hydra:runtime.output_dir}
        return cfg

    yield compose_job
    HydraConfig.instance().cfg = None  # train.config_name and others ask HydraConfig.initialized()
    GlobalHydra.instance().clear()


def study_jobs(cfg: DictConfig) -> list[list[str]]:
    """Jobs of the study: one with every swept parameter at its first value (an interval at its
    start), and one for each further value of a swept config group (``experiment``, ``model``, ...).
    Other values (numbers) compose alike; the first job checks that their keys exist."""
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    values = {}
    for override in OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()]):
        key = override.get_key_element()  # with its "+" when the study adds a key
        if not override.is_sweep_override():
            values[key] = [override.get_value_element_as_str()]
        elif isinstance(override.value(), IntervalSweep):
            values[key] = [str(override.value().start)]
        else:
            values[key] = list(override.sweep_string_iterator())
    assert values, "a study sweeps nothing"
    first = {key: options[0] for key, options in values.items()}
    jobs = [[f"{key}={value}" for key, value in first.items()]]
    for group in values.keys() & cfg.hydra.runtime.choices.keys():
        for choice in values[group][1:]:
            jobs.append([f"{key}={choice if key == group else value}" for key, value in first.items()])
    return jobs


def targets(node) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        for value in node.values():
            yield from targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from targets(value)


def check_resolves_and_imports(cfg: DictConfig, tmp_path: Path) -> None:
    for key in cfg:  # the job's own config: every value set, every interpolation resolvable
        if key != "hydra":
            value = cfg[key]
            if isinstance(value, DictConfig):
                OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)  # the hydra node too (run, sweep, launcher dirs)
    assert resolved["paths"] == {
        "data_dir": str(tmp_path / "data"),
        "output_dir": str(tmp_path / "outputs"),
        "run_dir": str(tmp_path / "run"),
    }
    found = list(targets(resolved))
    assert "_target_" in resolved["model"] and found
    for target in found:
        module_name, _, attribute = target.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"{target}: {module_name} has no {attribute}"


@pytest.mark.parametrize(("config_name", "overrides"), list(cases()))
def test_config_composes_resolves_and_names_importable_targets(config_name, overrides, compose_job, tmp_path):
    cfg = compose_job(config_name, overrides)
    if overrides and overrides[0].startswith("study="):
        for job in study_jobs(cfg):
            check_resolves_and_imports(compose_job(config_name, [*overrides, *job]), tmp_path)
    else:
        check_resolves_and_imports(cfg, tmp_path)


def test_every_group_of_conf_is_one_of_train_yaml_or_sweep_yaml(compose_job):
    """A new group folder needs no new test, but must be a group of one of the two configs."""
    choices = {name: set(compose_job(name, []).hydra.runtime.choices) for name in ("train", "sweep")}
    for yaml in CONF.rglob("*.yaml"):
        if yaml.parent not in (CONF, CONF / "corpus"):
            group, _ = group_and_choice(yaml)
            assert group in choices["sweep" if group in SWEEP_GROUPS else "train"], yaml


@pytest.mark.parametrize("recipe", sorted(path.stem for path in (CONF / "corpus").glob("*.yaml")))
def test_every_corpus_recipe_loads_and_names_sounds_that_exist(recipe):
    from amt.data.render import fluidsynth_problem
    from amt.data.synth import load_preset

    preset = load_preset(recipe)
    assert sum(preset.recordings) > 0 and preset.families
    if preset.voices is not None and fluidsynth_problem() is None:
        renderers = preset.renderers()  # every soundfont installed, none evaluation-only outside the test split
        assert all(renderers[split] for split in preset.voices)


STARTS_FROM_A_CHECKPOINT = sorted(
    yaml for yaml in CONF.rglob("*.yaml") if re.search(r"^(init|grow)_from: (?!null)\S", yaml.read_text(), re.MULTILINE)
)


@pytest.mark.parametrize("yaml", STARTS_FROM_A_CHECKPOINT, ids=lambda yaml: str(yaml.relative_to(CONF)))
def test_a_recipe_that_starts_from_a_bundled_model_fits_it(yaml, compose_job):
    """Fine-tuning recipes name amt/weights/default.ckpt: when the default changes size, they must follow."""
    from amt.checkpoint import initialise_from
    from amt.grow import grow_from

    group, choice = group_and_choice(yaml)
    primary, override = "sweep" if group in SWEEP_GROUPS else "train", f"{group}={choice}"
    jobs = study_jobs(compose_job(primary, [override])) if group == "study" else [[]]
    for job in jobs:
        cfg = compose_job(primary, [override, *job])
        model = instantiate(cfg.model)
        if cfg.init_from:
            initialise_from(model, REPO / cfg.init_from)
        else:
            grow_from(model, REPO / cfg.grow_from)
