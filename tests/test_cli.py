"""The ``amt`` command itself: ``python -m amt``, ``--version``, folders as input, help that tells the truth."""

import shutil
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest

from amt import __version__
from amt.cli import build_parser, main
from amt.decode import DecoderConfig, describe

REPO = Path(__file__).resolve().parent.parent


def test_python_m_amt_and_its_version():
    result = subprocess.run([sys.executable, "-m", "amt", "--version"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == f"amt {__version__}"


def test_every_option_has_help():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            for sub in getattr(action, "choices", None).values() if hasattr(action, "_name_parser_map") else ():
                yield from parsers(sub)

    for parser in parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings or action.dest not in ("command", "source", "name"):
                assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"


def test_a_folder_is_transcribed_file_by_file_into_named_midi_tracks(checkpoint, data_dir, tmp_path, caplog):
    caplog.set_level("INFO")
    folder = tmp_path / "takes"
    shutil.copytree(data_dir / "synth-tiny" / "recordings" / "test_data", folder)
    (folder / "notes.txt").write_text("not audio: left out")
    assert main(["transcribe", str(folder), "-o", str(tmp_path / "out"), "--ckpt", str(checkpoint)]) == 0
    wavs = sorted(folder.glob("*.wav"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mid")) == [f"{w.stem}.mid" for w in wavs]
    track = pretty_midi.PrettyMIDI(str(tmp_path / "out" / f"{wavs[0].stem}.mid")).instruments[0]
    assert track.name == f"{wavs[0].stem} (amt)"
    assert "decoder hysteresis: --on 0.5 --off 0.3 --max-gap-s 0.1 --min-note-s 0.1" in caplog.text


def test_a_folder_without_audio_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["transcribe", str(tmp_path / "empty"), "-o", str(tmp_path / "out")]) == 2
    assert "a folder without audio files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("decoder", "expected"),
    [
        ("naive", "--threshold 0.5"),
        (
            "onsets",
            "--onset-threshold 0.4 --frame-rise 0 --octave-ratio 0 --off 0.3 --no-start-without-onset --on 0.5 "
            "--max-gap-s 0.1 --min-note-s 0.1 --offset-threshold 0.5 --end-at-offsets",
        ),
    ],
)
def test_the_settings_in_effect_read_as_options_a_user_can_repeat(decoder, expected):
    config = DecoderConfig(onset_threshold=0.4, start_without_onset=False)
    assert describe(decoder, config) == expected
    build_parser().parse_args(["transcribe", "x.wav", "-o", "o", *expected.split()])


BLOCK_IMPORTS = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
from amt.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    ("blocked", "argv", "line"),
    [
        (["lightning"], ["train"], "amt: error: amt train needs more packages: lightning is not installed: "
         "pip install 'amt[train]'"),
        (["hydra_plugins"], ["sweep", "-m"], "amt: error: amt sweep needs more packages: hydra-joblib-launcher is "
         "not installed: pip install 'amt[sweep]'"),
        (["music21", "fluidsynth"], ["data", "synth", "--preset", "tiny", "--out", "corpus"],
         "amt: error: amt data needs more packages: music21 is not installed: pip install 'amt[corpus]'"),
    ],
)  # fmt: skip
def test_a_command_whose_extra_is_not_installed_names_the_pip_command(blocked, argv, line, tmp_path):
    code = BLOCK_IMPORTS.format(blocked=set(blocked), argv=argv)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == line, result.stderr[-2000:]
    assert not (tmp_path / "corpus").exists()


def test_amt_help_lists_training_and_studies():
    text = build_parser().format_help()
    assert "train" in text and "sweep" in text and "amt train --help" in text
