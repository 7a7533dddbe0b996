"""train.py end to end on the tiny offline corpus: artefacts, W&B offline run, resume, config errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def train(env, *overrides, run: Path | None = None, check=True):
    args = [sys.executable, "train.py", *overrides] + ([f"hydra.run.dir={run}"] if run else [])
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(
            f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.mark.slow
def test_training_leaves_checkpoints_metrics_curves_and_an_offline_wandb_run(run_env, tmp_path):
    run = tmp_path / "run"
    train(run_env, "model=cnn_1layer", "data.preset=tiny", "trainer.max_epochs=3", run=run)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("train/ap", "val/ap", "test/ap", "train/loss", "val/loss", "test/loss", "best/val_ap"):
        assert 0.0 <= metrics[key] <= (1.0 if key.endswith("ap") else 10.0), key
    assert metrics["epochs"] == 3 and metrics["config"] == "cnn_1layer" and metrics["parameters"] > 40_000
    checkpoints = {p.name for p in (run / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch") for name in checkpoints)
    assert (run / "curves.png").stat().st_size > 10_000
    assert (run / "csv" / "version_0" / "metrics.csv").is_file()
    wandb_runs = list((run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1 and list(wandb_runs[0].glob("run-*.wandb"))
    files = wandb_runs[0] / "files"
    for name in ("hydra/config.yaml", "hydra/overrides.yaml", "metrics.json", "curves.png"):
        assert (files / name).is_file(), name
    assert len(list((files / "media" / "images" / "val").glob("piano_roll_*.png"))) == 3  # one per epoch
    assert (run / "wandb" / "artifacts").is_dir(), "the model artifact is staged inside the run folder"
    assert [row["epoch"] for row in metrics["history"]] == [1, 2, 3]
    best = Path(metrics["best_checkpoint"]).name
    assert best[:8] in ("epoch001", "epoch002", "epoch003") and not list((run / "checkpoints").glob("epoch000*"))


@pytest.mark.slow
def test_resuming_from_the_last_checkpoint_ends_at_the_same_epoch_count_in_the_same_wandb_run(run_env, tmp_path):
    common = ["model=cnn_1layer", "data.preset=tiny"]
    train(run_env, *common, "trainer.max_epochs=1", run=tmp_path / "first")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    train(run_env, *common, "trainer.max_epochs=3", f"ckpt_path={last}", run=tmp_path / "resumed")
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["epochs"] == 3
    (first,) = (tmp_path / "first" / "wandb").glob("offline-run-*")
    (resumed,) = (tmp_path / "resumed" / "wandb").glob("offline-run-*")
    assert first.name.rsplit("-", 1)[1] == resumed.name.rsplit("-", 1)[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=transformer9000"], "unknown model 'transformer9000' (choose from:"),
        (["model=cnn_multi", "model.dropout=-0.1"], "dropout"),
        (["model=cnn_multi", "data.datamodule.bins=128"], "does not match the model"),
        (["model=context_tcn", "init_from=amt/weights/default.ckpt"], "weights do not fit model=ContextTranscriber"),
        (["init_from=missing.ckpt"], "missing.ckpt: no such checkpoint to initialise from"),
        (["model=context_tcn", "grow_from=amt/weights/default.ckpt"], "larger than"),
        (["init_from=amt/weights/default.ckpt", "grow_from=amt/weights/default.ckpt"], "init_from and grow_from both"),
        (["model=context_tcn", "data=sequences", "loss.pos_weight.onset=0"], "pos_weight['onset'] must be a positive"),
        (["model=cnn_multi", "+lr_scale.encoder.convs.0=10"], "lr_scale names no parameters: ['encoder.convs.0']"),
        (["model=cnn_multi", "+lr_scale.convs.0=-1"], "lr_scale['convs.0'] must be a positive number"),
    ],
)
def test_bad_config_fails_at_start_with_one_line(run_env, overrides, message):
    result = train(run_env, *overrides, "data.preset=tiny", "logger=csv", check=False)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith("amt: error:") and message in errors[-1], result.stderr[-2000:]


@pytest.mark.slow
def test_a_context_model_trains_on_augmented_sequences_and_its_checkpoint_transcribes(run_env, tmp_path):
    from amt.checkpoint import load
    from amt.grid import FrameGrid

    run = tmp_path / "run"
    overrides = ["model=context_tcn", "data=sequences_augmented", "data.preset=tiny", "trainer.max_epochs=2"]
    train(run_env, *overrides, "logger=csv", "data.datamodule.crop_frames=64", "loss.pos_weight.onset=4", run=run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"] == "context_tcn" and metrics["epochs"] == 2 and 0 < metrics["test/ap"] <= 1
    saved = torch.load(metrics["best_checkpoint"], weights_only=True)["hyper_parameters"]["pos_weight"]
    assert saved == {"frame": 1.0, "onset": 4.0, "offset": 1.0}
    model = load(metrics["best_checkpoint"]).model
    assert model.context and model.grid == FrameGrid(hop=1024)


@pytest.mark.slow
def test_init_from_starts_training_from_a_bundled_model(run_env, tmp_path):
    """With no training batches, the test split scores the initial weights: the first-generation default's
    (its recipe is experiment=context_default), or random ones."""
    common = ["experiment=context_default", "data.preset=tiny", "logger=csv", "+trainer.limit_train_batches=0"]
    train(run_env, *common, "init_from=amt/weights/context_default.ckpt", run=tmp_path / "default")
    train(run_env, *common, run=tmp_path / "scratch")
    default, scratch = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("default", "scratch"))
    assert default["config"] == "context_default" and default["test/ap"] > 0.7 > 0.2 > scratch["test/ap"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["model=cnn_1layer", "trainer.strategy=ddp", "trainer.devices=2"],
        ["model=context_tcn", "data=sequences_augmented", "data.datamodule.crop_frames=64", "trainer=cpu_ddp"],
    ],
    ids=["windows", "sequences"],
)
def test_data_parallel_training_logs_its_metrics_without_false_sync_warnings(run_env, tmp_path, overrides):
    run = tmp_path / "run"
    common = ["data.preset=tiny", "trainer.max_epochs=1", "logger=csv", "threads.intra_op=1"]
    result = train(run_env, *common, *overrides, run=run)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    assert "sync_dist" not in result.stderr + result.stdout  # torchmetrics syncs the metrics itself
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 < metrics["val/ap"] <= 1.0 and 0.0 < metrics["test/ap"] <= 1.0


def test_amt_train_help_lists_only_the_groups_training_reads(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "amt", "train", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    groups = result.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "model: cnn_1layer, cnn_multi" in groups and "optimizer: adam" in groups
    assert "study:" not in groups and "scale:" not in groups
    assert "threads:" in result.stdout.split("== Config ==")[1]  # the composed config, with the thread settings
