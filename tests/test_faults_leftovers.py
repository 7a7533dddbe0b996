"""Leftovers and permissions: a run refused at start leaves no run folder, files amt writes get the
permissions any program's would (others may read a shared corpus), and a failed write leaves no
temporary file."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amt.errors import AmtError
from amt.files import write_atomically, write_json

REPO = Path(__file__).resolve().parent.parent


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_run_refused_at_start_leaves_no_run_folder(run_env, tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "train.py", "seed=abc", "data.preset=tiny", "logger=csv", f"hydra.run.dir={run}"],
        cwd=REPO, env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "amt: error: seed='abc'" in result.stderr
    assert not run.exists()


def test_corpus_files_are_readable_by_others_as_any_new_file_would_be(data_dir):
    expected = 0o666 & ~umask()
    recordings = data_dir / "synth-tiny" / "recordings"
    for path in [
        *recordings.glob("*_data/*.wav"),
        *recordings.glob("*_labels/*.csv"),
        data_dir / "synth-tiny" / "corpus.json",
    ]:
        assert path.stat().st_mode & 0o777 == expected, path


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary_one(tmp_path):
    def fails_half_way(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(AmtError, match=r"out.json: cannot write here \(No space left on device\)"):
        write_atomically(tmp_path / "out.json", ".json", fails_half_way)
    assert list(tmp_path.iterdir()) == []
    write_json({"a": 1}, tmp_path / "out.json")
    with pytest.raises(TypeError):
        write_json({"a": np.arange(3)}, tmp_path / "out.json")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"] and (
        tmp_path / "out.json"
    ).read_text() == '{\n "a": 1\n}\n'
