"""A checkpoint is data, never code: a malicious file runs nothing, a foreign model is never built, a
damaged file is refused, and training resumes only from a checkpoint it can resume from."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from amt.checkpoint import DEFAULT_CHECKPOINT, check_resumable, initialise_from, load
from amt.cli import main
from amt.errors import AmtError
from amt.models.cnn import CNN1Layer

REPO = Path(__file__).resolve().parent.parent


class WritesAFile:
    """Unpickling this runs ``open(path, "w")``: what a malicious checkpoint would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(checkpoint, tmp_path, capsys):
    evidence = tmp_path / "pwned.txt"
    contents = torch.load(checkpoint, weights_only=True)
    contents["hyper_parameters"]["payload"] = WritesAFile(evidence)
    torch.save(contents, tmp_path / "malicious.ckpt")
    for attempt in (
        lambda: load(tmp_path / "malicious.ckpt"),
        lambda: initialise_from(CNN1Layer(bins=256), tmp_path / "malicious.ckpt"),
        lambda: check_resumable(tmp_path / "malicious.ckpt", {}, 10),
    ):
        with pytest.raises(AmtError, match="holds Python objects, and amt loads only plain data"):
            attempt()
    assert (
        main(
            [
                "transcribe",
                str(tmp_path / "x.wav"),
                "-o",
                str(tmp_path / "o"),
                "--ckpt",
                str(tmp_path / "malicious.ckpt"),
            ]
        )
        == 2
    )
    assert "amt loads only plain data" in capsys.readouterr().err
    assert not evidence.exists()


@pytest.mark.parametrize("target", ["os.system", "builtins.dict", "amt.files.take_folder"])
def test_a_model_config_naming_anything_but_an_amt_model_is_never_built(context_checkpoint, tmp_path, target):
    contents = torch.load(context_checkpoint, weights_only=True)
    contents["hyper_parameters"]["model_config"] = {"_target_": target, "command": f"touch {tmp_path / 'pwned'}"}
    torch.save(contents, tmp_path / "foreign.ckpt")
    with pytest.raises(AmtError, match=rf"foreign.ckpt: its model config names '{target}'; amt builds only its own"):
        load(tmp_path / "foreign.ckpt")
    assert not (tmp_path / "pwned").exists()


def test_a_nested_foreign_target_is_refused_too(context_checkpoint, tmp_path):
    contents = torch.load(context_checkpoint, weights_only=True)
    contents["hyper_parameters"]["model_config"]["dropout"] = {"_target_": "os.system", "command": "true"}
    torch.save(contents, tmp_path / "nested.ckpt")
    with pytest.raises(AmtError, match="names 'os.system'"):
        load(tmp_path / "nested.ckpt")


def zero_a_region(source: Path, target: Path) -> None:
    """A copy of ``source`` with 4 KB of a weight tensor's bytes zeroed, as a bad disk sector would."""
    shutil.copy(source, target)
    with zipfile.ZipFile(target) as archive:
        member = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    with open(target, "r+b") as handle:
        handle.seek(member.header_offset + 30 + len(member.filename) + len(member.extra) + 64)
        handle.write(bytes(4096))


def test_a_checkpoint_with_a_zeroed_region_is_refused(context_checkpoint, tmp_path):
    zero_a_region(context_checkpoint, tmp_path / "zeroed.ckpt")
    with pytest.raises(AmtError, match=r"zeroed.ckpt: damaged checkpoint \(.* does not match its checksum\)"):
        load(tmp_path / "zeroed.ckpt")


@pytest.mark.parametrize("kind", ["truncated", "random", "empty"])
def test_truncated_and_random_checkpoints_are_one_line(context_checkpoint, tmp_path, kind):
    path = tmp_path / f"{kind}.ckpt"
    data = context_checkpoint.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "random": os.urandom(5000), "empty": b""}[kind])
    for attempt in (lambda: load(path), lambda: check_resumable(path, {}, 10)):
        with pytest.raises(AmtError) as error:
            attempt()
        assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_resuming_needs_a_training_checkpoint_of_the_same_model_with_epochs_left(context_checkpoint, tmp_path):
    config = torch.load(context_checkpoint, weights_only=True)["hyper_parameters"]["model_config"]
    with pytest.raises(AmtError, match="no such checkpoint to resume from"):
        check_resumable(tmp_path / "missing.ckpt", config, 10)
    with pytest.raises(AmtError, match="without its training state .* init_from= instead"):
        check_resumable(DEFAULT_CHECKPOINT, config, 10)
    with pytest.raises(AmtError, match=r"holds a different model \(features=16.*this run: features=32"):
        check_resumable(context_checkpoint, {**config, "features": 32}, 10)
    with pytest.raises(AmtError, match="has trained 1 epochs already; set trainer.max_epochs above 1"):
        check_resumable(context_checkpoint, config, 1)
    check_resumable(context_checkpoint, config, 2)


@pytest.mark.slow
def test_train_py_refuses_a_checkpoint_it_cannot_resume_from_in_one_line(run_env, tmp_path):
    (tmp_path / "random.ckpt").write_bytes(os.urandom(3000))
    cases = {
        str(tmp_path / "random.ckpt"): "not a PyTorch checkpoint",
        str(DEFAULT_CHECKPOINT): "without its training state",
    }
    for ckpt, message in cases.items():
        result = subprocess.run(
            [sys.executable, "train.py", "model=cnn_1layer", "data.preset=tiny", "logger=csv", f"ckpt_path={ckpt}"],
            cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and errors[-1].startswith("amt: error: ") and message in errors[-1], errors
