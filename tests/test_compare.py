"""scripts/compare.py: amt's models and published transcribers in one table, piano and ensemble blocks,
peers' outputs cached by audio checksum."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import soundfile

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare.py"
spec = importlib.util.spec_from_file_location("compare", SCRIPT)
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)


def test_a_corpus_json_splits_the_test_recordings_into_piano_and_ensemble_blocks(data_dir, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(data_dir / "synth-tiny", root)
    sets = compare.recording_sets(root / "recordings", "test")
    ensembles = {e["id"]: e["ensemble"] for e in json.loads((root / "corpus.json").read_text())["recordings"]}
    assert set(sets) <= {"piano", "ensemble"} and sum(len(chosen) for chosen in sets.values()) == 2
    assert all(ensembles[r.id] == "solo_piano" for r in sets.get("piano", []))
    (root / "corpus.json").unlink()
    assert list(compare.recording_sets(root / "recordings", "test")) == ["test"]


def test_amt_s_models_are_compared_without_peers(data_dir, checkpoint, tmp_path):
    out = tmp_path / "out"
    compare.main(["--recordings", str(data_dir / "synth-tiny" / "recordings"), "--peers", "", "--out", str(out),
                  "--model", f"tiny={checkpoint}:hysteresis", "--diagnostics"])  # fmt: skip
    report = json.loads((out / "comparison.json").read_text())
    rows = [row for rows in report["blocks"].values() for row in rows]
    assert {row["system"] for row in rows} == {"tiny (hysteresis)"} and all(row["real_time_factor"] > 1 for row in rows)
    assert "| tiny (hysteresis) |" in (out / "comparison.md").read_text()


@pytest.mark.skipif(not (compare.PEERS["basic-pitch"] / "bin" / "python").is_file(), reason="make basic-pitch first")
def test_a_peer_transcribes_only_what_changed(data_dir, tmp_path):
    shutil.copytree(data_dir / "synth-tiny" / "recordings", tmp_path / "recordings")
    recordings = compare.find_recordings(tmp_path / "recordings", "test")
    out = tmp_path / "basic-pitch"
    first = compare.run_peer("basic-pitch", recordings, out)

    def stamps() -> dict[str, int]:
        return {r.id: (out / f"{r.id}.notes.csv").stat().st_mtime_ns for r in recordings}

    before = stamps()
    assert compare.run_peer("basic-pitch", recordings, out) == first and stamps() == before
    changed = recordings[0]
    samples, rate = soundfile.read(changed.wav)
    soundfile.write(changed.wav, samples * 0.5, rate)
    compare.run_peer("basic-pitch", recordings, out)
    after = stamps()
    assert after[changed.id] != before[changed.id]
    assert all(after[r.id] == before[r.id] for r in recordings[1:])
