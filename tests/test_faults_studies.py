"""Faults in studies: a job killed from outside, as the OOM killer would, is recorded as failed and the
study goes on to its other jobs and its results table. A real sweep, a real SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def processes_with(marker: str) -> dict[int, int]:
    """``{pid: parent pid}`` of the processes whose environment holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            found[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return found


def training_processes(marker: str, sweep_pid: int) -> list[int]:
    """The jobs' own training processes: forks of the sweep (same command line), not the helpers they
    start (W&B's service, data loaders under other commands)."""
    family = processes_with(marker)

    def command(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    return [pid for pid in family if pid != sweep_pid and command(pid) == command(sweep_pid)]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the job's process")
def test_a_job_killed_by_sigkill_is_recorded_and_the_study_goes_on(run_env, tmp_path):
    marker = f"AMT_TEST_SWEEP={uuid.uuid4()}"
    env = {**run_env, marker.split("=")[0]: marker.split("=")[1]}
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "scale=smoke", "model.dropout=0.0,0.1", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep_dir}"]
    sweep = subprocess.Popen(
        [sys.executable, "sweep.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed, deadline = None, time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and sweep.poll() is None:
        jobs = training_processes(marker, sweep.pid) if (sweep_dir / "0" / ".hydra").is_dir() else []
        if jobs:
            killed = jobs[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    out, err = sweep.communicate(timeout=600)
    assert killed is not None, "never saw a job's training process"
    assert sweep.returncode == 1, err[-3000:]
    assert "amt: error: 1 of 2 jobs failed" in err
    table = (sweep_dir / "results.md").read_text()
    assert "2 jobs, 1 failed" in table and "killed by SIGKILL" in table
    assert (sweep_dir / "1" / "metrics.json").is_file() and not (sweep_dir / "0" / "metrics.json").is_file()


@pytest.mark.slow
def test_a_rerun_resumes_the_jobs_that_did_not_finish_from_their_last_checkpoint(run_env, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "scale=smoke", "model.dropout=0.0,0.1", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep_dir}"]
    first = subprocess.run([sys.executable, "sweep.py", *args], cwd=REPO, env=run_env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    (sweep_dir / "0" / "metrics.json").unlink()  # as if job 0 had been stopped after saving its checkpoint
    again = subprocess.run(
        [sys.executable, "sweep.py", *args, "trainer.max_epochs=2"],
        cwd=REPO,
        env=run_env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert f"resuming from {sweep_dir / '0' / 'checkpoints' / 'last.ckpt'}" in output
    resumed = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert resumed["epochs"] == 2 and [row["epoch"] for row in resumed["history"]] == [1, 2]
