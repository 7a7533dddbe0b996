"""W&B runs a user can find: names and tags from the run's config, and a resumed run's id."""

from amt.loggers import previous_run_id, run_name, run_tags, wandb_logger


def test_runs_are_named_and_tagged_from_their_config():
    assert run_name("report/cnn_multi", "mini", 3) == "report-cnn_multi-mini-seed3"
    assert run_name("cnn_1layer", None, 0) == "cnn_1layer-seed0"
    assert run_tags("cnn_1layer", "tiny", 1, ["study:dropout", "seed:1"]) == [
        "model:cnn_1layer",
        "seed:1",
        "preset:tiny",
        "study:dropout",
    ]


def test_a_resumed_run_finds_the_w_and_b_run_of_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    assert previous_run_id(run / "checkpoints" / "last.ckpt") is None
    (run / "wandb" / "offline-run-20261201_101010-abc123").mkdir(parents=True)
    (run / "wandb" / "offline-run-20261202_090909-def456").mkdir()
    (run / "wandb" / "latest-run").symlink_to(run / "wandb" / "offline-run-20261201_101010-abc123")
    assert previous_run_id(run / "checkpoints" / "last.ckpt") == "def456"


def test_the_logger_passes_no_anonymous_setting(tmp_path):
    logger = wandb_logger(offline=True, save_dir=str(tmp_path), project="amt")
    assert "anonymous" not in logger._wandb_init
