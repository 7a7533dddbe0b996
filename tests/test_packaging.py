"""The wheel a user pip-installs: amt with its configs and bundled models, extras split by job, and
training from an installed copy, outside the repository."""

import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return next(out.glob("amt-*.whl"))


def test_the_wheel_carries_every_config_and_the_bundled_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"amt/conf/{path.relative_to(REPO / 'conf')}" for path in (REPO / "conf").rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    weights = {f"amt/weights/{path.name}" for path in (REPO / "amt" / "weights").glob("*.ckpt")}
    assert weights and weights <= names
    assert not any(
        name.startswith(("tests/", "scripts/", "conf/")) or name in ("train.py", "sweep.py") for name in names
    )


def test_the_core_transcribes_and_each_extra_adds_one_job(wheel):
    info = zipfile.ZipFile(wheel)
    metadata = Parser().parsestr(info.read(next(n for n in info.namelist() if n.endswith("/METADATA"))).decode())
    assert metadata["License-Expression"] == "MIT"
    requires = metadata.get_all("Requires-Dist")
    core = {r.split(">")[0].split("<")[0].split("=")[0].strip() for r in requires if "extra ==" not in r}
    assert {"torch", "numpy", "soundfile", "pretty_midi", "mir_eval"} <= core
    assert not core & {"lightning", "wandb", "music21", "pyfluidsynth", "hydra-optuna-sweeper", "onnxruntime"}
    assert {"train", "sweep", "corpus", "fast", "all", "dev"} <= set(metadata.get_all("Provides-Extra"))


@pytest.mark.slow
def test_an_installed_wheel_trains_outside_the_repository(wheel, run_env, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    env = {**run_env, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import amt.config; print(amt.config.CONF_DIR)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()) == site / "amt" / "conf"
    run = tmp_path / "run"
    overrides = ["model=cnn_1layer", "data.preset=tiny", "trainer.max_epochs=1", "logger=csv", f"hydra.run.dir={run}"]
    result = subprocess.run(
        [sys.executable, "-m", "amt", "train", *overrides], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    sources = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"]["config_sources"]
    assert {"path": str(site / "amt" / "conf"), "provider": "main", "schema": "file"} in sources
