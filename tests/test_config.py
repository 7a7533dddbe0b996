"""amt/config.py: config-group choices checked before Hydra composes (unknown names, moved folders)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amt.config import CONF_DIR, MOVED_CHOICES, check_group_choices
from amt.errors import AmtError

REPO = Path(__file__).resolve().parent.parent


def test_known_choices_sweeps_appends_and_plain_values_pass():
    check_group_choices(
        [
            "-m",
            "model=lstm",
            "experiment=report/cnn_multi",
            "experiment=null",
            "model=cnn_multi,lstm",
            "+trainer.limit_train_batches=2",
            "trainer.max_epochs=3",
            "hydra/launcher=slurm",
        ]
    )


def test_an_unknown_choice_names_the_valid_ones():
    with pytest.raises(AmtError, match=r"unknown experiment 'report/cnn' \(choose from: .*report/cnn_multi"):
        check_group_choices(["experiment=report/cnn"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "experiment=seed/cnn_multi",
            "experiment=seed/cnn_multi: the report's experiments moved to experiment=report/cnn_multi",
        ),
        (
            "experiment=seed/lstm,context_default",
            "experiment=seed/lstm,context_default: the report's experiments moved to "
            "experiment=report/lstm,context_default",
        ),
        (
            "+experiment=seed/lstm",
            "+experiment=seed/lstm: the report's experiments moved to experiment=report/lstm",
        ),
    ],
)
def test_a_choice_from_a_moved_folder_names_its_new_place(override, message):
    with pytest.raises(AmtError) as error:
        check_group_choices(["model=lstm", override])
    assert str(error.value) == message


def test_moved_folders_are_gone_and_their_new_places_hold_the_experiments():
    for group, moves in MOVED_CHOICES.items():
        for old, (new, _) in moves.items():
            assert not (CONF_DIR / group / old).exists()
            assert sorted(p.stem for p in (CONF_DIR / group / new).glob("*.yaml")) == [
                "cnn_1layer",
                "cnn_multi",
                "lstm",
                "lstm_attention",
                "lstm_self_attention",
            ]


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (
            ["train.py", "experiment=seed/cnn_1layer"],
            "amt: error: experiment=seed/cnn_1layer: the report's experiments moved to experiment=report/cnn_1layer",
        ),
        (
            ["sweep.py", "-m", "study=architecture", "experiment=seed/lstm,seed/cnn_multi"],
            "amt: error: experiment=seed/lstm,seed/cnn_multi: the report's experiments moved to "
            "experiment=report/lstm,report/cnn_multi",
        ),
    ],
)
def test_the_scripts_refuse_a_moved_choice_in_one_line_before_composing(command, line, tmp_path):
    env = {**os.environ, "AMT_OUTPUT_DIR": str(tmp_path / "outputs"), "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("override", ["+foo=1", "+seeds=3", "+dat.batch_size=3"])
def test_an_appended_setting_amt_does_not_have_is_refused(override):
    with pytest.raises(AmtError, match=rf"{re.escape(override)}: amt has no setting"):
        check_group_choices([override])


def test_conf_ships_inside_the_package():
    import amt

    assert CONF_DIR == Path(amt.__file__).resolve().parent / "conf" and (CONF_DIR / "train.yaml").is_file()
    assert (CONF_DIR / "sweep.yaml").is_file() and (CONF_DIR / "model" / "cnn_multi.yaml").is_file()


@pytest.mark.parametrize("override", ["study=dropout", "scale=quick", "+study=dropout"])
def test_training_refuses_the_settings_only_a_sweep_reads(override):
    group = override.lstrip("+").split("=")[0]
    with pytest.raises(AmtError, match=rf"only a sweep reads {group} \(amt sweep -m {re.escape(override)}\)"):
        check_group_choices([override], command="train")
    check_group_choices([override.lstrip("+")], command="sweep")


def test_each_command_s_help_lists_the_groups_it_reads():
    from amt.config import SWEEP_GROUPS, group_options

    train, sweep = group_options("train").splitlines(), group_options("sweep").splitlines()
    assert {line.split(":")[0] for line in sweep} - {line.split(":")[0] for line in train} == set(SWEEP_GROUPS)
    assert "model: cnn_1layer, cnn_multi, context_gru, context_tcn, lstm, lstm_attention, lstm_self_attention" in train
