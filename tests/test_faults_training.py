"""train.py under faults: settings Hydra accepts but a run cannot use fail in one line; a resumed run
keeps every epoch and its best score; SIGTERM is never read as success."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
TINY = ["model=cnn_1layer", "data.preset=tiny", "logger=csv"]


def train(env, *overrides, run: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "train.py", *overrides, f"hydra.run.dir={run}"]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-1"], "optimizer or scheduler settings: Invalid learning rate: -1"),
        (["seed=abc"], "seed='abc': must be a whole number from 0"),
        (["data.batch_size=abc"], "data.batch_size='abc': must be a whole number from 1"),
        (["data.datamodule.num_workers=-1"], "data.datamodule.num_workers=-1: must be a whole number from 0"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be a whole number from 1"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1: must be a whole number from 1"),
        (["test=maybe"], "test='maybe': must be true or false"),
        (["+foo=1"], "+foo=1: amt has no setting 'foo', so it would be ignored"),
        (["ckpt_path=missing.ckpt"], "missing.ckpt: no such checkpoint to resume from"),
    ],
)
def test_settings_a_run_cannot_use_fail_at_start_in_one_line(run_env, tmp_path, overrides, message):
    result = train(run_env, *TINY, *overrides, run=tmp_path / "run")
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert errors[-1] == f"amt: error: {message}" or (errors[-1].startswith("amt: error:") and message in errors[-1])
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_resumed_run_keeps_every_epoch_and_the_best_score(run_env, tmp_path):
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    assert train(run_env, *TINY, "trainer.max_epochs=2", run=first).returncode == 0
    before = json.loads((first / "metrics.json").read_text())
    last = first / "checkpoints" / "last.ckpt"
    result = train(run_env, *TINY, "trainer.max_epochs=3", f"ckpt_path={last}", run=resumed)
    assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads((resumed / "metrics.json").read_text())
    assert [row["epoch"] for row in after["history"]] == [1, 2, 3]
    assert after["history"][:2] == before["history"]
    assert after["best/val_ap"] >= before["best/val_ap"]
    assert (resumed / "curves.png").is_file()
    assert list((first / "checkpoints").glob("epoch*.ckpt")), "the first run's best checkpoint is never deleted"


@pytest.mark.slow
def test_the_last_checkpoint_holds_the_last_epoch_when_it_is_not_the_best(run_env, tmp_path):
    run = tmp_path / "run"
    result = train(run_env, *TINY, "trainer.max_epochs=3", "optimizer.lr=0", "test=false", run=run)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = json.loads((run / "metrics.json").read_text())["history"]
    assert len({row["val/ap"] for row in epochs}) == 1, "unchanged weights score the same every epoch"
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2, "the third epoch (0-based 2), not the first and best"


@pytest.mark.slow
def test_sigterm_during_training_exits_143_with_the_epochs_so_far(run_env, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "train.py", *TINY, "trainer.max_epochs=500", f"hydra.run.dir={run}"]
    process = subprocess.Popen(
        args, cwd=REPO, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("amt: error:")]
    assert len(errors) == 1 and "stopped by SIGTERM" in errors[0] and "ckpt_path=" in errors[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["interrupted"] == "SIGTERM" and len(metrics["history"]) >= 1


@pytest.mark.slow
def test_a_disk_that_fills_up_during_training_is_one_line_and_leaves_no_half_checkpoint(run_env, tmp_path):
    run_root = tmp_path / "small"
    run_root.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(run_root)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = train(run_env, *TINY, "trainer.max_epochs=2", run=run_root / "run")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("amt: error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0]
        assert [p for p in (run_root / "run").rglob("*.ckpt")] == []
    finally:
        subprocess.run(["umount", str(run_root)], check=False)
