"""Studies: job pinning and identity, the results table and figure, and real multiruns through joblib."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from amt.config import stage_epochs
from amt.jobs import finished_metrics, pin_job, record_failure, seed_of, setting_of, visible_gpus
from amt.results import collect_jobs, summary_markdown, write_results

REPO = Path(__file__).resolve().parent.parent


def sweep(env, *args, timeout=600):
    return subprocess.run(
        [sys.executable, "sweep.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_jobs_take_gpus_round_robin_and_share_cpu_threads():
    assert [pin_job(n, 4, ["0", "1"], 16) for n in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": "0"},
    ]
    assert pin_job(5, 2, [], 2) == {"threads": 1}
    assert pin_job(0, 1, [], 16) == {"threads": 16}
    assert pin_job(0, 32, [], 16) == {"threads": 1}


def test_visible_gpus_follow_the_users_choice_then_the_driver(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    for index in range(3):
        (tmp_path / f"0000:0{index}:00.0").mkdir()
    monkeypatch.setattr("amt.jobs.NVIDIA_GPUS", tmp_path)
    assert visible_gpus() == ["0", "1", "2"]
    monkeypatch.setattr("amt.jobs.NVIDIA_GPUS", tmp_path / "absent")
    assert visible_gpus() == []


def test_a_jobs_setting_and_seed_come_from_its_overrides():
    overrides = ["seed=3", "model.dropout=0.1", "scheduler=staged"]
    assert setting_of(overrides) == "model.dropout=0.1 scheduler=staged"
    assert setting_of(overrides, keys=["model.dropout"]) == "model.dropout=0.1"
    assert setting_of(["seed=1"]) == "default"
    assert seed_of(overrides, default=0) == 3 and seed_of([], default=7) == 7


def test_only_a_finished_run_of_the_same_job_is_skipped(tmp_path):
    assert finished_metrics(tmp_path, ["seed=0"]) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"overrides": ["seed=0", "model.dropout=0.1"], "val/ap": 0.5}))
    assert finished_metrics(tmp_path, ["model.dropout=0.1", "seed=0"])["val/ap"] == 0.5
    assert finished_metrics(tmp_path, ["model.dropout=0.2", "seed=0"]) is None
    (tmp_path / "metrics.json").write_text("{not json")
    assert finished_metrics(tmp_path, ["seed=0"]) is None


def test_a_failure_is_recorded_in_one_line_with_its_cause(tmp_path):
    from hydra.errors import InstantiationException

    try:
        try:
            raise ValueError("model.dropout must be\na probability")
        except ValueError as cause:
            raise InstantiationException("Error in call to target\n  full_key: model") from cause
    except InstantiationException as error:
        record_failure(tmp_path / "job", error)
    assert (tmp_path / "job" / "failed.txt").read_text() == "ValueError: model.dropout must be a probability\n"


@pytest.mark.parametrize(("total", "stages"), [(30, [10, 10, 10]), (10, [4, 3, 3]), (1, [1, 1, 1])])
def test_the_staged_schedule_fills_the_run(total, stages):
    assert stage_epochs(total, 3) == stages


def write_job(sweep_dir, number, overrides, metrics=None, failure=None):
    folder = sweep_dir / str(number)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        history = [{"epoch": e, "val/ap": metrics["best/val_ap"] * (e + 1) / 2} for e in range(2)]
        (folder / "metrics.json").write_text(json.dumps({**metrics, "overrides": overrides, "history": history}))
    if failure is not None:
        (folder / "failed.txt").write_text(failure)
    return folder


def test_results_table_averages_seeds_and_shows_failed_and_killed_jobs(tmp_path):
    stale = write_job(tmp_path, 9, ["seed=0", "model.dropout=0.9", "logger=csv"], {"best/val_ap": 0.1})
    os.utime(stale / ".hydra" / "overrides.yaml", (1, 1))
    start = time.time() - 1
    for number, (dropout, seed, val) in enumerate([(0.0, 0, 0.80), (0.0, 1, 0.84), (0.5, 0, 0.70)]):
        metrics = {"best/val_ap": val, "test/ap": val - 0.01, "train/ap": 0.9, "epochs": 2}
        write_job(tmp_path, number, [f"seed={seed}", f"model.dropout={dropout}", "logger=csv"], metrics)
    write_job(tmp_path, 3, ["seed=1", "model.dropout=0.5", "logger=csv"], failure="AmtError: boom\n")
    write_job(tmp_path, 4, ["seed=0", "model.dropout=0.2", "logger=csv"])  # killed: neither file

    jobs = collect_jobs(tmp_path, since=start)
    assert [job.job for job in jobs] == ["0", "1", "2", "3", "4"]  # the stale job 9 is not part of this sweep
    assert [job.status for job in jobs] == ["done", "done", "done", "failed", "failed"]
    assert [job.setting for job in jobs][:3] == ["model.dropout=0.0", "model.dropout=0.0", "model.dropout=0.5"]
    assert jobs[3].error == "AmtError: boom" and "killed" in jobs[4].error

    table = summary_markdown(jobs, "study dropout")
    assert "5 jobs, 2 failed" in table
    assert "| model.dropout=0.0 | 0,1 | 0 | 0.9 ± 0 | 0.82 ± 0.028 | 0.81 ± 0.028 | – | 2 ± 0 | – |" in table
    assert "| model.dropout=0.5 | 0 | 1 | 0.9 | 0.7 | 0.69 | – | 2 | – |" in table
    assert "| model.dropout=0.2 | – | 1 |" in table
    assert "- job 3 (seed=1 model.dropout=0.5 logger=csv): AmtError: boom" in table

    paths = write_results(jobs, tmp_path, "study dropout")
    rows = paths["csv"].read_text().splitlines()
    assert rows[0].startswith("job,status,setting,seed,train/ap") and len(rows) == 6
    assert rows[4].startswith("3,failed,model.dropout=0.5,1,")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_slurm_launcher_and_optuna_search_compose_without_a_cluster():
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    slurm = sweep(env, "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "trainer=gpu", "--cfg", "hydra")
    assert slurm.returncode == 0, slurm.stderr[-2000:]
    launcher = yaml.safe_load(slurm.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["partition"] == "gpu"
    assert launcher["gpus_per_node"] == 1 and launcher["timeout_min"] == 240
    job = sweep(env, "hydra/launcher=slurm", "--cfg", "job")
    assert job.returncode == 0 and yaml.safe_load(job.stdout)["sweep"]["study"] == "dropout"
    search = sweep(env, "study=search", "--cfg", "hydra")
    assert search.returncode == 0, search.stderr[-2000:]
    sweeper = yaml.safe_load(search.stdout)["hydra"]["sweeper"]
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"


@pytest.mark.slow
def test_a_study_runs_in_parallel_keeps_going_past_a_failed_job_and_skips_finished_jobs(run_env, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = [
        "-m",
        "scale=smoke",
        "model.dropout=0.0,0.5,-1",  # -1: refused by the model, so that job fails
        "seed=0,1",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    first = sweep(run_env, *args)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "amt: error: 2 of 6 jobs failed" in first.stderr
    table = (sweep_dir / "results.md").read_text()
    assert "6 jobs, 2 failed" in table
    for dropout in ("0.0", "0.5"):
        assert f"| model.dropout={dropout} | 0,1 | 0 |" in table
    assert "| model.dropout=-1 | – | 2 |" in table and "must be a probability" in table
    assert len((sweep_dir / "results.csv").read_text().splitlines()) == 7
    assert (sweep_dir / "results.png").is_file()
    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert metrics["config"] == "report/cnn_multi" and metrics["epochs"] == 1 and len(metrics["history"]) == 1
    # W&B: one offline run per finished job, and the study's table as a run of its own
    assert len(list(sweep_dir.glob("*/wandb/offline-run-*"))) == 4
    assert len(list((sweep_dir / "wandb").glob("offline-run-*"))) == 1

    second = sweep(run_env, *args)
    assert second.returncode == 1
    assert (second.stdout + second.stderr).count("finished in an earlier run of this sweep: skipped") == 4
    assert "6 jobs, 2 failed" in (sweep_dir / "results.md").read_text()


def test_settings_drawn_by_a_search_read_with_a_few_digits(tmp_path):
    from amt.results import readable

    assert readable("optimizer.lr=0.00012345678901234 model.dropout=0.30000000000000004") == (
        "optimizer.lr=0.0001235 model.dropout=0.3"
    )
    assert (
        readable("optimizer.lr=1.2345678e-05 seed=0 model.dropout=0.5")
        == "optimizer.lr=1.235e-05 seed=0 model.dropout=0.5"
    )
    start = time.time() - 1
    for number, lr in enumerate((0.00012345678901234, 0.0009876543210987)):
        metrics = {"best/val_ap": 0.5 + number / 10, "test/ap": 0.5, "train/ap": 0.6, "epochs": 2}
        write_job(tmp_path, number, ["seed=0", f"optimizer.lr={lr}"], metrics)
    jobs = collect_jobs(tmp_path, since=start)
    table = summary_markdown(jobs, "study search")
    assert "| optimizer.lr=0.0001235 |" in table and "0.00012345678901234" not in table
    paths = write_results(jobs, tmp_path, "study search")
    assert paths["png"].is_file() and "search" not in paths  # one swept setting: results.png plots it


def test_a_search_over_several_settings_plots_its_trials_and_each_setting_against_the_objective(tmp_path):
    from matplotlib.image import imread

    from amt.results import swept_values

    start = time.time() - 1
    draws = [(2.3e-4, 0.12, 33, 0.61), (1.9e-3, 0.41, 129, 0.55), (6.1e-4, 0.27, 65, 0.70), (1.1e-4, 0.05, 33, 0.58)]
    for number, (lr, dropout, kernel, ap) in enumerate(draws):
        overrides = ["seed=0", f"optimizer.lr={lr}", f"model.dropout={dropout}", f"model.kernel_size={kernel}"]
        write_job(tmp_path, number, overrides, {"best/val_ap": ap, "test/ap": ap, "train/ap": 0.8, "epochs": 2})
    write_job(tmp_path, 4, ["seed=0", "optimizer.lr=0.01", "model.dropout=0.9", "model.kernel_size=33"],
              failure="AmtError: diverged\n")  # fmt: skip
    jobs = collect_jobs(tmp_path, since=start)
    assert swept_values(jobs[0]) == {"optimizer.lr": "0.00023", "model.dropout": "0.12", "model.kernel_size": "33"}
    paths = write_results(jobs, tmp_path, "study search")
    image = imread(paths["search"])
    assert image.shape[1] > 3 * image.shape[0]  # four panels side by side: history, then three settings
